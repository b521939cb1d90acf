"""The evaluate stage: score every generated rollout of the held-out clips against the truth.

Reads what generate wrote (predictions.parquet, decoded.parquet, clips.json) and the true
frame embeddings; loads no model. Prompts have no ground truth and are not scored.

``metrics/evaluate.json`` is one flat object (``dvc metrics`` shows it as is). Its keys,
for every method M in ``generate.methods``, rollout R in ``generate.rollouts``, decoder
X in ``generate.decoders`` and h = 1..``evaluate.horizon``:

  M.R.cos@h          mean over clips of cos(step h of the rollout, true frame h)
  M.R.cos_mean       mean over clips of the clip's mean of cos@1..H
  M.R.motion@h       cos(step h - step 0, frame h - frame 0) on the unit sphere: does the
                     rollout move the way the clip moves (0 for standing still)
  M.R.motion_mean    mean over clips of the clip's mean of motion@1..H
  M.R.X.truth_cos    decoded frames, re-encoded, vs the true frames (aligned frames, mean)
  M.R.X.consistency  mean cosine over all pairs of frames of the decoded video
  M.R.X.text_sim     mean cosine between the caption's text embedding and the decoded frames
  n_clips            held-out clips scored on embeddings (generate.max_clips)
  n_decoded_clips    of those, decoded and scored on pictures (generate.decode_clips)

and each value key K above also has ``K.ci_low`` and ``K.ci_high``: the percentile
bootstrap interval (``evaluate.confidence``, ``evaluate.bootstrap`` resamples of clips,
``evaluate.seed``). MLflow does not allow ``@`` in metric names, so there it reads ``_at_``.

``metrics/plots/cos_at_h.csv`` is wide: a column ``h`` and one column ``M.R`` per method
and rollout, one row per horizon, so ``dvc plots`` draws one line per method and rollout.
The first ``evaluate.contact_sheets`` held-out clips' contact sheets are copied to
``metrics/plots/contact_sheets/`` for DVC image plots.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import torch
from torch import Tensor

from nextframe.config import EvaluateParams
from nextframe.errors import UserError
from nextframe.generate_stage import PROMPT_SPLIT
from nextframe.metrics import (
    cos_at_h,
    frame_consistency,
    motion_at_h,
    summarize,
    text_frame_similarity,
    truth_cosine,
)
from nextframe.store import (
    ImageEmbeddings,
    arrow_to_vectors,
    atomic_path,
    read_image_embeddings,
    read_manifest,
    read_text_embeddings,
)


def read_long(
    path: Path, keys: tuple[str, ...], clip_ids: list[str], n_frames: int
) -> dict[tuple[str, ...], Tensor]:
    """A predictions-like table back to ``keys`` -> [C, n_frames, D] in ``clip_ids`` order."""
    if not path.exists():
        raise UserError(f"{path} not found; run the generate stage first (dvc repro generate)")
    table = pq.read_table(path)
    frame = table.drop_columns(["embedding"]).to_pandas()
    vectors = torch.from_numpy(arrow_to_vectors(table.column("embedding")).copy())  # [N, D]
    order = {clip_id: index for index, clip_id in enumerate(clip_ids)}
    frame = frame[frame["clip_id"].isin(order)]
    out: dict[tuple[str, ...], Tensor] = {}
    for labels, rows in frame.groupby(list(keys), sort=False):
        values = torch.full((len(clip_ids), n_frames, vectors.shape[1]), float("nan"))
        clip_index = torch.tensor(rows["clip_id"].map(order).to_numpy())
        step = torch.tensor(rows["step"].to_numpy(), dtype=torch.int64)
        values[clip_index, step] = vectors[torch.tensor(rows.index.to_numpy())]
        if torch.isnan(values).any():
            raise UserError(f"{path}: {labels} lacks some clip or step; rerun the generate stage")
        out[tuple(labels)] = values
    return out


def true_frames(images: ImageEmbeddings, clip_ids: list[str]) -> tuple[Tensor, Tensor]:
    """Padded true frame embeddings [C, F, D] and the frame counts [C]."""
    slices = images.clip_slices()
    missing = [c for c in clip_ids if c not in slices]
    if missing:
        raise UserError(
            f"generated clips {missing[:3]} have no frames in images.parquet; rerun dvc repro"
        )
    counts = torch.tensor([slices[c].stop - slices[c].start for c in clip_ids])
    frames = torch.zeros(len(clip_ids), int(counts.max()), images.embeddings.shape[1])
    for row, clip_id in enumerate(clip_ids):
        frames[row, : counts[row]] = images.embeddings[slices[clip_id]]
    return frames, counts


@dataclass
class EvaluateSummary:
    metrics: dict[str, float]
    curves: dict[str, list[float]]  # "M.R" -> cos@1..H
    plots: list[Path] = field(default_factory=list)  # the plot files run_evaluate wrote

    def mlflow_metrics(self) -> dict[str, float]:
        return {key.replace("@", "_at_"): value for key, value in self.metrics.items()}

    def describe(self) -> str:
        parts = ", ".join(f"{name} {values[0]:.3f}" for name, values in self.curves.items())
        return f"cos@1 on {int(self.metrics['n_clips'])} held-out clips: {parts}"


def add(metrics: dict[str, float], key: str, values: Tensor, params: EvaluateParams) -> None:
    summary = summarize(values, params.bootstrap, params.confidence, params.seed)
    metrics[key] = summary.mean
    metrics[f"{key}.ci_low"] = summary.ci_low
    metrics[f"{key}.ci_high"] = summary.ci_high


def score(
    predictions: dict[tuple[str, ...], Tensor],
    decoded: dict[tuple[str, ...], Tensor],
    truth: Tensor,
    n_truth: Tensor,
    text_embed: Tensor,
    params: EvaluateParams,
    decoded_rows: Tensor | None = None,
) -> EvaluateSummary:
    """All metrics of the module docstring from tensors: predictions (M, R) -> [C, n, D].

    ``decoded`` holds only the clips at ``decoded_rows`` of the C clips (default: all).
    """
    horizon = params.horizon
    if int(n_truth.max()) - 1 < horizon:
        raise UserError(
            f"evaluate.horizon is {horizon} but the longest held-out clip has only "
            f"{int(n_truth.max())} frames (steps 1..{int(n_truth.max()) - 1}); "
            "lower evaluate.horizon"
        )
    metrics: dict[str, float] = {"n_clips": float(truth.shape[0])}
    curves: dict[str, list[float]] = {}
    for (method, kind), rolled in predictions.items():
        if rolled.shape[1] - 1 < horizon:
            raise UserError(
                f"evaluate.horizon is {horizon} but generate.n_frames gives steps "
                f"1..{rolled.shape[1] - 1}; raise generate.n_frames or lower evaluate.horizon"
            )
        per_clip = cos_at_h(rolled, truth, n_truth, horizon)  # [C, H]
        name = f"{method}.{kind}"
        for h in range(1, horizon + 1):
            add(metrics, f"{name}.cos@{h}", per_clip[:, h - 1], params)
        curves[name] = [metrics[f"{name}.cos@{h}"] for h in range(1, horizon + 1)]
        add(metrics, f"{name}.cos_mean", per_clip.nanmean(dim=1), params)
        motion = motion_at_h(rolled, truth, n_truth, horizon)  # [C, H]
        for h in range(1, horizon + 1):
            add(metrics, f"{name}.motion@{h}", motion[:, h - 1], params)
        add(metrics, f"{name}.motion_mean", motion.nanmean(dim=1), params)
    rows = torch.arange(truth.shape[0]) if decoded_rows is None else decoded_rows
    if decoded:
        metrics["n_decoded_clips"] = float(len(rows))
    for (method, kind, decoder), frames in decoded.items():
        name = f"{method}.{kind}.{decoder}"
        add(metrics, f"{name}.truth_cos", truth_cosine(frames, truth[rows], n_truth[rows]), params)
        add(metrics, f"{name}.consistency", frame_consistency(frames), params)
        add(metrics, f"{name}.text_sim", text_frame_similarity(text_embed[rows], frames), params)
    return EvaluateSummary(metrics=metrics, curves=curves)


def write_curves(curves: dict[str, list[float]], path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["h", *curves])
    horizon = len(next(iter(curves.values())))
    for h in range(1, horizon + 1):
        writer.writerow([h, *(f"{values[h - 1]:.6g}" for values in curves.values())])
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def copy_contact_sheets(clip_ids: list[str], generated_dir: Path, out_dir: Path) -> list[Path]:
    """Copy the sheets of ``clip_ids`` (every decoder) into ``out_dir``, replacing old ones."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    copied = []
    for clip_id in clip_ids:
        for sheet in sorted((generated_dir / "contact_sheets").glob(f"{clip_id}_*.png")):
            shutil.copyfile(sheet, out_dir / sheet.name)
            copied.append(out_dir / sheet.name)
    return copied


def run_evaluate(
    manifest_path: Path,
    embeddings_dir: Path,
    generated_dir: Path,
    metrics_dir: Path,
    params: EvaluateParams,
) -> EvaluateSummary:
    """Score the generated clips and write evaluate.json, cos_at_h.csv and contact sheets."""
    index_path = generated_dir / "clips.json"
    if not index_path.exists():
        raise UserError(
            f"{index_path} not found; run the generate stage first (dvc repro generate)"
        )
    index = json.loads(index_path.read_text())
    held_out = [c for c in index["clips"] if c["split"] != PROMPT_SPLIT]
    clip_ids = [c["clip_id"] for c in held_out]
    manifest = read_manifest(manifest_path)
    leaked = sorted(set(manifest.loc[manifest["split"] == "train", "clip_id"]) & set(clip_ids))
    if leaked:
        raise UserError(
            f"generated clips {leaked[:3]} are training clips; rerun generate after download"
        )
    images = read_image_embeddings(embeddings_dir / "images.parquet")
    texts = read_text_embeddings(embeddings_dir / "texts.parquet")
    truth, n_truth = true_frames(images, clip_ids)
    rows = texts.index()
    text_embed = texts.text_embed[[rows[c] for c in clip_ids]]
    n_frames = int(index["n_frames"])
    predictions = read_long(
        generated_dir / "predictions.parquet", ("method", "rollout"), clip_ids, n_frames
    )
    decoded_path = generated_dir / "decoded.parquet"
    # Indexes of the decoded clips among clip_ids (an index without the flag: all decoded).
    decoded_rows = [row for row, c in enumerate(held_out) if c.get("decoded", True)]
    decoded_ids = [clip_ids[row] for row in decoded_rows]
    decoded = (
        read_long(decoded_path, ("method", "rollout", "decoder"), decoded_ids, n_frames)
        if decoded_path.exists() and decoded_ids
        else {}
    )
    summary = score(
        predictions,
        decoded,
        truth,
        n_truth,
        text_embed,
        params,
        torch.tensor(decoded_rows, dtype=torch.int64),
    )
    bad = [key for key, value in summary.metrics.items() if not math.isfinite(value)]
    if bad:
        raise UserError(f"non-finite metrics {bad[:5]}; check the held-out clips in {index_path}")
    with atomic_path(metrics_dir / "evaluate.json") as tmp:
        tmp.write_text(json.dumps(summary.metrics, indent=2) + "\n")
    curves_path = metrics_dir / "plots" / "cos_at_h.csv"
    write_curves(summary.curves, curves_path)
    sheets = copy_contact_sheets(
        decoded_ids[: params.contact_sheets],
        generated_dir,
        metrics_dir / "plots" / "contact_sheets",
    )
    summary.plots = [curves_path, *sheets]
    return summary
