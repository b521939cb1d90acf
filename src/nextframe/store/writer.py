"""The one parquet writer (``parquet_writer``) and the tables written through it.

It lays each vector column out so any row can be read on its own: uncompressed PLAIN
values, no dictionary, one data page per column chunk, row groups of about ``GROUP_BYTES``.
The values of a row group are then one contiguous run of bytes at the end of its page
(``VectorColumn`` reads them in place). The tables stay ordinary parquet for every other
reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from nextframe.store.arrays import is_vector_column, row_shape
from nextframe.store.atomic import atomic_path

FLUSH_ROWS = 4096  # rows per parquet row group of streamed tables (at most)
GROUP_BYTES = 64 * 2**20  # ... and about this many bytes of vectors per row group


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
