"""The project's parquet tables: schemas, atomic writes, and reads straight into tensors.

Every table is written to a temporary file beside its destination and renamed into place
only when complete, so an interrupted stage never leaves a half-written table that a
later stage (or ``dvc commit``) would take for real. Embedding columns are fixed-size
lists of float32 so that a whole column converts to one ``[N, D]`` array without a
Python loop.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

MANIFEST_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("source", pa.string()),
        ("caption", pa.string()),
        ("label", pa.string()),
        ("split", pa.string()),
        ("path", pa.string()),
        ("url", pa.string()),
        ("status", pa.string()),
    ]
)

FRAMES_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("k", pa.int32()),
        ("frame_index", pa.int32()),
        ("t_seconds", pa.float64()),
        ("score", pa.float64()),
        ("path", pa.string()),
    ]
)

TRUTH_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("frame_index", pa.int32()),
        ("t_seconds", pa.float64()),
        ("cx", pa.float64()),  # object centre, pixels from the left edge
        ("cy", pa.float64()),  # pixels from the top edge
        ("radius", pa.float64()),  # circumradius, pixels
        ("angle", pa.float64()),  # orientation, radians
        ("frame_size", pa.int32()),  # side of the square source frame the pixels refer to
    ]
)

SPLITS = ("train", "val", "test")
FLUSH_ROWS = 4096  # rows per parquet row group of streamed tables
METADATA_KEY = b"nextframe"


@dataclass(frozen=True)
class EmbeddingInfo:
    """What a vector in an embedding table means; stored in the table's schema metadata."""

    backbone: str
    model_ids: Mapping[str, str]
    dim: int
    normalized: bool = False

    def to_metadata(self) -> dict[bytes, bytes]:
        payload = {
            "backbone": self.backbone,
            "model_ids": dict(self.model_ids),
            "dim": self.dim,
            "normalized": self.normalized,
        }
        return {METADATA_KEY: json.dumps(payload, sort_keys=True).encode()}

    @classmethod
    def from_schema(cls, schema: pa.Schema) -> EmbeddingInfo:
        metadata = schema.metadata or {}
        if METADATA_KEY not in metadata:
            raise ValueError("embedding table has no nextframe metadata; was it written by embed?")
        payload = json.loads(metadata[METADATA_KEY])
        return cls(
            backbone=payload["backbone"],
            model_ids=payload["model_ids"],
            dim=int(payload["dim"]),
            normalized=bool(payload["normalized"]),
        )


FLOAT32 = pa.float32()


def vector_type(dim: int, value_type: pa.DataType = FLOAT32) -> pa.DataType:
    return pa.list_(value_type, dim)


def image_embeddings_schema(info: EmbeddingInfo) -> pa.Schema:
    fields = [
        ("clip_id", pa.string()),
        ("k", pa.int32()),
        ("t_seconds", pa.float64()),
        ("embedding", vector_type(info.dim)),
    ]
    return pa.schema(fields, metadata=info.to_metadata())


def text_embeddings_schema(info: EmbeddingInfo, text_length: int) -> pa.Schema:
    fields = [
        ("clip_id", pa.string()),
        ("caption", pa.string()),
        ("text_embed", vector_type(info.dim)),
        ("prior_embed", vector_type(info.dim)),
        ("hidden_states", pa.list_(vector_type(info.dim, pa.float16()), text_length)),
    ]
    return pa.schema(fields, metadata=info.to_metadata())


def predictions_schema(info: EmbeddingInfo) -> pa.Schema:
    fields = [
        ("clip_id", pa.string()),
        ("method", pa.string()),
        ("rollout", pa.string()),
        ("step", pa.int32()),
        ("embedding", vector_type(info.dim)),
    ]
    return pa.schema(fields, metadata=info.to_metadata())


def decoded_schema(info: EmbeddingInfo) -> pa.Schema:
    """Re-encoded decoded frames: one row per clip x method x rollout x decoder x step."""
    fields = [
        ("clip_id", pa.string()),
        ("method", pa.string()),
        ("rollout", pa.string()),
        ("decoder", pa.string()),
        ("step", pa.int32()),
        ("embedding", vector_type(info.dim)),
    ]
    return pa.schema(fields, metadata=info.to_metadata())


def vectors_to_arrow(vectors: np.ndarray | torch.Tensor, value_type: pa.DataType) -> pa.Array:
    """``[N, D]`` (or ``[N, T, D]``) array to a (nested) fixed-size list array, no Python loop."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    numpy_type = value_type.to_pandas_dtype()
    values = np.ascontiguousarray(vectors, dtype=numpy_type)
    array: pa.Array = pa.array(values.reshape(-1), type=value_type)
    for size in reversed(values.shape[1:]):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array


def arrow_to_vectors(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A (nested) fixed-size list column back to a dense ``[N, ..., D]`` array."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    shape = [len(array)]
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False).reshape(shape)


def temporary_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(payload: object, path: str | Path) -> None:
    """Write JSON atomically, keys sorted: the same payload always gives the same bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_table(table: pa.Table, path: str | Path) -> None:
    """Write a whole table atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


@contextmanager
def table_writer(path: str | Path, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """Stream record batches into a table that appears only once it is complete."""
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        yield writer


def split_by_clip(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(clip_id, rows) runs of a table whose rows of one clip are contiguous."""
    clip_ids = table.column("clip_id").to_numpy(zero_copy_only=False)
    if len(clip_ids) == 0:
        return
    starts = np.flatnonzero(np.concatenate([[True], clip_ids[1:] != clip_ids[:-1]]))
    ends = np.append(starts[1:], len(clip_ids))
    for start, end in zip(starts, ends, strict=True):
        yield str(clip_ids[start]), table.slice(start, end - start)


class SortedTableWriter:
    """Streams new clips' rows and reused clips' rows into one table in clip_id order.

    New rows arrive sorted; each reused clip is written just before the first new clip
    that sorts after it. The rows of the last clip seen stay pending until a later clip
    starts (or ``close``), so ``drop`` can still take all of that clip's rows back.
    Rows are buffered into row groups of about ``FLUSH_ROWS``.
    """

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema, reused: dict[str, pa.Table]):
        self._writer = writer
        self._schema = schema
        self._reused = sorted(reused.items(), reverse=True)  # pop() gives the smallest id
        self._pending: tuple[str, list[pa.Table]] | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self.rows = 0  # rows written (reused ones included), pending ones not

    def write(self, rows: pa.Table) -> None:
        for clip_id, clip_rows in split_by_clip(rows):
            if self._pending is not None and self._pending[0] == clip_id:
                self._pending[1].append(clip_rows)
                continue
            self._commit()
            self._pending = (clip_id, [clip_rows])

    def drop(self, clip_id: str) -> None:
        """Forget the rows of ``clip_id``; they must be the pending ones (or none)."""
        if self._pending is not None and self._pending[0] == clip_id:
            self._pending = None

    def close(self) -> None:
        self._commit()
        while self._reused:
            self._append(self._reused.pop()[1])
        self._flush()

    def _commit(self) -> None:
        if self._pending is None:
            return
        clip_id, parts = self._pending
        self._pending = None
        while self._reused and self._reused[-1][0] < clip_id:
            self._append(self._reused.pop()[1])
        for part in parts:
            self._append(part)

    def _append(self, rows: pa.Table) -> None:
        self._buffer.append(rows.select(self._schema.names).cast(self._schema))
        self._buffered += len(rows)
        self.rows += len(rows)
        if self._buffered >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.concat_tables(self._buffer))
        self._buffer, self._buffered = [], 0


def write_dataframe(frame: pd.DataFrame, schema: pa.Schema, path: str | Path) -> None:
    """Check ``frame`` against ``schema`` (exact columns, castable types) and write it."""
    expected = list(schema.names)
    if list(frame.columns) != expected:
        raise ValueError(f"{path}: expected columns {expected}, got {list(frame.columns)}")
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    write_table(table, path)


def read_dataframe(path: str | Path, schema: pa.Schema) -> pd.DataFrame:
    """Read a table written with ``schema``; a missing file or column is a clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run the stage that writes it (dvc repro)")
    table = pq.read_table(path)
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; was it written by an older version?")
    return table.select(schema.names).to_pandas()


def read_manifest(path: str | Path) -> pd.DataFrame:
    return read_dataframe(path, MANIFEST_SCHEMA)


def read_frames(path: str | Path) -> pd.DataFrame:
    return read_dataframe(path, FRAMES_SCHEMA)


def read_truth(path: str | Path) -> pd.DataFrame:
    return read_dataframe(path, TRUTH_SCHEMA)


@dataclass(frozen=True)
class ImageEmbeddings:
    """All frame embeddings as one tensor, rows sorted by (clip_id, k)."""

    clip_ids: list[str]
    k: torch.Tensor  # [N] int64
    t_seconds: torch.Tensor  # [N] float64
    embeddings: torch.Tensor  # [N, D] float32, raw (not normalised)
    info: EmbeddingInfo

    def clip_slices(self) -> dict[str, slice]:
        """Row range of every clip; rows of one clip are contiguous and in time order."""
        slices: dict[str, slice] = {}
        start = 0
        for index in range(1, len(self.clip_ids) + 1):
            if index == len(self.clip_ids) or self.clip_ids[index] != self.clip_ids[start]:
                slices[self.clip_ids[start]] = slice(start, index)
                start = index
        return slices


@dataclass(frozen=True)
class TextEmbeddings:
    """Per-clip caption encodings as tensors, rows in the order of ``clip_ids``."""

    clip_ids: list[str]
    captions: list[str]
    text_embed: torch.Tensor  # [N, D] float32
    prior_embed: torch.Tensor  # [N, D] float32
    hidden_states: torch.Tensor  # [N, T, D] float16
    info: EmbeddingInfo

    def index(self) -> dict[str, int]:
        return {clip_id: row for row, clip_id in enumerate(self.clip_ids)}


def _read_embedding_table(path: str | Path) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run the embed stage first (dvc repro embed)")
    return pq.read_table(path)


def read_image_embeddings(path: str | Path) -> ImageEmbeddings:
    table = _read_embedding_table(path).sort_by([("clip_id", "ascending"), ("k", "ascending")])
    return ImageEmbeddings(
        clip_ids=table.column("clip_id").to_pylist(),
        k=torch.from_numpy(table.column("k").to_numpy().astype(np.int64)),
        t_seconds=torch.from_numpy(table.column("t_seconds").to_numpy().astype(np.float64)),
        embeddings=torch.from_numpy(arrow_to_vectors(table.column("embedding")).copy()),
        info=EmbeddingInfo.from_schema(table.schema),
    )


def read_text_embeddings(path: str | Path) -> TextEmbeddings:
    table = _read_embedding_table(path).sort_by([("clip_id", "ascending")])
    return TextEmbeddings(
        clip_ids=table.column("clip_id").to_pylist(),
        captions=table.column("caption").to_pylist(),
        text_embed=torch.from_numpy(arrow_to_vectors(table.column("text_embed")).copy()),
        prior_embed=torch.from_numpy(arrow_to_vectors(table.column("prior_embed")).copy()),
        hidden_states=torch.from_numpy(arrow_to_vectors(table.column("hidden_states")).copy()),
        info=EmbeddingInfo.from_schema(table.schema),
    )


Rollouts = dict[tuple[str, ...], torch.Tensor]  # labels (method, rollout[, decoder]) -> [C, n, D]


def rollouts_to_table(clip_ids: list[str], rollouts: Rollouts, schema: pa.Schema) -> pa.Table:
    """One row per clip x step of every rollout; the label columns sit between clip_id
    and step in ``schema`` (``predictions_schema``, ``decoded_schema``)."""
    keys = schema.names[1:-2]
    columns: dict[str, list] = {"clip_id": [], **{key: [] for key in keys}, "step": []}
    vectors = []
    for labels, values in rollouts.items():
        count, steps = values.shape[:2]
        columns["clip_id"].append(np.repeat(np.asarray(clip_ids, dtype=object), steps))
        for key, label in zip(keys, labels, strict=True):
            columns[key].append(np.full(count * steps, label, dtype=object))
        columns["step"].append(np.tile(np.arange(steps, dtype=np.int32), count))
        vectors.append(values.reshape(count * steps, -1).numpy())
    arrays = [
        pa.array(np.concatenate(columns[name]), type=schema.field(name).type)
        for name in ("clip_id", *keys, "step")
    ]
    arrays.append(vectors_to_arrow(np.concatenate(vectors), FLOAT32))
    return pa.Table.from_arrays(arrays, schema=schema)


def read_rollouts(path: str | Path, clip_ids: list[str], n_frames: int) -> Rollouts:
    """``rollouts_to_table``'s table back to labels -> [C, n_frames, D] in ``clip_ids`` order.

    Rows of other clips are ignored; a rollout that lacks a clip or step is an error.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run the generate stage (dvc repro generate)")
    table = pq.read_table(path)
    keys = table.schema.names[1:-2]
    frame = table.drop_columns(["embedding"]).to_pandas()
    vectors = torch.from_numpy(arrow_to_vectors(table.column("embedding")).copy())  # [N, D]
    order = {clip_id: index for index, clip_id in enumerate(clip_ids)}
    frame = frame[frame["clip_id"].isin(order)]
    out: Rollouts = {}
    for labels, rows in frame.groupby(list(keys), sort=False):
        values = torch.full((len(clip_ids), n_frames, vectors.shape[1]), float("nan"))
        clip_index = torch.tensor(rows["clip_id"].map(order).to_numpy())
        step = torch.tensor(rows["step"].to_numpy(), dtype=torch.int64)
        values[clip_index, step] = vectors[torch.tensor(rows.index.to_numpy())]
        if torch.isnan(values).any():
            raise ValueError(f"{path}: {labels} lacks some clip or step; rerun the generate stage")
        out[tuple(labels)] = values
    return out


@dataclass(frozen=True)
class ClipSelection:
    """The clips of one split that every table has, and why the others were left out."""

    clip_ids: list[str]  # sorted
    skipped: dict[str, int]  # reason -> clips: not_ok, no_embeddings, under_2_frames


def select_clips(
    manifest: pd.DataFrame, images: ImageEmbeddings, texts: TextEmbeddings, split: str
) -> ClipSelection:
    """The ``ok`` clips of ``split`` with a caption encoding and at least 2 embedded frames."""
    slices, text_rows = images.clip_slices(), texts.index()
    of_split = manifest[manifest["split"] == split]
    ok = of_split[of_split["status"] == "ok"]
    skipped = {"not_ok": len(of_split) - len(ok), "no_embeddings": 0, "under_2_frames": 0}
    chosen = []
    for clip_id in ok["clip_id"]:
        if clip_id not in slices or clip_id not in text_rows:
            skipped["no_embeddings"] += 1
        elif slices[clip_id].stop - slices[clip_id].start < 2:
            skipped["under_2_frames"] += 1
        else:
            chosen.append(clip_id)
    return ClipSelection(sorted(chosen), skipped)
