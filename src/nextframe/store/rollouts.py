"""Rollouts (labels -> ``[C, n, D]`` tensors) to and from predictions/decoded tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from nextframe.store.arrays import arrow_to_vectors, vectors_to_arrow
from nextframe.store.schemas import FLOAT32

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
