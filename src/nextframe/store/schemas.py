"""The tables' schemas and what an embedding table's vectors mean (``EmbeddingInfo``).

``texts.parquet`` has one row per distinct caption (``caption_id``, a digest of the text);
a clip finds its row through its manifest caption (``read_text_embeddings``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from nextframe.store.arrays import vectors_to_arrow

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


def embedding_table_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; run the embed stage first (dvc repro embed)")
    return path
