"""Metrics of decoded pictures: likeness to the true frames, and where the object went.

Embedding metrics say whether a prediction is near the true frame in the backbone's
space; these say whether the *video* a person watches shows the right thing:

- ``psnr`` / ``ssim`` of each decoded frame against the true frame of the same moment
  (scikit-image's reference implementations).
- The object's trajectory (synthetic clips, where ``truth.parquet`` gives its pose):
  ``segment`` finds the object in a picture by colour, knowing the scene's two colours
  from the clip's true first frame (``scene_colours``): a pixel is object when it is nearer
  the object's colour than the background's. Its centroid, area and orientation per frame
  are compared with the true pose: the mean centroid error in pixels; for translating
  clips, whether the displacement from step 1 to the last step points the true way
  (``direction_acc``: within 22.5 degrees *and* covering 0.5 to 1.5 of the true
  displacement along it, so creeping the right way is not enough; ``direction_acc_45``,
  the earlier criterion: within 45 degrees and at least a pixel long) and how far it is
  from the true displacement; for clips that grow or shrink, the error of the radius ratio.
- Motion per factor (``position_motion``, ``size_motion``, ``angle_motion``): the motion
  score of ``metrics.py`` (1 the true change since step 1, 0 standing still, floored at -1)
  computed on the object's position, size (radius relative to step 1) and orientation
  instead of on embeddings, each only for clips whose truth changes that factor, so a
  rotating clip is scored on its angle, not on an embedding change that is nearly zero.
  ``factor_motion`` is the mean over the factors a clip changes: every moving clip gets
  one well-conditioned motion score. Orientation is the phase of the mask's k-th angular
  moment divided by k, k the shape's symmetry order (3 or 4, whichever moment is stronger
  in the clip's true frame), unwrapped step by step.

Frames are ``[n, S, S, 3]`` uint8; poses ``[n, 4]`` (cx, cy, radius in pixels of the same S,
angle in radians).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

DIRECTION_TOLERANCE = math.cos(math.radians(22.5))
PROJECTION_RANGE = (0.5, 1.5)  # displacement along the true one, as a fraction of it
LOOSE_DIRECTION_TOLERANCE = math.cos(math.radians(45))  # the earlier criterion (_45)
MIN_DISPLACEMENT_PX = 1.0  # ... where a displacement shorter than this is standing still
TRANSLATING_PX_PER_64 = 4.0  # true displacement that makes a clip "translating", at 64 px
SIZE_CHANGE = 0.1  # a true radius ratio further than this from 1 makes a clip grow/shrink
ANGLE_CHANGE = math.radians(10)  # a true turn larger than this makes a clip rotate
SYMMETRY_ORDERS = (3, 4)  # triangle, square (a circle has no orientation and never rotates)
MOTION_FLOOR = -1.0  # as metrics.MOTION_FLOOR (not imported: this module needs no torch)


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


def object_mask(frames: np.ndarray, scene: Scene) -> np.ndarray:
    """[n, S, S, 3] pictures -> [n, S, S] bool: pixels nearer the object's colour."""
    pixels = frames.astype(np.float64)
    to_object = np.linalg.norm(pixels - scene.object, axis=-1)  # [n, S, S]
    to_background = np.linalg.norm(pixels - scene.background, axis=-1)
    return to_object < to_background


def pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """[S, S] x and y of pixel centres, as the generator measures."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    return xs, ys


def segment(frames: np.ndarray, scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Object centroids [n, 2] (x, y; the frame's centre where no pixel is object) and
    areas [n] (pixels) of pictures [n, S, S, 3]."""
    mask = object_mask(frames, scene)
    size = frames.shape[1]
    xs, ys = pixel_centres(size)
    area = mask.sum(axis=(1, 2)).astype(np.float64)
    safe = np.maximum(area, 1.0)
    centroid = np.stack([(mask * xs).sum((1, 2)) / safe, (mask * ys).sum((1, 2)) / safe], -1)
    centroid[area == 0] = size / 2
    return centroid, area


def angular_moment(mask: np.ndarray, centroid: np.ndarray, order: int) -> np.ndarray:
    """[n, S, S] masks about their centroids [n, 2] -> [n] complex sum of (x + iy)^order."""
    xs, ys = pixel_centres(mask.shape[1])
    offset = (xs - centroid[:, 0, None, None]) + 1j * (ys - centroid[:, 1, None, None])
    return (mask * offset**order).sum(axis=(1, 2))


def symmetry_order(frame: np.ndarray, scene: Scene) -> int:
    """The order k in ``SYMMETRY_ORDERS`` whose normalised angular moment is strongest in a
    true frame [S, S, 3]: the shape's rotational symmetry (3 a triangle, 4 a square)."""
    mask = object_mask(frame[None], scene)
    centroid, _ = segment(frame[None], scene)
    xs, ys = pixel_centres(frame.shape[0])
    radius = np.hypot(xs - centroid[0, 0], ys - centroid[0, 1])
    strengths = [
        abs(angular_moment(mask, centroid, k)[0]) / max(float((mask * radius**k).sum()), 1e-12)
        for k in SYMMETRY_ORDERS
    ]
    return SYMMETRY_ORDERS[int(np.argmax(strengths))]


def orientation(frames: np.ndarray, scene: Scene, order: int) -> np.ndarray:
    """[n] orientation in radians of the object in pictures [n, S, S, 3] (y down, as the
    generator's angle), relative to an arbitrary zero, unwrapped from frame to frame (a
    shape of symmetry ``order`` looks the same every 2 pi / order)."""
    centroid, _ = segment(frames, scene)
    phase = np.angle(angular_moment(object_mask(frames, scene), centroid, order))
    return np.unwrap(phase) / order


def explained_change(predicted: np.ndarray, true: np.ndarray) -> float:
    """The motion score of one factor: paths [n, F] (steps 1..H) -> 1 - sum |p - d|^2 /
    sum |d|^2 with p, d the changes since the first row (1 the true change, 0 standing
    still, floored at -1); NaN when the truth does not change."""
    moved, true_moved = predicted - predicted[:1], true - true[:1]
    size = float((true_moved**2).sum())
    if size == 0:
        return math.nan
    return max(1 - float(((moved - true_moved) ** 2).sum()) / size, MOTION_FLOOR)


@dataclass(frozen=True)
class Trajectory:
    """Per-clip trajectory scores of one decoded video (NaN where they do not apply)."""

    centroid_error: float  # mean px over the scored steps
    direction_correct: float  # 1 or 0 for translating clips (22.5 deg, 0.5..1.5 of the way)
    direction_correct_45: float  # 1 or 0 for translating clips (45 deg, >= 1 px)
    displacement_error: float  # px, translating clips
    size_change_error: float  # |predicted - true| radius ratio, growing or shrinking clips
    position_motion: float  # motion score of the centroid, translating clips
    size_motion: float  # of the radius relative to step 1, growing or shrinking clips
    angle_motion: float  # of the orientation, rotating clips
    factor_motion: float  # mean of the above over the factors the clip changes


TRAJECTORY_KEYS = {  # Trajectory field -> metric name in the evaluate keys
    "centroid_error": "centroid_err",
    "direction_correct": "direction_acc",
    "direction_correct_45": "direction_acc_45",
    "displacement_error": "displacement_err",
    "size_change_error": "size_change_err",
    "position_motion": "position_motion",
    "size_motion": "size_motion",
    "angle_motion": "angle_motion",
    "factor_motion": "factor_motion",
}
NO_TRAJECTORY = Trajectory(*(math.nan for _ in TRAJECTORY_KEYS))


def direction_scores(shift: np.ndarray, true_shift: np.ndarray) -> tuple[float, float]:
    """(strict, loose) direction credit of a displacement [2] against the true one [2]."""
    length, true_length = np.linalg.norm(shift), np.linalg.norm(true_shift)
    cos = float(shift @ true_shift) / max(length * true_length, 1e-12)
    projection = float(shift @ true_shift) / max(true_length**2, 1e-12)
    low, high = PROJECTION_RANGE
    strict = cos >= DIRECTION_TOLERANCE and low <= projection <= high
    loose = length >= MIN_DISPLACEMENT_PX and cos >= LOOSE_DIRECTION_TOLERANCE
    return float(strict), float(loose)


def trajectory(frames: np.ndarray, poses: np.ndarray, scene: Scene, order: int) -> Trajectory:
    """Score decoded frames [n, S, S, 3] (steps 1..H) against true poses [n, 4]; ``order``
    is the shape's symmetry order (``symmetry_order`` of a true frame) for its angle."""
    centroid, area = segment(frames, scene)
    true_centroid, radius, angle = poses[:, :2], poses[:, 2], poses[:, 3]
    error = float(np.linalg.norm(centroid - true_centroid, axis=-1).mean())
    size = frames.shape[1]
    true_shift = true_centroid[-1] - true_centroid[0]
    shift = centroid[-1] - centroid[0]
    nan = math.nan
    direction = direction_45 = displacement = position = nan
    if np.linalg.norm(true_shift) >= TRANSLATING_PX_PER_64 * size / 64:
        direction, direction_45 = direction_scores(shift, true_shift)
        displacement = float(np.linalg.norm(shift - true_shift))
        position = explained_change(centroid, true_centroid)
    size_error = size_motion = nan
    true_ratio = radius[-1] / radius[0]
    if abs(true_ratio - 1) > SIZE_CHANGE:
        ratios = np.sqrt(area / area[0]) if area[0] > 0 else np.zeros_like(area)
        size_error = abs(float(ratios[-1]) - true_ratio)
        size_motion = explained_change(ratios[:, None], (radius / radius[0])[:, None])
    angle_motion = nan
    if abs(angle[-1] - angle[0]) > ANGLE_CHANGE:
        turned = orientation(frames, scene, order)
        angle_motion = explained_change(turned[:, None], angle[:, None])
    factors = [v for v in (position, size_motion, angle_motion) if not math.isnan(v)]
    factor = float(np.mean(factors)) if factors else nan
    return Trajectory(
        error,
        direction,
        direction_45,
        displacement,
        size_error,
        position,
        size_motion,
        angle_motion,
        factor,
    )


def video_scores(
    videos: dict[tuple[str, ...], np.ndarray],
    true_frames: list[np.ndarray],
    poses: list[np.ndarray | None],
    horizon: int,
) -> dict[str, np.ndarray]:
    """Per-clip picture scores of decoded videos (M, R, X) -> [Cd, n, S, S, 3].

    ``true_frames[c]`` is clip c's true frames [K, S, S, 3]; ``poses[c]`` its true poses
    [K, 4] at S pixels, or None where no pose is known (then only psnr and ssim). Steps
    1..H are scored, H = min(horizon, K - 1). Returns "M.R.X.<metric>" -> [Cd] (NaN where a
    metric does not apply to a clip).
    """
    scores: dict[str, np.ndarray] = {}
    # the scene and the shape's symmetry order from each posed clip's true frames
    scenes = [
        None if pose is None else scene_colours(true[0])
        for true, pose in zip(true_frames, poses, strict=True)
    ]
    orders = [
        0 if scene is None else symmetry_order(true[min(1, len(true) - 1)], scene)
        for true, scene in zip(true_frames, scenes, strict=True)
    ]
    for (method, kind, decoder), decoded in videos.items():
        rows: dict[str, list[float]] = {"psnr": [], "ssim": []}
        rows |= {name: [] for name in TRAJECTORY_KEYS.values()}
        for video, true, pose, scene, order in zip(
            decoded, true_frames, poses, scenes, orders, strict=True
        ):
            steps = slice(1, min(horizon, len(true) - 1, len(video) - 1) + 1)
            rows["psnr"].append(float(psnr(video[steps], true[steps]).mean()))
            rows["ssim"].append(float(ssim(video[steps], true[steps]).mean()))
            path = (
                NO_TRAJECTORY
                if pose is None or scene is None
                else trajectory(video[steps], pose[steps], scene, order)
            )
            for attribute, name in TRAJECTORY_KEYS.items():
                rows[name].append(getattr(path, attribute))
        for name, values in rows.items():
            scores[f"{method}.{kind}.{decoder}.{name}"] = np.asarray(values, dtype=np.float64)
    return scores
