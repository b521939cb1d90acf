"""Tables in key order: runs of one key, streamed reads, sorted writing and merging."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nextframe.store.writer import group_rows, table_writer


def split_by_key(table: pa.Table, key: str = "clip_id") -> Iterator[tuple[str, pa.Table]]:
    """(key, rows) runs of a table whose rows of one key are contiguous."""
    keys = table.column(key).to_numpy(zero_copy_only=False)
    if len(keys) == 0:
        return
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    ends = np.append(starts[1:], len(keys))
    for start, end in zip(starts, ends, strict=True):
        yield str(keys[start]), table.slice(start, end - start)


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
