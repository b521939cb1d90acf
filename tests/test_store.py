"""Parquet tables: exact round trips, schema metadata, atomic writes, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from nextframe import store

INFO = store.EmbeddingInfo(backbone="tiny", model_ids={"prior": "local/prior"}, dim=6)


def _image_table(rng: np.random.Generator) -> tuple[pa.Table, np.ndarray]:
    clip_ids = ["b", "b", "a", "a", "a"]
    ks = [1, 0, 2, 0, 1]
    vectors = rng.standard_normal((5, 6)).astype(np.float32) * 7  # raw, not unit norm
    table = pa.table(
        {
            "clip_id": clip_ids,
            "k": pa.array(ks, pa.int32()),
            "t_seconds": [k * 0.5 for k in ks],
            "embedding": store.vectors_to_arrow(vectors, pa.float32()),
        },
        schema=store.image_embeddings_schema(INFO),
    )
    return table, vectors


def test_image_embeddings_round_trip_sorted_by_clip_and_k(tmp_path: Path) -> None:
    table, vectors = _image_table(np.random.default_rng(0))
    store.write_table(table, tmp_path / "images.parquet")
    loaded = store.read_image_embeddings(tmp_path / "images.parquet")
    assert loaded.clip_ids == ["a", "a", "a", "b", "b"]
    assert loaded.k.tolist() == [0, 1, 2, 0, 1]
    expected = vectors[[3, 4, 2, 1, 0]]
    assert loaded.embeddings.dtype == torch.float32
    assert torch.equal(loaded.embeddings, torch.from_numpy(expected))  # bit-exact
    assert loaded.clip_slices() == {"a": slice(0, 3), "b": slice(3, 5)}
    assert loaded.info == INFO


def test_text_embeddings_keep_float16_hidden_states(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    hidden = rng.standard_normal((3, 4, 6)).astype(np.float16)
    text, prior = (rng.standard_normal((3, 6)).astype(np.float32) for _ in range(2))
    table = pa.table(
        {
            "clip_id": ["z", "x", "y"],
            "caption": ["c z", "c x", "c y"],
            "text_embed": store.vectors_to_arrow(text, pa.float32()),
            "prior_embed": store.vectors_to_arrow(prior, pa.float32()),
            "hidden_states": store.vectors_to_arrow(hidden, pa.float16()),
        },
        schema=store.text_embeddings_schema(INFO, text_length=4),
    )
    store.write_table(table, tmp_path / "texts.parquet")
    loaded = store.read_text_embeddings(tmp_path / "texts.parquet")
    order = [1, 2, 0]
    assert loaded.clip_ids == ["x", "y", "z"]
    assert loaded.captions == ["c x", "c y", "c z"]
    assert loaded.hidden_states.dtype == torch.float16
    assert loaded.hidden_states.shape == (3, 4, 6)
    assert torch.equal(loaded.hidden_states, torch.from_numpy(hidden[order]))
    assert torch.equal(loaded.prior_embed, torch.from_numpy(prior[order]))
    assert loaded.index() == {"x": 0, "y": 1, "z": 2}


def test_failed_write_leaves_previous_table_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "frames.parquet"
    good = pd.DataFrame(
        {
            "clip_id": ["a"],
            "k": [0],
            "frame_index": [3],
            "t_seconds": [0.1],
            "score": [2.0],
            "path": ["a/0.png"],
        }
    )
    store.write_dataframe(good, store.FRAMES_SCHEMA, path)
    with (
        pytest.raises(RuntimeError, match="interrupted"),
        store.table_writer(path, store.FRAMES_SCHEMA) as writer,
    ):
        writer.write_table(pa.Table.from_pandas(good, schema=store.FRAMES_SCHEMA))
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames.parquet"]
    pd.testing.assert_frame_equal(
        store.read_frames(path), good.astype({"k": "int32", "frame_index": "int32"})
    )


def test_write_dataframe_rejects_wrong_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"clip_id": ["a"], "caption": ["x"]})
    with pytest.raises(ValueError, match="expected columns"):
        store.write_dataframe(frame, store.MANIFEST_SCHEMA, tmp_path / "manifest.parquet")
    assert not list(tmp_path.iterdir())


def test_reading_a_missing_table_says_which_stage_to_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="dvc repro"):
        store.read_manifest(tmp_path / "manifest.parquet")
    with pytest.raises(FileNotFoundError, match="embed"):
        store.read_image_embeddings(tmp_path / "images.parquet")


def test_embedding_table_without_metadata_is_refused(tmp_path: Path) -> None:
    table, _ = _image_table(np.random.default_rng(2))
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "images.parquet")
    with pytest.raises(ValueError, match="no nextframe metadata"):
        store.read_image_embeddings(tmp_path / "images.parquet")
