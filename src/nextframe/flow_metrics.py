"""Motion and smoothness of a video without any learned weights: dense optical flow
(OpenCV's Farneback) between consecutive frames, and frame differences.

Per video ``[n, H, W, 3]`` uint8, over its n - 1 consecutive pairs:

- ``flow_mag``: the mean flow magnitude in pixels per pair. The flow of pair (t, t + 1) is
  computed from frame t + 1 to frame t (backward), so that frame t sampled along it
  lands on frame t + 1's grid (``warp_err``).
- ``dynamic``: 1 when the video moves by the rule of VBench's dynamic degree (Huang et al.
  2024): a pair's score is the mean of its largest ``top_fraction`` (5%) magnitudes; a pair
  moves when its score exceeds ``6 * (short side / 256) * max(1, 8 / fps)`` (the threshold
  VBench sets at 256 px and 8 fps, scaled with the picture and the time between frames);
  the video is dynamic when at least ``round(4 n / 16)`` pairs move (n the frames). VBench
  computes the flow with RAFT; this uses Farneback, so it is a proxy, not VBench's number.
- ``warp_err``: mean absolute difference (0..1) between frame t warped by the flow and
  frame t + 1: how much of the change the flow does not explain (new content, flicker).
- ``flicker``: VBench's temporal-flickering score, ``(255 - mean |frame t+1 - frame t|) /
  255``: 1 for a still video; unlike VBench, not restricted to static scenes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

# OpenCV's documented example settings of Farneback (pyramid of 3 levels halving, 15 px
# windows, 3 iterations, polynomial expansion of 5 px with sigma 1.2).
FARNEBACK = {
    "pyr_scale": 0.5,
    "levels": 3,
    "winsize": 15,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.2,
    "flags": 0,
}
VBENCH_THRESHOLD_PX = 6.0  # at a 256-px short side and 8 fps
VBENCH_SIDE = 256.0
VBENCH_FPS = 8.0
METRICS = ("flow_mag", "dynamic", "warp_err", "flicker")


def gray(frame: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> [H, W] uint8."""
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def backward_flow(frame: np.ndarray, following: np.ndarray) -> np.ndarray:
    """[H, W, 2] (dx, dy) flow from ``following`` to ``frame``: following(y, x) shows what
    frame shows at (y + dy, x + dx)."""
    return cv2.calcOpticalFlowFarneback(gray(following), gray(frame), None, **FARNEBACK)


def warp(frame: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``frame`` [H, W, 3] sampled at (x + dx, y + dy): onto the grid the flow starts from."""
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(
        frame,
        xs + flow[..., 0],
        ys + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def moving_threshold(height: int, width: int, fps: float) -> float:
    """Top-magnitude score (px) above which a pair moves, VBench's rule scaled."""
    return VBENCH_THRESHOLD_PX * (min(height, width) / VBENCH_SIDE) * max(1.0, VBENCH_FPS / fps)


def pairs_needed(n_frames: int) -> int:
    """Moving pairs that make a video of ``n_frames`` dynamic (VBench: 4 of 16 frames)."""
    return round(4 * n_frames / 16)


def top_mean(magnitude: np.ndarray, fraction: float) -> float:
    """Mean of the largest ``fraction`` of the values (at least one)."""
    flat = np.sort(magnitude.ravel())
    keep = max(1, round(fraction * flat.size))
    return float(flat[-keep:].mean())


@dataclass(frozen=True)
class FlowScores:
    flow_mag: float  # px per pair
    dynamic: float  # 1 or 0
    warp_err: float  # 0..1
    flicker: float  # 0..1, 1 = still


def flow_scores(video: np.ndarray, fps: float, top_fraction: float = 0.05) -> FlowScores:
    """The module's four scores of one video [n, H, W, 3] uint8 (n >= 2)."""
    count, height, width = video.shape[:3]
    if count < 2:
        raise ValueError(f"flow metrics need at least 2 frames per video, got {count}")
    magnitudes, tops, warp_errors, differences = [], [], [], []
    for frame, following in itertools.pairwise(video):
        flow = backward_flow(frame, following)  # [H, W, 2]
        magnitude = np.linalg.norm(flow, axis=-1)  # [H, W]
        magnitudes.append(float(magnitude.mean()))
        tops.append(top_mean(magnitude, top_fraction))
        warped = warp(frame, flow).astype(np.float64)
        warp_errors.append(float(np.abs(warped - following).mean()) / 255)
        differences.append(float(np.abs(following.astype(np.float64) - frame).mean()))
    moving = sum(top > moving_threshold(height, width, fps) for top in tops)
    return FlowScores(
        flow_mag=float(np.mean(magnitudes)),
        dynamic=float(moving >= pairs_needed(count)),
        warp_err=float(np.mean(warp_errors)),
        flicker=(255 - float(np.mean(differences))) / 255,
    )


def videos_flow_scores(
    videos: list[np.ndarray], fps: float, top_fraction: float
) -> dict[str, np.ndarray]:
    """Per-video scores of ``videos`` (each [n, H, W, 3]): metric -> [C] float64."""
    scores = [flow_scores(video, fps, top_fraction) for video in videos]
    return {
        name: np.asarray([getattr(score, name) for score in scores], dtype=np.float64)
        for name in METRICS
    }
