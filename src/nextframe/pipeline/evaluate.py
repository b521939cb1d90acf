"""The evaluate stage: score every generated rollout of the held-out clips against the truth.

Reads what generate wrote (predictions.parquet, decoded.parquet, clips.json) and the true
frame embeddings; loads no model. Prompts have no ground truth and are not scored.

``metrics/evaluate_full.json`` is one flat object with every number. Its keys, for every
method M in ``generate.methods``, rollout R in ``generate.rollouts``, decoder X in
``generate.decoders`` and h = 1..``evaluate.horizon``:

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
``evaluate.seed``). ``metrics/evaluate.json``, the DVC metrics file that ``dvc exp show``
and ``dvc metrics diff`` print, holds only the headline keys (``metrics.headline``).

``metrics/plots/cos_at_h.csv`` is wide: a column ``h`` and one column ``M.R`` per method
and rollout, one row per horizon, so ``dvc plots`` draws one line per method and rollout.
The first ``evaluate.contact_sheets`` held-out clips' contact sheets are copied to
``metrics/plots/contact_sheets/`` for DVC image plots as ``clip<i>_<decoder>.png``: names
that depend on params only, not on which clips a run held out, so checking out another
commit's sheets leaves no stale file behind. The folder holds exactly what this run wrote.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from nextframe.config import Params
from nextframe.errors import UserError
from nextframe.metrics import headline, score
from nextframe.pipeline.generate import (
    CLIPS_INDEX,
    DECODED_TABLE,
    PREDICTIONS_TABLE,
    PROMPT_SPLIT,
    SHEETS_DIR,
)
from nextframe.store import (
    ImageEmbeddings,
    atomic_path,
    read_image_embeddings,
    read_manifest,
    read_rollouts,
    read_text_embeddings,
    write_json,
)

PARAMS = ("evaluate", "runtime")
HEADLINE_FILE = "evaluate.json"
FULL_FILE = "evaluate_full.json"
CURVES_FILE = "plots/cos_at_h.csv"
SHEETS_PLOTS = "plots/contact_sheets"


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
    values: dict[str, float]  # every number (evaluate_full.json)
    curves: dict[str, list[float]]  # "M.R" -> cos@1..H
    plots: list[Path] = field(default_factory=list)  # the plot files this run wrote

    def metrics(self) -> dict[str, float]:
        return self.values

    def describe(self) -> str:
        parts = ", ".join(f"{name} {values[0]:.3f}" for name, values in self.curves.items())
        return f"cos@1 on {int(self.values['n_clips'])} held-out clips: {parts}"


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
    """Copy the sheets of ``clip_ids`` (every decoder) into ``out_dir`` as
    ``clip<i>_<decoder>.png``, i counting from 1; nothing else stays in ``out_dir``."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    copied = []
    for number, clip_id in enumerate(clip_ids, start=1):
        for sheet in sorted((generated_dir / SHEETS_DIR).glob(f"{clip_id}_*.png")):
            decoder = sheet.stem.removeprefix(f"{clip_id}_")
            target = out_dir / f"clip{number}_{decoder}.png"
            shutil.copyfile(sheet, target)
            copied.append(target)
    return copied


def run(
    manifest_path: Path,
    embeddings_dir: Path,
    generated_dir: Path,
    metrics_dir: Path,
    params: Params,
) -> EvaluateSummary:
    """Score the generated clips; write the metrics files, the curves and contact sheets."""
    settings = params.evaluate
    index_path = generated_dir / CLIPS_INDEX
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
    try:
        predictions = read_rollouts(generated_dir / PREDICTIONS_TABLE, clip_ids, n_frames)
        # Indexes of the decoded clips among clip_ids (an index without the flag: all decoded).
        decoded_rows = [row for row, c in enumerate(held_out) if c.get("decoded", True)]
        decoded_ids = [clip_ids[row] for row in decoded_rows]
        decoded_path = generated_dir / DECODED_TABLE
        decoded = (
            read_rollouts(decoded_path, decoded_ids, n_frames)
            if decoded_path.exists() and decoded_ids
            else {}
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    scores = score(
        predictions,
        decoded,
        truth,
        n_truth,
        text_embed,
        settings,
        torch.tensor(decoded_rows, dtype=torch.int64),
    )
    bad = [key for key, value in scores.metrics.items() if not math.isfinite(value)]
    if bad:
        raise UserError(f"non-finite metrics {bad[:5]}; check the held-out clips in {index_path}")
    write_json(scores.metrics, metrics_dir / FULL_FILE)
    write_json(headline(scores.metrics), metrics_dir / HEADLINE_FILE)
    curves_path = metrics_dir / CURVES_FILE
    write_curves(scores.curves, curves_path)
    sheets = copy_contact_sheets(
        decoded_ids[: settings.contact_sheets], generated_dir, metrics_dir / SHEETS_PLOTS
    )
    return EvaluateSummary(scores.metrics, scores.curves, plots=[curves_path, *sheets])
