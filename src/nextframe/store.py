"""The project's parquet tables: schemas, atomic writes, and reads straight into tensors.

Every table is written to a temporary file beside its destination and renamed into place
only when complete, so an interrupted stage never leaves a half-written table that a
later stage (or ``dvc commit``) would take for real. Embedding columns are fixed-size
lists of float32 (float16 for hidden states) so that a whole column converts to one
``[N, D]`` array without a Python loop.

Every table goes through one writer (``parquet_writer``) that lays each vector column out
so any row can be read on its own: uncompressed PLAIN values, no dictionary, one data page
per column chunk, row groups of about ``GROUP_BYTES``. The values of a row group are then
one contiguous run of bytes at the end of its page, and ``VectorColumn`` reads any rows
by memory-mapping the file for the call: a consumer that needs 64 rows of a 25 GB table
reads 64 rows, and its resident memory does not grow with the table. The tables stay
ordinary parquet for every other reader.

``texts.parquet`` has one row per distinct caption (``caption_id``, a digest of the text);
a clip finds its row through its manifest caption (``read_text_embeddings``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
FLUSH_ROWS = 4096  # rows per parquet row group of streamed tables (at most)
GROUP_BYTES = 64 * 2**20  # ... and about this many bytes of vectors per row group
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


def caption_id(caption: str) -> str:
    """The key of a caption's row in texts.parquet: a digest of its text (128 bits)."""
    return hashlib.sha256(caption.encode()).hexdigest()[:32]


def text_embeddings_schema(info: EmbeddingInfo, text_length: int) -> pa.Schema:
    """One row per distinct caption, sorted by caption_id."""
    fields = [
        ("caption_id", pa.string()),
        ("caption", pa.string()),
        ("text_embed", vector_type(info.dim)),
        ("prior_embed", vector_type(info.dim)),
        ("hidden_states", pa.list_(vector_type(info.dim, pa.float16()), text_length)),
    ]
    return pa.schema(fields, metadata=info.to_metadata())


def text_rows(
    captions: Sequence[str],
    text_embed: np.ndarray | torch.Tensor,
    prior_embed: np.ndarray | torch.Tensor,
    hidden_states: np.ndarray | torch.Tensor,
    schema: pa.Schema,
) -> pa.Table:
    """Rows of ``text_embeddings_schema`` for encoded captions: one per distinct caption
    (its first encoding), sorted by caption_id."""
    keys = [caption_id(caption) for caption in captions]
    first = {key: row for row, key in reversed(list(enumerate(keys)))}
    order = np.array([first[key] for key in sorted(first)], dtype=np.int64)
    return pa.Table.from_arrays(
        [
            pa.array([keys[row] for row in order], pa.string()),
            pa.array([captions[row] for row in order], pa.string()),
            vectors_to_arrow(np.asarray(text_embed)[order], FLOAT32),  # [N, D]
            vectors_to_arrow(np.asarray(prior_embed)[order], FLOAT32),  # [N, D]
            vectors_to_arrow(np.asarray(hidden_states)[order], pa.float16()),  # [N, T, D]
        ],
        schema=schema,
    )


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


@contextmanager
def replaced_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside ``path`` to build a whole output in; only if the block
    succeeds does it take ``path``'s place (the old folder is removed), else it is removed
    and ``path`` is left as it was.

    Why: the stages' outputs are DVC ``persist`` outputs (dvc.yaml), which DVC does not
    delete before a run, so a run that fails (a params typo, Ctrl-C) keeps the previous
    outputs; a stage that writes a whole folder must therefore not leave an earlier run's
    files in it (a method no longer fitted, a decoder no longer run).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    building, old = temporary_path(path), path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        yield building
        if path.exists():
            os.replace(path, old)
        os.replace(building, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)


def write_json(payload: object, path: str | Path) -> None:
    """Write JSON atomically, keys sorted: the same payload always gives the same bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def is_vector_column(data_type: pa.DataType) -> bool:
    return pa.types.is_fixed_size_list(data_type)


def row_shape(data_type: pa.DataType) -> tuple[tuple[int, ...], pa.DataType]:
    """A (nested) fixed-size list type's per-row shape and value type: ``[T, D]`` float16."""
    shape = []
    while pa.types.is_fixed_size_list(data_type):
        shape.append(data_type.list_size)
        data_type = data_type.value_type
    return tuple(shape), data_type


def group_rows(schema: pa.Schema) -> int:
    """Rows per row group: ``FLUSH_ROWS``, fewer when rows are large (about ``GROUP_BYTES``
    of vectors), so a writer never buffers more than that and a reader maps little more."""
    row_bytes = 0
    for column in schema:
        if is_vector_column(column.type):
            shape, value_type = row_shape(column.type)
            row_bytes += int(np.prod(shape)) * value_type.bit_width // 8
    return max(1, min(FLUSH_ROWS, GROUP_BYTES // max(1, row_bytes)))


def parquet_writer(where: str | Path, schema: pa.Schema) -> pq.ParquetWriter:
    """The one parquet writer: vector columns plain, uncompressed, one page per row group
    (``VectorColumn`` reads their rows in place); other columns dictionary and snappy."""
    vectors = [column.name for column in schema if is_vector_column(column.type)]
    others = [column.name for column in schema if column.name not in vectors]
    return pq.ParquetWriter(
        where,
        schema,
        use_dictionary=others,
        compression={**dict.fromkeys(others, "snappy"), **dict.fromkeys(vectors, "none")},
        data_page_size=2**30,  # above any row group's bytes: one page per column chunk
        max_rows_per_page=2**30,
        write_statistics=True,  # null counts: VectorColumn checks there are none
    )


def write_table(table: pa.Table, path: str | Path) -> None:
    """Write a whole table atomically, in row groups of ``group_rows``."""
    with atomic_path(path) as tmp, parquet_writer(tmp, table.schema) as writer:
        writer.write_table(table, row_group_size=group_rows(table.schema))


@contextmanager
def table_writer(path: str | Path, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """Stream record batches into a table that appears only once it is complete."""
    with atomic_path(path) as tmp, parquet_writer(tmp, schema) as writer:
        yield writer


def split_by_key(table: pa.Table, key: str = "clip_id") -> Iterator[tuple[str, pa.Table]]:
    """(key, rows) runs of a table whose rows of one key are contiguous."""
    keys = table.column(key).to_numpy(zero_copy_only=False)
    if len(keys) == 0:
        return
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    ends = np.append(starts[1:], len(keys))
    for start, end in zip(starts, ends, strict=True):
        yield str(keys[start]), table.slice(start, end - start)


def split_by_clip(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(clip_id, rows) runs of a table whose rows of one clip are contiguous."""
    return split_by_key(table, "clip_id")


def stream_rows(
    path: Path, key: str, keep: Callable[[str], bool]
) -> Iterator[tuple[str, pa.Table]]:
    """(key, rows) of the table at ``path`` in file order, the keys ``keep`` accepts; one
    row group in memory at a time. The rows of one key may span row groups: they come as
    one run."""
    pending: tuple[str, list[pa.Table]] | None = None
    reader = pq.ParquetFile(path)
    for group in range(reader.num_row_groups):
        for value, rows in split_by_key(reader.read_row_group(group), key):
            if pending is not None and pending[0] == value:
                pending[1].append(rows)
                continue
            if pending is not None:
                yield pending[0], pa.concat_tables(pending[1])
            pending = (value, [rows]) if keep(value) else None
    if pending is not None:
        yield pending[0], pa.concat_tables(pending[1])


class SortedTableWriter:
    """Streams new rows and reused rows into one table in ``key`` order.

    New rows arrive sorted by key; ``reused`` yields (key, rows) sorted by key as well (a
    dict, or a stream such as ``stream_rows`` of the previous table, read as it goes), and
    each reused key is written just before the first new key that sorts after it. The rows
    of the last key seen stay pending until a later key starts (or ``close``), so ``drop``
    can still take all of that key's rows back. Each key's rows are appended as one piece,
    and the buffer is flushed as a row group once it holds ``group_rows(schema)`` rows, so
    the row groups depend only on the sequence of keys and their row counts: not on how
    the new rows were batched, nor on which rows were reused.
    """

    def __init__(
        self,
        writer: pq.ParquetWriter,
        schema: pa.Schema,
        reused: Mapping[str, pa.Table] | Iterable[tuple[str, pa.Table]] = (),
        key: str = "clip_id",
    ):
        self._writer = writer
        self._schema = schema
        self._key = key
        items = sorted(reused.items()) if isinstance(reused, Mapping) else reused
        self._reused = iter(items)
        self._next_reused = next(self._reused, None)
        self._pending: tuple[str, list[pa.Table]] | None = None
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._group_rows = group_rows(schema)
        self.rows = 0  # rows written (reused ones included), pending ones not

    def write(self, rows: pa.Table) -> None:
        for value, key_rows in split_by_key(rows, self._key):
            if self._pending is not None and self._pending[0] == value:
                self._pending[1].append(key_rows)
                continue
            self._commit()
            self._pending = (value, [key_rows])

    def drop(self, value: str) -> None:
        """Forget the rows of key ``value``; they must be the pending ones (or none)."""
        if self._pending is not None and self._pending[0] == value:
            self._pending = None

    def close(self) -> None:
        self._commit()
        self._append_reused_before(None)
        self._flush()

    def _append_reused_before(self, value: str | None) -> None:
        while self._next_reused is not None and (value is None or self._next_reused[0] < value):
            self._append(self._next_reused[1])
            self._next_reused = next(self._reused, None)

    def _commit(self) -> None:
        if self._pending is None:
            return
        value, parts = self._pending
        self._pending = None
        self._append_reused_before(value)
        self._append(pa.concat_tables(parts))

    def _append(self, rows: pa.Table) -> None:
        self._buffer.append(rows.select(self._schema.names).cast(self._schema))
        self._buffered += len(rows)
        self.rows += len(rows)
        if self._buffered >= self._group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            group = pa.concat_tables(self._buffer)
            self._writer.write_table(group, row_group_size=len(group))
        self._buffer, self._buffered = [], 0


def merge_sorted_tables(
    parts: Sequence[Path],
    path: str | Path,
    schema: pa.Schema,
    key: str,
    footer: Mapping[str, str] | None = None,
) -> int:
    """Concatenate tables sorted by ``key`` whose key ranges follow one another into one
    table at ``path`` (atomically), in the row groups one ``SortedTableWriter`` would have
    made writing all their rows; returns the rows written."""
    last: str | None = None
    with table_writer(path, schema) as writer:
        sorted_writer = SortedTableWriter(writer, schema, key=key)
        for part in parts:
            for value, rows in stream_rows(Path(part), key, lambda _: True):
                if last is not None and value <= last:
                    raise ValueError(f"{part}: {key} {value!r} follows {last!r}; parts overlap")
                sorted_writer.write(rows)
                last = value
        sorted_writer.close()
        if footer:
            writer.add_key_value_metadata(dict(footer))
    return sorted_writer.rows


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
    """Frame embeddings as one tensor, rows sorted by (clip_id, k)."""

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


def _embedding_table_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run the embed stage first (dvc repro embed)")
    return path


def read_image_embeddings(
    path: str | Path, clip_ids: Iterable[str] | None = None
) -> ImageEmbeddings:
    """The frames of ``clip_ids`` (default: every clip), streamed one row group at a time."""
    path = _embedding_table_path(path)
    reader = pq.ParquetFile(path)
    if clip_ids is None:
        table = reader.read()
    else:
        wanted = pa.array(sorted(set(clip_ids)), pa.string())
        groups = (reader.read_row_group(g) for g in range(reader.num_row_groups))
        table = (
            pa.concat_tables(
                [group.filter(pc.is_in(group.column("clip_id"), wanted)) for group in groups],
                promote_options="none",
            )
            if reader.num_row_groups
            else reader.schema_arrow.empty_table()
        )
    table = table.sort_by([("clip_id", "ascending"), ("k", "ascending")])
    return ImageEmbeddings(
        clip_ids=table.column("clip_id").to_pylist(),
        k=torch.from_numpy(table.column("k").to_numpy().astype(np.int64)),
        t_seconds=torch.from_numpy(table.column("t_seconds").to_numpy().astype(np.float64)),
        embeddings=torch.from_numpy(arrow_to_vectors(table.column("embedding")).copy()),
        info=EmbeddingInfo.from_schema(reader.schema_arrow),
    )


# ---------------------------------------------------------------------- rows read in place
#
# A vector column written by ``parquet_writer`` has, in every row group, one data page whose
# values (PLAIN: raw little-endian numbers) end the column chunk. Reading a row is reading
# ``row_bytes`` at a known offset. ``VectorColumn.locate`` checks that layout from the
# footer and each chunk's page header (Thrift compact protocol, parsed below) and refuses
# any other, so a table from another writer is an error, never wrong numbers.

PAGE_HEADER_BYTES = 4096  # read to parse a page header (a few dozen bytes here)
DATA_PAGE, DATA_PAGE_V2, PLAIN = 0, 3, 0  # parquet.thrift: PageType, Encoding


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = buffer[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _thrift_value(buffer: bytes, pos: int, kind: int) -> tuple[object, int]:
    """One value of Thrift compact type ``kind`` (maps do not occur in page headers)."""
    if kind in (1, 2):  # booleans live in the field header
        return kind == 1, pos
    if kind == 3:
        return buffer[pos], pos + 1
    if kind in (4, 5, 6):
        value, pos = _varint(buffer, pos)
        return _zigzag(value), pos
    if kind == 7:
        return None, pos + 8
    if kind == 8:
        size, pos = _varint(buffer, pos)
        return bytes(buffer[pos : pos + size]), pos + size
    if kind in (9, 10):
        head, pos = buffer[pos], pos + 1
        size, element = head >> 4, head & 0x0F
        if size == 15:
            size, pos = _varint(buffer, pos)
        items = []
        for _ in range(size):
            if element in (1, 2):  # booleans in lists are one byte each
                items.append(buffer[pos] == 1)
                pos += 1
            else:
                item, pos = _thrift_value(buffer, pos, element)
                items.append(item)
        return items, pos
    if kind == 12:
        return _thrift_struct(buffer, pos)
    raise ValueError(f"unexpected Thrift compact type {kind}")


def _thrift_struct(buffer: bytes, pos: int) -> tuple[dict[int, object], int]:
    """A Thrift compact struct as {field id: value}, and the position after it."""
    fields: dict[int, object] = {}
    last = 0
    while True:
        head, pos = buffer[pos], pos + 1
        if head == 0:
            return fields, pos
        delta, kind = head >> 4, head & 0x0F
        if delta:
            last += delta
        else:
            value, pos = _varint(buffer, pos)
            last = _zigzag(value)
        fields[last], pos = _thrift_value(buffer, pos, kind)


@dataclass(frozen=True)
class VectorColumn:
    """A vector column whose rows are read in place: row r of row group g starts at
    ``offsets[g] + (r - first_rows[g]) * row_bytes`` in the file."""

    path: Path
    name: str
    shape: tuple[int, ...]  # per row: (D,) or (T, D)
    dtype: np.dtype
    first_rows: np.ndarray  # [G + 1] int64: first row of each row group, then the row count
    offsets: np.ndarray  # [G] int64: file offset of each row group's first value

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return int(self.first_rows[-1])

    @classmethod
    def locate(
        cls, path: str | Path, name: str, metadata: pq.FileMetaData | None = None
    ) -> VectorColumn:
        """Find ``name``'s values in every row group; ValueError if they are not laid out
        for reading in place (compressed, dictionary, several pages, nulls)."""
        path = Path(path)
        metadata = metadata or pq.read_metadata(path)
        shape, value_type = row_shape(metadata.schema.to_arrow_schema().field(name).type)
        dtype = np.dtype(value_type.to_pandas_dtype())
        values_per_row = int(np.prod(shape))
        leaf = next(
            index
            for index in range(metadata.num_columns)
            if metadata.schema.column(index).path.split(".")[0] == name
        )
        first_rows, offsets = [0], []
        with open(path, "rb") as file:
            for group in range(metadata.num_row_groups):
                rows = metadata.row_group(group).num_rows
                chunk = metadata.row_group(group).column(leaf)
                file.seek(chunk.data_page_offset)
                head = file.read(min(PAGE_HEADER_BYTES, chunk.total_compressed_size))
                offsets.append(
                    cls._values_offset(path, name, chunk, head, rows, values_per_row, dtype)
                )
                first_rows.append(first_rows[-1] + rows)
        return cls(
            path, name, shape, dtype, np.array(first_rows, np.int64), np.array(offsets, np.int64)
        )

    @staticmethod
    def _values_offset(
        path: Path,
        name: str,
        chunk: pq.ColumnChunkMetaData,
        head: bytes,
        rows: int,
        values_per_row: int,
        dtype: np.dtype,
    ) -> int:
        def refuse(why: str) -> ValueError:
            return ValueError(
                f"{path}: column {name} cannot be read in place ({why}); expected a table "
                "written by this version of nextframe: rerun the stage that writes it"
            )

        stats = chunk.statistics
        if chunk.compression != "UNCOMPRESSED" or chunk.has_dictionary_page:
            raise refuse(f"{chunk.compression}, dictionary {chunk.has_dictionary_page}")
        if stats is None or not stats.has_null_count or stats.null_count != 0:
            raise refuse("nulls, or no null count")
        header, header_bytes = _thrift_struct(head, 0)
        page_type, page_bytes = header[1], header[3]
        page = header.get(5 if page_type == DATA_PAGE else 8, {})
        if page_type not in (DATA_PAGE, DATA_PAGE_V2) or page.get(1) != rows * values_per_row:
            raise refuse(f"first page of type {page_type} holds {page.get(1)} values")
        encoding = page.get(2 if page_type == DATA_PAGE else 4)
        if encoding != PLAIN or header_bytes + page_bytes != chunk.total_compressed_size:
            raise refuse(f"encoding {encoding}, or several pages in a row group")
        values_bytes = rows * values_per_row * dtype.itemsize
        if values_bytes > page_bytes:
            raise refuse("fewer bytes than values")
        return chunk.data_page_offset + chunk.total_compressed_size - values_bytes

    def read(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """``[len(rows), *shape]``: the values of ``rows`` (any order, repeats allowed),
        through a memory map of the file that lasts only this call."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape), self.dtype)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"{self.path}: rows outside 0..{len(self) - 1} of {self.name}")
        unique, inverse = np.unique(rows, return_inverse=True)
        groups = np.searchsorted(self.first_rows, unique, side="right") - 1
        starts = self.offsets[groups] + (unique - self.first_rows[groups]) * self.row_bytes
        # consecutive rows of one row group are one contiguous range of the file
        breaks = np.flatnonzero((np.diff(unique) != 1) | (np.diff(groups) != 0)) + 1
        values = np.empty((len(unique), *self.shape), self.dtype)
        mapped = np.memmap(self.path, dtype=np.uint8, mode="r")
        for first, end in zip(np.r_[0, breaks], np.r_[breaks, len(unique)], strict=True):
            begin = int(starts[first])
            run = mapped[begin : begin + (end - first) * self.row_bytes]
            values[first:end] = run.view(self.dtype).reshape(end - first, *self.shape)
        del mapped, run  # unmapped: the pages read stay in the page cache, not in this process
        out[:] = values[inverse]
        return out


@dataclass(frozen=True)
class FrameIndex:
    """images.parquet with its vectors left on disk: where each clip's frames are (rows
    ``starts[c]`` to ``starts[c] + counts[c]``, in time order) and their times;
    ``embeddings.read(rows)`` reads frame vectors in place."""

    clip_ids: list[str]  # sorted, distinct
    starts: np.ndarray  # [C] int64
    counts: np.ndarray  # [C] int64
    t_seconds: np.ndarray  # [N] float64, one per row
    embeddings: VectorColumn
    info: EmbeddingInfo

    def clip_slices(self) -> dict[str, slice]:
        return {
            clip_id: slice(int(start), int(start + count))
            for clip_id, start, count in zip(self.clip_ids, self.starts, self.counts, strict=True)
        }


def read_frame_index(path: str | Path) -> FrameIndex:
    """The ``FrameIndex`` of images.parquet (rows sorted by clip_id, k, as embed writes them)."""
    path = _embedding_table_path(path)
    metadata = pq.read_metadata(path)
    keys = pq.read_table(path, columns=["clip_id", "k", "t_seconds"])
    clip_ids, ks = keys.column("clip_id").combine_chunks(), keys.column("k").to_numpy()
    count = len(clip_ids)
    changes = pc.not_equal(clip_ids.slice(1), clip_ids.slice(0, max(count - 1, 0)))
    starts = np.flatnonzero(np.r_[count > 0, changes.to_numpy(zero_copy_only=False)])
    counts = np.diff(np.r_[starts, count])
    firsts = clip_ids.take(pa.array(starts)).to_pylist()
    same_clip = np.ones(count, dtype=bool)
    same_clip[starts] = False  # rows that continue the clip of the row before
    if firsts != sorted(set(firsts)) or not (np.diff(ks, prepend=-1)[same_clip] > 0).all():
        raise ValueError(f"{path}: rows are not sorted by clip_id, k; rerun the embed stage")
    return FrameIndex(
        clip_ids=firsts,
        starts=starts.astype(np.int64),
        counts=counts.astype(np.int64),
        t_seconds=keys.column("t_seconds").to_numpy().astype(np.float64),
        embeddings=VectorColumn.locate(path, "embedding", metadata),
        info=EmbeddingInfo.from_schema(pq.read_schema(path)),
    )


TEXT_VECTORS = ("text_embed", "prior_embed", "hidden_states")


class TextTable:
    """texts.parquet opened for reading: caption keys in memory, vectors read per row."""

    def __init__(self, path: str | Path) -> None:
        self.path = _embedding_table_path(path)
        metadata = pq.read_metadata(self.path)
        schema = metadata.schema.to_arrow_schema()
        if "caption_id" not in schema.names:
            raise ValueError(
                f"{self.path} has one row per clip (the layout of an older version); rerun "
                "the embed stage (dvc repro embed): it rebuilds the table with one row per "
                "distinct caption"
            )
        self.info = EmbeddingInfo.from_schema(schema)
        keys = pq.read_table(self.path, columns=["caption_id", "caption"])
        self.caption_ids: list[str] = keys.column("caption_id").to_pylist()
        self.captions: list[str] = keys.column("caption").to_pylist()
        self.columns = {
            name: VectorColumn.locate(self.path, name, metadata) for name in TEXT_VECTORS
        }
        self._rows = {key: row for row, key in enumerate(self.caption_ids)}

    def __len__(self) -> int:
        return len(self.caption_ids)

    def row(self, caption: str) -> int | None:
        """The row of ``caption``, None if the table has none."""
        return self._rows.get(caption_id(caption))

    def read(self, name: str, rows: Sequence[int] | np.ndarray) -> torch.Tensor:
        """``[len(rows), ...]`` values of vector column ``name`` (float16 hidden states)."""
        return torch.from_numpy(self.columns[name].read(rows))


def _positions(index: object, count: int) -> np.ndarray:
    if isinstance(index, torch.Tensor):
        index = index.cpu().numpy()
    return np.arange(count)[index]


@dataclass(frozen=True)
class RowView:
    """One vector column over a list of rows: ``view[index]`` reads just the rows asked
    for (an int, slice, list, array or tensor of positions) as a tensor."""

    table: TextTable
    name: str
    rows: np.ndarray  # [N] row of the table for each position

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.table.columns[self.name].shape)

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(np.empty(0, self.table.columns[self.name].dtype)).dtype

    def __getitem__(self, index: object) -> torch.Tensor:
        positions = _positions(index, len(self.rows))
        values = self.table.read(self.name, self.rows[positions].reshape(-1))
        return values.reshape(*positions.shape, *values.shape[1:])


@dataclass(frozen=True)
class TextEmbeddings:
    """The caption encodings of clips, read from texts.parquet only when indexed.

    ``clip_ids`` (sorted) are the clips whose manifest caption has a row, ``captions``
    their captions; ``text_embed`` [N, D], ``prior_embed`` [N, D] (float32) and
    ``hidden_states`` [N, T, D] (float16) index like tensors by position in ``clip_ids``
    (``texts.hidden_states[rows]``) and read only the rows asked for.
    """

    clip_ids: list[str]
    captions: list[str]
    caption_rows: np.ndarray  # [N] row of each clip's caption in ``table``
    table: TextTable = field(repr=False)

    @property
    def info(self) -> EmbeddingInfo:
        return self.table.info

    @property
    def text_embed(self) -> RowView:
        return RowView(self.table, "text_embed", self.caption_rows)

    @property
    def prior_embed(self) -> RowView:
        return RowView(self.table, "prior_embed", self.caption_rows)

    @property
    def hidden_states(self) -> RowView:
        return RowView(self.table, "hidden_states", self.caption_rows)

    def index(self) -> dict[str, int]:
        return {clip_id: row for row, clip_id in enumerate(self.clip_ids)}


def clip_captions(manifest: pd.DataFrame) -> pd.Series:
    """clip_id -> caption (missing ones as ""), the caption texts.parquet keys a clip by."""
    by_clip = manifest.drop_duplicates("clip_id").set_index("clip_id")["caption"]
    return by_clip.fillna("").astype(str)


def read_text_embeddings(path: str | Path, manifest: pd.DataFrame) -> TextEmbeddings:
    """The caption encodings of the manifest's clips (those whose caption has a row)."""
    table = TextTable(path)
    captions = clip_captions(manifest).sort_index()
    rows = [table.row(caption) for caption in captions]
    present = [row is not None for row in rows]
    return TextEmbeddings(
        clip_ids=[str(c) for c, keep in zip(captions.index, present, strict=True) if keep],
        captions=[c for c, keep in zip(captions, present, strict=True) if keep],
        caption_rows=np.array([row for row in rows if row is not None], dtype=np.int64),
        table=table,
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
