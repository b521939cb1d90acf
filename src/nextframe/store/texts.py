"""texts.parquet: caption encodings, one row per distinct caption, read per row.

A clip finds its row through its manifest caption (``read_text_embeddings``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from nextframe.store.schemas import EmbeddingInfo, caption_id, embedding_table_path
from nextframe.store.vectors import VectorColumn

TEXT_VECTORS = ("text_embed", "prior_embed", "hidden_states")


class TextTable:
    """texts.parquet opened for reading: caption keys in memory, vectors read per row."""

    def __init__(self, path: str | Path) -> None:
        self.path = embedding_table_path(path)
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
