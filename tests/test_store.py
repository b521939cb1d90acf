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


def _manifest(captions: dict[str, str | None]) -> pd.DataFrame:
    return pd.DataFrame({"clip_id": list(captions), "caption": list(captions.values())})


def test_text_embeddings_one_row_per_caption_found_through_the_manifest(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    hidden = rng.standard_normal((4, 4, 6)).astype(np.float16)
    text, prior = (rng.standard_normal((4, 6)).astype(np.float32) for _ in range(2))
    captions = ["c z", "c x", "c y", "c x"]  # the fourth repeats the second: one row
    schema = store.text_embeddings_schema(INFO, text_length=4)
    table = store.text_rows(captions, text, prior, hidden, schema)
    assert table.column("caption_id").to_pylist() == sorted(
        store.caption_id(c) for c in ("c x", "c y", "c z")
    )
    store.write_table(table, tmp_path / "texts.parquet")
    # z and w share a caption; v has no caption (""), which has no row; u is not embedded
    manifest = _manifest({"z": "c z", "x": "c x", "y": "c y", "w": "c z", "v": None, "u": "c u"})
    loaded = store.read_text_embeddings(tmp_path / "texts.parquet", manifest)
    assert loaded.clip_ids == ["w", "x", "y", "z"]
    assert loaded.captions == ["c z", "c x", "c y", "c z"]
    order = [0, 1, 2, 0]  # the encodings of w, x, y, z
    assert loaded.hidden_states.dtype == torch.float16
    assert loaded.hidden_states.shape == (4, 4, 6)
    assert torch.equal(loaded.hidden_states[:], torch.from_numpy(hidden[order]))
    assert torch.equal(loaded.prior_embed[:], torch.from_numpy(prior[order]))
    assert torch.equal(loaded.text_embed[torch.tensor([3, 1])], torch.from_numpy(text[[0, 1]]))
    assert loaded.text_embed[2].shape == (6,)
    assert loaded.index() == {"w": 0, "x": 1, "y": 2, "z": 3}
    assert loaded.info == INFO


def test_a_per_clip_texts_table_is_refused_with_what_to_do(tmp_path: Path) -> None:
    fields = [("clip_id", pa.string()), ("caption", pa.string())]
    old = pa.table({"clip_id": ["a"], "caption": ["x"]}, schema=pa.schema(fields))
    store.write_table(old.replace_schema_metadata(INFO.to_metadata()), tmp_path / "texts.parquet")
    with pytest.raises(ValueError, match=r"one row per clip.*rerun the embed stage"):
        store.read_text_embeddings(tmp_path / "texts.parquet", _manifest({"a": "x"}))


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Row groups of a few rows, so reads cross row groups in a small table."""
    monkeypatch.setattr("nextframe.store.writer.GROUP_BYTES", 3 * (77 * 8 * 2 + 2 * 8 * 4))


def test_mapped_store_round_trips_exactly_in_any_order(tmp_path: Path, small_groups) -> None:
    """Real T = 77, small D; 20 captions in row groups of 3: every row, in a shuffled order
    with repeats, comes back bit for bit, float16 and float32 alike, and consecutive rows
    across a row group boundary too."""
    rng = np.random.default_rng(3)
    count, text_length, dim = 20, 77, 8
    info = store.EmbeddingInfo(backbone="tiny", model_ids={}, dim=dim)
    hidden = rng.standard_normal((count, text_length, dim)).astype(np.float16)
    text, prior = (rng.standard_normal((count, dim)).astype(np.float32) for _ in range(2))
    captions = [f"caption {index}" for index in range(count)]
    schema = store.text_embeddings_schema(info, text_length)
    store.write_table(
        store.text_rows(captions, text, prior, hidden, schema), tmp_path / "t.parquet"
    )
    assert pq.read_metadata(tmp_path / "t.parquet").num_row_groups == 7
    table = store.TextTable(tmp_path / "t.parquet")
    by_row = np.array([captions.index(c) for c in table.captions])  # table row -> input row
    rows = np.concatenate([rng.permutation(count), [5, 5, 0, 19], np.arange(2, 9)])
    for name, values in (("hidden_states", hidden), ("text_embed", text), ("prior_embed", prior)):
        read = table.read(name, rows)
        assert read.dtype == torch.from_numpy(values).dtype
        assert np.array_equal(read.numpy(), values[by_row[rows]]), name
    # ordinary parquet readers see the same numbers
    plain = pq.read_table(tmp_path / "t.parquet")
    assert np.array_equal(store.arrow_to_vectors(plain.column("hidden_states")), hidden[by_row])


def test_vectors_of_another_writer_are_refused_not_misread(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    hidden = rng.standard_normal((5, 4, 6)).astype(np.float16)
    text = rng.standard_normal((5, 6)).astype(np.float32)
    schema = store.text_embeddings_schema(INFO, text_length=4)
    table = store.text_rows([f"c{i}" for i in range(5)], text, text, hidden, schema)
    for options, why in (
        ({}, "SNAPPY"),  # pyarrow's defaults: compressed, dictionary
        ({"compression": "none", "use_dictionary": False, "data_page_size": 64}, "holds 24 values"),
    ):
        pq.write_table(table, tmp_path / "texts.parquet", **options)
        with pytest.raises(ValueError, match=f"cannot be read in place.*{why}"):
            store.TextTable(tmp_path / "texts.parquet")


def test_merged_parts_are_the_table_one_writer_makes(tmp_path: Path, small_groups) -> None:
    rng = np.random.default_rng(5)
    hidden = rng.standard_normal((11, 77, 8)).astype(np.float16)
    text = rng.standard_normal((11, 8)).astype(np.float32)
    info = store.EmbeddingInfo(backbone="tiny", model_ids={}, dim=8)
    schema = store.text_embeddings_schema(info, 77)
    whole = store.text_rows([f"c{i}" for i in range(11)], text, text, hidden, schema)
    with store.table_writer(tmp_path / "one.parquet", schema) as writer:
        sorted_writer = store.SortedTableWriter(writer, schema, key="caption_id")
        for start in range(0, 11, 4):  # batches of 4
            sorted_writer.write(whole.slice(start, 4))
        sorted_writer.close()
    for index, (start, end) in enumerate([(0, 5), (5, 6), (6, 11)]):  # parts of 5, 1, 5
        store.write_table(whole.slice(start, end - start), tmp_path / f"part{index}.parquet")
    parts = [tmp_path / f"part{index}.parquet" for index in range(3)]
    assert store.merge_sorted_tables(parts, tmp_path / "merged.parquet", schema, "caption_id") == 11
    one, merged = (tmp_path / name for name in ("one.parquet", "merged.parquet"))
    assert one.read_bytes() == merged.read_bytes()
    with pytest.raises(ValueError, match="parts overlap"):
        store.merge_sorted_tables(parts[::-1], tmp_path / "bad.parquet", schema, "caption_id")
    assert not (tmp_path / "bad.parquet").exists()


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


def test_replaced_dir_swaps_in_a_complete_folder_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "models"
    (out / "dropped_method").mkdir(parents=True)
    (out / "dropped_method" / "weights.bin").write_text("old")
    with store.replaced_dir(out) as staged:
        assert staged.parent == out.parent and list(staged.iterdir()) == []
        (staged / "splitter").mkdir()
        (staged / "splitter" / "config.json").write_text("new")
        assert (out / "dropped_method").exists()  # the old folder stands until the end
    assert sorted(p.name for p in out.iterdir()) == ["splitter"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]  # no temp left


def test_replaced_dir_keeps_the_previous_folder_when_the_block_fails(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    out.mkdir()
    (out / "predictions.parquet").write_text("previous run")
    with pytest.raises(KeyboardInterrupt), store.replaced_dir(out) as staged:
        (staged / "predictions.parquet").write_text("half")
        raise KeyboardInterrupt
    assert (out / "predictions.parquet").read_text() == "previous run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generated"]
