"""``VectorColumn``: the rows of a vector column read in place, by memory-mapping the file
for the call: a consumer that needs 64 rows of a 25 GB table reads 64 rows, and its
resident memory does not grow with the table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from nextframe.store.arrays import row_shape
from nextframe.store.parquet_meta import (
    DATA_PAGE,
    DATA_PAGE_V2,
    PAGE_HEADER_BYTES,
    PLAIN,
    thrift_struct,
)


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
        header, header_bytes = thrift_struct(head, 0)
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
