"""Which frames of a clip to keep: the moments where something happens.

``top_diff`` scores every frame in the first ``window_s`` seconds by the summed absolute
grayscale difference to the previous frame and keeps the ``k`` best in time order.
Frame 0 has no previous frame; it is always kept, as the clip's anchor: training samples
frame 0 as the start of every clip (DESIGN, "Inputs per mode") and measures the rise
``r`` from it, so dropping it would move each clip's time origin to wherever its first
motion happens. Its score is recorded as 0. The remaining ``k - 1`` picks are the
highest-scoring later frames (ties go to the earlier frame).

``uniform`` keeps frames 0, step, 2*step, ... up to ``k`` of them, over the whole clip.

Pure numpy on decoded frames: no I/O here, so the rules are tested without files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nextframe.config import SelectFramesParams

# ITU-R BT.601 luma weights in thousandths, the usual RGB -> grayscale conversion (as in
# Pillow's "L"): integers, so that a score is exact and ties are real ties on every CPU
LUMA_PER_MILLE = (299, 587, 114)


@dataclass(frozen=True)
class Selection:
    """Chosen frames of one clip, in time order."""

    frame_indices: np.ndarray  # [K] int64, increasing
    scores: np.ndarray  # [K] float64, difference to the previous source frame (0 for frame 0)
    usable_frames: int  # how many frames the method could choose from


def difference_scores(frames: np.ndarray) -> np.ndarray:
    """Summed absolute grayscale difference of each frame to the previous one.

    In integer arithmetic, divided once at the end: a float32 grayscale went through
    OpenBLAS, whose AVX-512 and AVX2 kernels round differently, so the same clip got other
    scores on an AVX-512 machine, and where two frames change by exactly as much, rounding
    rather than "the earlier frame wins" broke the tie (23 of the 320 default clips).

    frames: [N, H, W, 3] uint8 RGB -> [N] float64, with 0 for frame 0.
    """
    red, green, blue = (frames[..., channel].astype(np.int32) for channel in range(3))
    gray = LUMA_PER_MILLE[0] * red + LUMA_PER_MILLE[1] * green + LUMA_PER_MILLE[2] * blue
    scores = np.zeros(len(frames), np.float64)  # gray: [N, H, W] int32, 1000 x luma
    if len(frames) > 1:
        summed = np.abs(np.diff(gray, axis=0)).sum(axis=(1, 2), dtype=np.int64)  # [N - 1]
        scores[1:] = summed / 1000
    return scores


def window_length(n_frames: int, fps: float, window_s: float) -> int:
    """Frames shown before ``window_s`` seconds (frame i at i / fps), at least one."""
    return min(n_frames, max(1, math.ceil(window_s * fps - 1e-6)))


def frames_needed(params: SelectFramesParams) -> tuple[int | None, float | None]:
    """(max_frames, max_seconds) a reader must decode for ``params``: nothing beyond."""
    if params.method == "top_diff":
        return None, params.window_s
    return (params.k - 1) * params.step + 1, None


def select_top_diff(frames: np.ndarray, fps: float, k: int, window_s: float) -> Selection:
    """Frame 0 plus the ``k - 1`` frames that change most, within the first ``window_s`` s."""
    usable = window_length(len(frames), fps, window_s)
    scores = difference_scores(frames[:usable])  # [usable]
    later = np.arange(1, usable)
    ranked = later[np.argsort(-scores[1:], kind="stable")]  # best first, earlier on ties
    chosen = np.sort(np.concatenate([[0], ranked[: k - 1]])).astype(np.int64)
    return Selection(frame_indices=chosen, scores=scores[chosen], usable_frames=usable)


def select_uniform(frames: np.ndarray, k: int, step: int) -> Selection:
    """Every ``step``-th frame from frame 0, at most ``k`` of them."""
    candidates = np.arange(0, len(frames), step, dtype=np.int64)
    chosen = candidates[:k]
    scores = difference_scores(frames[: chosen[-1] + 1])
    return Selection(frame_indices=chosen, scores=scores[chosen], usable_frames=len(candidates))


def select(frames: np.ndarray, fps: float, params: SelectFramesParams) -> Selection:
    """Apply the configured method; frames: [N, H, W, 3] uint8, N > 0."""
    if params.method == "top_diff":
        return select_top_diff(frames, fps, params.k, params.window_s)
    return select_uniform(frames, params.k, params.step)
