"""Metrics of decoded pictures: likeness to the true frames, and where the object went.

Embedding metrics say whether a prediction is near the true frame in the backbone's
space; these say whether the *video* a person watches shows the right thing:

- ``psnr`` / ``ssim`` of each decoded frame against the true frame of the same moment
  (scikit-image's reference implementations).
- The object's trajectory (synthetic clips, where ``truth.parquet`` gives its pose):
  ``segment`` finds the object in a picture by colour, knowing the scene's two colours
  from the clip's true first frame (``scene_colours``): a pixel is object when it is nearer
  the object's colour than the background's. Its centroid and area per frame are compared
  with the true pose: the mean centroid error in pixels; for translating clips, whether
  the displacement from step 1 to the last step points the true way (within 45 degrees,
  and at least a pixel long: standing still is wrong) and how far it is from the true
  displacement; for clips that grow or shrink, the error of the radius ratio.

Frames are ``[n, S, S, 3]`` uint8; poses ``[n, 3]`` (cx, cy, radius) in pixels of the same S.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

DIRECTION_TOLERANCE = math.cos(math.radians(45))
MIN_DISPLACEMENT_PX = 1.0  # a displacement shorter than this is standing still
TRANSLATING_PX_PER_64 = 4.0  # true displacement that makes a clip "translating", at 64 px
SIZE_CHANGE = 0.1  # a true radius ratio further than this from 1 makes a clip grow/shrink


def psnr(decoded: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[n, S, S, 3] x2 -> [n] dB (capped at 100 for identical frames)."""
    values = []
    for picture, true in zip(decoded, truth, strict=True):
        if np.array_equal(picture, true):
            values.append(100.0)
        else:
            values.append(peak_signal_noise_ratio(true, picture, data_range=255))
    return np.asarray(values)


def ssim(decoded: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[n, S, S, 3] x2 -> [n] structural similarity over the colour channels."""
    return np.asarray(
        [
            structural_similarity(true, picture, channel_axis=-1, data_range=255)
            for picture, true in zip(decoded, truth, strict=True)
        ]
    )


@dataclass(frozen=True)
class Scene:
    background: np.ndarray  # [3] float
    object: np.ndarray  # [3] float


def scene_colours(frame: np.ndarray) -> Scene:
    """The background (median of the border) and the object's colour (median of the pixels
    far from the background) of a true frame [S, S, 3]."""
    pixels = frame.astype(np.float64)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    distance = np.linalg.norm(pixels - background, axis=-1)
    far = pixels[distance > 0.5 * distance.max()]
    return Scene(background=background, object=np.median(far, axis=0))


def segment(frames: np.ndarray, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Object centroids [n, 2] (x, y; the frame's centre where no pixel is object) and
    areas [n] (pixels) of pictures [n, S, S, 3]."""
    pixels = frames.astype(np.float64)
    to_object = np.linalg.norm(pixels - scene.object, axis=-1)  # [n, S, S]
    to_background = np.linalg.norm(pixels - scene.background, axis=-1)
    mask = to_object < to_background
    size = frames.shape[1]
    ys, xs = np.mgrid[0:size, 0:size] + 0.5  # pixel centres, as the generator measures
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    safe = np.maximum(area, 1.0)
    centroid = np.stack([(mask * xs).sum((1, 2)) / safe, (mask * ys).sum((1, 2)) / safe], -1)
    centroid[area == 0] = size / 2
    return centroid, area


@dataclass(frozen=True)
class Trajectory:
    """Per-clip trajectory scores of one decoded video (NaN where they do not apply)."""

    centroid_error: float  # mean px over the scored steps
    direction_correct: float  # 1 or 0 for translating clips
    displacement_error: float  # px, translating clips
    size_change_error: float  # |predicted - true| radius ratio, growing or shrinking clips


def trajectory(frames: np.ndarray, poses: np.ndarray, scene: Scene) -> Trajectory:
    """Score decoded frames [n, S, S, 3] (steps 1..H) against true poses [n, 3]."""
    centroid, area = segment(frames, scene)
    true_centroid, radius = poses[:, :2], poses[:, 2]
    error = float(np.linalg.norm(centroid - true_centroid, axis=-1).mean())
    size = frames.shape[1]
    true_shift = true_centroid[-1] - true_centroid[0]
    shift = centroid[-1] - centroid[0]
    translating = np.linalg.norm(true_shift) >= TRANSLATING_PX_PER_64 * size / 64
    direction = displacement = math.nan
    if translating:
        length = np.linalg.norm(shift)
        cos = float(shift @ true_shift) / max(length * np.linalg.norm(true_shift), 1e-12)
        direction = float(length >= MIN_DISPLACEMENT_PX and cos >= DIRECTION_TOLERANCE)
        displacement = float(np.linalg.norm(shift - true_shift))
    size_error = math.nan
    true_ratio = radius[-1] / radius[0]
    if abs(true_ratio - 1) > SIZE_CHANGE:
        ratio = math.sqrt(area[-1] / area[0]) if area[0] > 0 else 0.0
        size_error = abs(ratio - true_ratio)
    return Trajectory(error, direction, displacement, size_error)


def video_scores(
    videos: dict[tuple[str, ...], np.ndarray],
    true_frames: list[np.ndarray],
    poses: list[np.ndarray | None],
    horizon: int,
) -> dict[str, np.ndarray]:
    """Per-clip picture scores of decoded videos (M, R, X) -> [Cd, n, S, S, 3].

    ``true_frames[c]`` is clip c's true frames [K, S, S, 3]; ``poses[c]`` its true poses
    [K, 3] at S pixels, or None where no pose is known (then only psnr and ssim). Steps
    1..H are scored, H = min(horizon, K - 1). Returns "M.R.X.<metric>" -> [Cd] (NaN where a
    metric does not apply to a clip).
    """
    scores: dict[str, np.ndarray] = {}
    for (method, kind, decoder), decoded in videos.items():
        rows: dict[str, list[float]] = {
            name: []
            for name in (
                "psnr",
                "ssim",
                "centroid_err",
                "direction_acc",
                "displacement_err",
                "size_change_err",
            )
        }
        for video, true, pose in zip(decoded, true_frames, poses, strict=True):
            steps = slice(1, min(horizon, len(true) - 1, len(video) - 1) + 1)
            rows["psnr"].append(float(psnr(video[steps], true[steps]).mean()))
            rows["ssim"].append(float(ssim(video[steps], true[steps]).mean()))
            if pose is None:
                path = Trajectory(math.nan, math.nan, math.nan, math.nan)
            else:
                path = trajectory(video[steps], pose[steps], scene_colours(true[0]))
            rows["centroid_err"].append(path.centroid_error)
            rows["direction_acc"].append(path.direction_correct)
            rows["displacement_err"].append(path.displacement_error)
            rows["size_change_err"].append(path.size_change_error)
        for name, values in rows.items():
            scores[f"{method}.{kind}.{decoder}.{name}"] = np.asarray(values, dtype=np.float64)
    return scores
