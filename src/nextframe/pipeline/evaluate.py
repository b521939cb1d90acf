"""The evaluate stage: score every generated rollout of the test clips against the truth.

Reads what generate wrote (predictions.parquet, decoded.parquet, the lossless frame strips,
clips.json), the true frame embeddings and pictures and, for synthetic clips, the object's
true pose (``data/raw/truth.parquet``); loads no model. Prompts have no truth and are not
scored. Every score is first computed per clip, then summarised over clips.

``metrics/evaluate_full.json`` is one flat object with every number. For every method M in
``generate.methods``, rollout R in ``generate.rollouts``, decoder X in ``generate.decoders``
(plus the decoder's ceiling, M.R = ``truth.step``: the clip's own true embeddings decoded)
and h = 1..``evaluate.horizon`` (``metrics.py`` and ``pixel_metrics.py`` define them):

  M.R.cos@h, M.R.cos_mean       cosine of step h to true frame h; its mean over 1..H
  M.R.motion@h, M.R.motion_mean motion since step 1 explained: 1 true, 0 standing still
  M.R.X.truth_cos               decoded frames re-encoded vs the true frames' embeddings
  M.R.X.consistency, .text_sim  frame-to-frame cosine; caption-to-frame cosine
  M.R.X.psnr, .ssim             decoded frames vs the true frames, steps 1..H
  M.R.X.centroid_err            object centroid vs the true pose, pixels (synthetic clips)
  M.R.X.direction_acc           share of translating clips moved the true way (within 22.5
                                deg and 0.5..1.5 of the true displacement along it)
  M.R.X.direction_acc_45        the earlier criterion: within 45 deg and >= 1 px
  M.R.X.displacement_err        |moved - truly moved| from step 1 to H, pixels
  M.R.X.size_change_err         |radius ratio - true ratio|, clips that grow or shrink
  M.R.X.position_motion, .size_motion, .angle_motion
                                the motion score on the object's position, size, angle,
                                clips whose truth changes that factor; .factor_motion:
                                their mean, every moving clip scored on what it changes
  splitter-M.<metric>           the splitter minus method M, paired clip by clip (for
                                errors, below 0 is the splitter's advantage)
  n_clips, n_decoded_clips      test clips scored on embeddings; of those, on pictures
  M.R.X.flow_mag, .dynamic, .warp_err, .flicker, real.*, M.R.X.fvd*
                                optical-flow motion and FVD (``field_metrics.py``)

  by_class.<c>.<key>, by_class.<c>.n_clips
                                every key above whose metric is in
                                ``motion_classes.CLASS_METRICS`` (with its paired
                                differences and intervals) over the clips of motion class c
                                (left, right, up, down, grow, shrink, rotate, from
                                ``truth.parquet``), for the classes that have clips

Each key K also has ``K.n`` (clips with a value) and, from 3 clips up, ``K.ci_low`` and
``K.ci_high``: the percentile bootstrap interval (``evaluate.confidence``,
``evaluate.bootstrap`` resamples of the clips, ``evaluate.seed``; paired differences
resample the same clips for both methods), or for a proportion (direction_acc,
direction_acc_45, dynamic) the exact Clopper-Pearson interval. A mean over no clip is
left out. ``metrics/evaluate.json``, the DVC metrics file that ``dvc exp show`` and ``dvc
metrics diff`` print, holds only the headline keys (``metrics.headline``: at most 40,
whatever the number of methods; privileged methods are left out of its worst paired
bounds and reported beside them). ``metrics/evaluate_methods.json`` (git-tracked, small)
holds the figures of the README's per-method and per-class tables (``method_table.py``).

``metrics/plots/cos_at_h.csv`` is wide: a column ``h`` and one column ``M.R`` per method
and rollout, one row per horizon, so ``dvc plots`` draws one line per method and rollout.
The first ``evaluate.contact_sheets`` clips with videos have their contact sheets copied to
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

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from nextframe.config import Params
from nextframe.errors import UserError
from nextframe.field_metrics import field_scores
from nextframe.method_table import method_table
from nextframe.methods import REGISTRY
from nextframe.metrics import (
    FEW_CLIPS,
    curves_of,
    decoded_embedding_scores,
    embedding_scores,
    headline,
    summarize_scores,
)
from nextframe.motion_classes import class_summaries, motion_classes
from nextframe.outputs import (
    CLIPS_INDEX,
    DECODED_TABLE,
    HELD_OUT_SPLIT,
    PREDICTIONS_TABLE,
    PROMPT_SPLIT,
    SHEETS_DIR,
    STRIPS_DIR,
)
from nextframe.pixel_metrics import video_scores
from nextframe.render import read_strip, strip_path, truth_pictures
from nextframe.store import (
    ImageEmbeddings,
    atomic_path,
    read_frames,
    read_image_embeddings,
    read_manifest,
    read_rollouts,
    read_text_embeddings,
    read_truth,
    replaced_dir,
    write_json,
)

PARAMS = ("evaluate", "generate.decoders", "generate.fps", "runtime")
HEADLINE_FILE = "evaluate.json"
FULL_FILE = "evaluate_full.json"
METHODS_FILE = "evaluate_methods.json"  # the README tables' figures (method_table.py)
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
    headline: dict[str, float]  # the headline numbers (evaluate.json)
    curves: dict[str, list[float]]  # "M.R" -> cos@1..H
    files: list[Path] = field(default_factory=list)  # the files this run wrote

    def metrics(self) -> dict[str, float]:
        """What MLflow gets as the run's metrics: the keys of ``evaluate.json`` as they are
        (the thousands of the full file would bury them; it goes along as an artifact)."""
        return self.headline

    def steps(self) -> list[tuple[int, dict[str, float]]]:
        """The cos@h curves as one metric history per method and rollout: at step h,
        ``M.R.cos@h`` (in MLflow ``M.R.cos_at_h``) holds ``M.R.cos@<h>``."""
        horizon = len(next(iter(self.curves.values()), []))
        return [
            (h, {f"{name}.cos@h": values[h - 1] for name, values in self.curves.items()})
            for h in range(1, horizon + 1)
        ]

    def describe(self) -> str:
        count = int(self.values["n_clips"])
        means = ", ".join(
            f"{name} {self.values[f'{name}.cos_mean']:.3f}"
            for name in self.curves
            if f"{name}.cos_mean" in self.values
        )
        note = (
            f"; only {count} clips (fewer than {FEW_CLIPS}): the intervals are crude"
            if count < FEW_CLIPS
            else ""
        )
        return f"mean cos over the horizon on {count} test clips: {means}{note}"


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
    copied = []
    with replaced_dir(out_dir) as staged:
        for number, clip_id in enumerate(clip_ids, start=1):
            for sheet in sorted((generated_dir / SHEETS_DIR).glob(f"{clip_id}_*.png")):
                decoder = sheet.stem.removeprefix(f"{clip_id}_")
                name = f"clip{number}_{decoder}.png"
                shutil.copyfile(sheet, staged / name)
                copied.append(out_dir / name)
    return copied


def scoring_decoder(params: Params) -> str:
    """The decoder whose pictures the headline scores: the backbone's own where generated."""
    decoders = params.generate.decoders
    return "backbone" if "backbone" in decoders or not decoders else decoders[0]


def decoded_pixels(
    generated_dir: Path, clip_ids: list[str], keys: list[tuple[str, ...]]
) -> dict[tuple[str, ...], np.ndarray]:
    """(M, R, X) -> [C, n, S, S, 3] from generate's lossless strips."""
    strips = generated_dir / STRIPS_DIR
    pixels = {}
    for method, kind, decoder in keys:
        try:
            pixels[(method, kind, decoder)] = np.stack(
                [read_strip(strip_path(strips, c, (method, kind), decoder)) for c in clip_ids]
            )
        except FileNotFoundError as exc:
            raise UserError(f"{exc.filename} not found; rerun the generate stage") from exc
    return pixels


def true_poses(
    truth: pd.DataFrame, frames: pd.DataFrame, clip_ids: list[str], size: int
) -> list[np.ndarray | None]:
    """Per clip, the true pose [K, 4] (cx, cy, radius at ``size`` px; angle in radians) of
    its selected frames, or None where the source knows no pose."""
    by_frame = truth.set_index(["clip_id", "frame_index"])
    selected = frames[frames["clip_id"].isin(clip_ids)].sort_values(["clip_id", "k"])
    poses: dict[str, np.ndarray] = {}
    for clip_id, rows in selected.groupby("clip_id"):
        keys = [(clip_id, int(index)) for index in rows["frame_index"]]
        if all(key in by_frame.index for key in keys):
            known = by_frame.loc[keys]
            scale = size / known["frame_size"].to_numpy()[:, None]
            pixels = known[["cx", "cy", "radius"]].to_numpy() * scale  # [K, 3]
            poses[str(clip_id)] = np.concatenate([pixels, known[["angle"]].to_numpy()], 1)
    return [poses.get(clip_id) for clip_id in clip_ids]


def held_out_clips(generated_dir: Path) -> tuple[list[dict], int]:
    """The held-out clips the generate stage rolled out (their entries in its index, not
    the prompts') and the frames of every rollout."""
    index_path = generated_dir / CLIPS_INDEX
    if not index_path.exists():
        raise UserError(
            f"{index_path} not found; run the generate stage first (dvc repro generate)"
        )
    index = json.loads(index_path.read_text())
    held_out = [c for c in index["clips"] if c["split"] != PROMPT_SPLIT]
    return held_out, int(index["n_frames"])


def run(
    manifest_path: Path,
    embeddings_dir: Path,
    generated_dir: Path,
    frames_path: Path,
    truth_path: Path,
    metrics_dir: Path,
    params: Params,
) -> EvaluateSummary:
    """Score the generated clips; write the metrics files, the curves and contact sheets."""
    settings = params.evaluate
    held_out, n_frames = held_out_clips(generated_dir)
    clip_ids = [c["clip_id"] for c in held_out]
    manifest = read_manifest(manifest_path)
    not_test = manifest.loc[manifest["split"] != HELD_OUT_SPLIT, "clip_id"]
    leaked = sorted(set(not_test) & set(clip_ids))
    if leaked:
        raise UserError(
            f"generated clips {leaked[:3]} are not test clips (training or validation saw "
            "them); rerun generate after download (dvc repro)"
        )
    images = read_image_embeddings(embeddings_dir / "images.parquet", clip_ids)
    texts = read_text_embeddings(embeddings_dir / "texts.parquet", manifest)
    truth, n_truth = true_frames(images, clip_ids)
    rows = texts.index()
    text_embed = texts.text_embed[[rows[c] for c in clip_ids]]  # reads these rows only
    decoded_rows = [row for row, c in enumerate(held_out) if c["decoded"]]
    decoded_ids = [clip_ids[row] for row in decoded_rows]
    try:
        predictions = read_rollouts(generated_dir / PREDICTIONS_TABLE, clip_ids, n_frames)
        decoded_path = generated_dir / DECODED_TABLE
        decoded = (
            read_rollouts(decoded_path, decoded_ids, n_frames)
            if decoded_path.exists() and decoded_ids
            else {}
        )
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    poses_table = read_truth(truth_path)
    per_clip = embedding_scores(predictions, truth, n_truth, settings.horizon)
    row_index = torch.tensor(decoded_rows, dtype=torch.int64)
    per_clip.update(decoded_embedding_scores(decoded, truth, n_truth, text_embed, row_index))
    if decoded:
        pixels = decoded_pixels(generated_dir, decoded_ids, list(decoded))
        size = next(iter(pixels.values())).shape[2]
        frames = read_frames(frames_path)
        true_pictures = truth_pictures(decoded_ids, frames, frames_path.parent, size)
        poses = true_poses(poses_table, frames, decoded_ids, size)
        true_videos = [true_pictures[c] for c in decoded_ids]
        field = field_scores(pixels, true_videos, settings, params.generate.fps)
        for key, values in {
            **video_scores(pixels, true_videos, poses, settings.horizon),
            **field.per_clip,
        }.items():
            spread = torch.full((len(clip_ids),), float("nan"), dtype=torch.float64)
            spread[row_index] = torch.from_numpy(values)
            per_clip[key] = spread
    metrics = {"n_clips": float(len(clip_ids)), "n_decoded_clips": float(len(decoded_ids))}
    metrics.update(summarize_scores(per_clip, settings))
    metrics.update(class_summaries(per_clip, motion_classes(poses_table, clip_ids), settings))
    metrics.update(field.per_set if decoded else {})
    bad = [key for key, value in metrics.items() if math.isinf(value)]
    if bad:
        raise UserError(
            f"infinite metrics {bad[:5]}; check the held-out clips in {generated_dir / CLIPS_INDEX}"
        )
    # A mean over no clip (e.g. direction accuracy without a translating clip) is left out;
    # its ".n" of 0 says why.
    metrics = {key: value for key, value in metrics.items() if not math.isnan(value)}
    methods = params.generate.methods
    privileged = {name for name in methods if REGISTRY[name].privileged}
    decoder = scoring_decoder(params)
    top = headline(metrics, decoder, methods, privileged)
    write_json(metrics, metrics_dir / FULL_FILE)
    write_json(top, metrics_dir / HEADLINE_FILE)
    write_json(method_table(metrics, decoder, methods), metrics_dir / METHODS_FILE)
    curves = curves_of(metrics, settings.horizon)
    curves_path = metrics_dir / CURVES_FILE
    write_curves(curves, curves_path)
    video_ids = [c["clip_id"] for c in held_out if c.get("video")]
    sheets = copy_contact_sheets(
        video_ids[: settings.contact_sheets], generated_dir, metrics_dir / SHEETS_PLOTS
    )
    jsons = [metrics_dir / name for name in (HEADLINE_FILE, FULL_FILE, METHODS_FILE)]
    files = [*jsons, curves_path, *sheets]
    return EvaluateSummary(metrics, top, curves, files=files)
