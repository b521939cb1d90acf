"""Training from the tables read batch by batch gives the weights of training in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from test_training import _tiny_params, write_synthetic_tables

from nextframe import store
from nextframe.model.clips import ClipSet, rises_from_times
from nextframe.model.training import train_splitter
from nextframe.pipeline.train import load_dataset


def in_memory(clip_ids: list[str], embeddings: Path, manifest: pd.DataFrame) -> ClipSet:
    """The split as padded float32 tensors, read with pyarrow's own reader (not the
    in-place reads the mapped path uses)."""
    images = store.read_image_embeddings(embeddings / "images.parquet")
    texts = pq.read_table(embeddings / "texts.parquet")
    by_caption = {key: row for row, key in enumerate(texts.column("caption_id").to_pylist())}
    captions = store.clip_captions(manifest)
    rows = [by_caption[store.caption_id(captions[c])] for c in clip_ids]

    def column(name: str) -> torch.Tensor:
        return torch.from_numpy(store.arrow_to_vectors(texts.column(name)).copy())[rows].float()

    slices = images.clip_slices()
    counts = torch.tensor([slices[c].stop - slices[c].start for c in clip_ids])
    frames = torch.zeros(len(clip_ids), int(counts.max()), images.info.dim)
    times = torch.zeros(len(clip_ids), int(counts.max()), dtype=torch.float64)
    for row, clip_id in enumerate(clip_ids):
        frames[row, : counts[row]] = images.embeddings[slices[clip_id]]
        times[row, : counts[row]] = images.t_seconds[slices[clip_id]]
    return ClipSet(
        clip_ids=list(clip_ids),
        hidden_states=column("hidden_states"),
        prior_embed=column("prior_embed"),
        text_embed=column("text_embed"),
        frames=frames,
        n_frames=counts,
        rises=rises_from_times(times, counts).float(),
    )


def test_training_from_the_mapped_tables_gives_the_in_memory_weights(
    tmp_path: Path, monkeypatch
) -> None:
    """Clips of 3 to 6 frames (uneven: batches pad to their own longest clip), every mode
    (diff runs the model inside batch assembly), tables in row groups of 5 rows."""
    monkeypatch.setattr("nextframe.store.writer.GROUP_BYTES", 5 * (8 * 32 * 2 + 2 * 32 * 4))
    manifest_path, embeddings = write_synthetic_tables(tmp_path, n_clips=24)
    images = pq.read_table(embeddings / "images.parquet")
    keep = np.array(
        [
            k < 3 + int(c[-3:]) // 6  # 3 to 6 frames
            for c, k in zip(images["clip_id"].to_pylist(), images["k"].to_pylist(), strict=True)
        ]
    )
    store.write_table(images.filter(keep), embeddings / "images.parquet")
    dataset = load_dataset(manifest_path, embeddings)
    assert sorted(set(dataset.train.n_frames.tolist())) == [3, 4, 5, 6]
    manifest = store.read_manifest(manifest_path)
    memory = [
        in_memory(split.clip_ids, embeddings, manifest) for split in (dataset.train, dataset.val)
    ]
    params = _tiny_params(epochs=3, batch_size=8)
    mapped_result = train_splitter(dataset.train, dataset.val, params)
    memory_result = train_splitter(*memory, params)
    assert mapped_result.history == memory_result.history
    for name, tensor in mapped_result.model.state_dict().items():
        assert torch.equal(tensor, memory_result.model.state_dict()[name]), name
