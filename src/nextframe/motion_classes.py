"""Motion classes of the held-out clips, from the source's true poses, and every headline
metric summarised per class.

An aggregate over clips hides the classes: a method can move left and right well and
make shrinking objects grow. ``motion_class`` names what a clip's truth does over the
whole clip (``truth.parquet``'s pose at its first and last source frame): a turn makes it
``rotate``, else a radius change ``grow`` or ``shrink``, else the larger axis of its travel
``left``, ``right``, ``up`` or ``down`` (y grows downwards); a clip whose pose does not
change, or that the source knows no pose of, has no class and is left out of the tables.

``class_summaries`` gives, for every class with clips, the keys of ``summarize_scores``
(means, intervals, paired differences against the splitter) of the metrics in
``CLASS_METRICS``, prefixed ``by_class.<class>.``, and ``by_class.<class>.n_clips``.
"""

from __future__ import annotations

import pandas as pd
import torch

from nextframe.config import EvaluateParams
from nextframe.metrics import PerClip, summarize_scores

CLASSES = ("left", "right", "up", "down", "grow", "shrink", "rotate")
CLASS_PREFIX = "by_class"
CLASS_METRICS = (  # the last part of a per-clip key that is summarised per class
    "cos_mean",
    "motion_mean",
    "factor_motion",
    "position_motion",
    "size_motion",
    "angle_motion",
    "direction_acc",
    "direction_acc_45",
    "displacement_err",
    "size_change_err",
    "centroid_err",
    "psnr",
)
TURN = 1e-3  # radians: a smaller change of the true angle is no turn
RESIZE = 1e-3  # a radius ratio this close to 1 is no size change
TRAVEL = 1e-3  # fraction of the frame side: a shorter true travel is standing still


def motion_class(first: pd.Series, last: pd.Series) -> str | None:
    """The class of a clip from its true pose (cx, cy, radius, angle, frame_size) at its
    first and last source frame, or None when nothing changes."""
    if abs(last["angle"] - first["angle"]) > TURN:
        return "rotate"
    ratio = last["radius"] / first["radius"]
    if abs(ratio - 1) > RESIZE:
        return "grow" if ratio > 1 else "shrink"
    dx, dy = last["cx"] - first["cx"], last["cy"] - first["cy"]
    if max(abs(dx), abs(dy)) <= TRAVEL * first["frame_size"]:
        return None
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def motion_classes(truth: pd.DataFrame, clip_ids: list[str]) -> list[str | None]:
    """The class of each clip (``truth.parquet`` rows), None where it has no pose."""
    ordered = truth[truth["clip_id"].isin(clip_ids)].sort_values(["clip_id", "frame_index"])
    classes = {
        str(clip_id): motion_class(rows.iloc[0], rows.iloc[-1])
        for clip_id, rows in ordered.groupby("clip_id")
    }
    return [classes.get(clip_id) for clip_id in clip_ids]


def class_summaries(
    per_clip: PerClip, classes: list[str | None], params: EvaluateParams
) -> dict[str, float]:
    """``summarize_scores`` of the ``CLASS_METRICS`` keys of ``per_clip`` ([C] each) over
    the clips of each class (``classes``, [C]), as ``by_class.<class>.<key>``."""
    scored = {k: v for k, v in per_clip.items() if k.rsplit(".", 1)[-1] in CLASS_METRICS}
    metrics: dict[str, float] = {}
    for name in CLASSES:
        rows = torch.tensor([c == name for c in classes], dtype=torch.bool)
        if not bool(rows.any()):
            continue
        prefix = f"{CLASS_PREFIX}.{name}."
        metrics[f"{prefix}n_clips"] = float(rows.sum())
        summary = summarize_scores({k: v[rows] for k, v in scored.items()}, params)
        metrics |= {f"{prefix}{key}": value for key, value in summary.items()}
    return metrics
