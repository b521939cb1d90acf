"""images.parquet: frame embeddings read whole (``ImageEmbeddings``) or left on disk
(``FrameIndex``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from nextframe.store.arrays import arrow_to_vectors
from nextframe.store.schemas import EmbeddingInfo, embedding_table_path
from nextframe.store.vectors import VectorColumn


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


def read_image_embeddings(
    path: str | Path, clip_ids: Iterable[str] | None = None
) -> ImageEmbeddings:
    """The frames of ``clip_ids`` (default: every clip), streamed one row group at a time."""
    path = embedding_table_path(path)
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
    path = embedding_table_path(path)
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
