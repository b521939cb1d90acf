"""Plain tables as data frames: the manifest, the selected frames, the true poses."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from nextframe.store.schemas import FRAMES_SCHEMA, MANIFEST_SCHEMA, TRUTH_SCHEMA
from nextframe.store.writer import write_table


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
