"""What a picture of the toy world shows, measured from its pixels.

Used by the toy backbone's tests and ``benchmarks/toy_backbone.py`` to check decoded
pictures against the truth: which palette colour the background and the object are, and
where the object is (segmented by the known background colour).
"""

from __future__ import annotations

import math

import numpy as np

from nextframe.data.synthetic import COLORS, inside_shape

PALETTE = np.array(list(COLORS.values()), np.float32)  # [9, 3]
PALETTE_NAMES = list(COLORS)
MIN_CONTRAST = 50.0  # an object must differ from the background by this much (RGB distance)


def psnr(picture: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 pictures [H, W, 3]."""
    mse = np.mean((picture.astype(np.float64) - truth.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def nearest_color(rgb: np.ndarray) -> str:
    """The name of the synthetic palette colour nearest to ``rgb`` [3]."""
    return PALETTE_NAMES[int(np.argmin(((PALETTE - rgb) ** 2).sum(axis=1)))]


def object_mask(picture: np.ndarray, background: str, color: str) -> np.ndarray:
    """[H, W] bool: pixels nearer the object's colour than the background's (both known)."""
    back, front = np.array(COLORS[background], np.float32), np.array(COLORS[color], np.float32)
    direction = front - back
    along = ((picture.astype(np.float32) - back) @ direction) / (direction @ direction)
    return along > 0.5


def centroid(mask: np.ndarray) -> tuple[float, float] | None:
    """(x, y) of a mask's centre in pixels (pixel i spans [i, i + 1)), None if empty."""
    rows, columns = np.nonzero(mask)
    if len(rows) == 0:
        return None
    return float(columns.mean() + 0.5), float(rows.mean() + 0.5)


def described_colors(picture: np.ndarray) -> tuple[str, str | None]:
    """(background, object) palette colour names of a picture [H, W, 3] uint8.

    The background is the median of the border pixels; the object is the median of the
    pixels that differ most from it (at least 3/4 of the largest difference, which skips
    blended edges), or None when nothing differs by ``MIN_CONTRAST``.
    """
    pixels = picture.astype(np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    distance = np.sqrt(((pixels - background) ** 2).sum(axis=-1))  # [H, W]
    if distance.max() < MIN_CONTRAST:
        return nearest_color(background), None
    core = pixels[distance >= 0.75 * distance.max()]
    return nearest_color(background), nearest_color(np.median(core, axis=0))


# Orientations a shape is tried at (over its symmetry period; a circle has one)
TRIED_ANGLES = {"circle": 1, "square": 24, "triangle": 32}
AREA_PER_R2 = {"circle": math.pi, "square": 2.0, "triangle": 3 * math.sqrt(3) / 4}
PERIOD = {"circle": 2 * math.pi, "square": math.pi / 2, "triangle": 2 * math.pi / 3}


def match_shape(mask: np.ndarray) -> tuple[str, float, float] | None:
    """(shape, angle, IoU) of the synthetic shape that best overlaps an object's mask [H, W].

    Template matching that knows nothing of the truth: each shape is placed at the mask's
    centroid (a regular shape's centroid is its centre), sized to the mask's area and
    tried at every orientation of ``TRIED_ANGLES``; the best intersection-over-union wins.
    A round blob matches the circle best whatever it was meant to be, so a decoder that
    draws every shape as a blob names squares and triangles wrong. None if the mask is
    empty.
    """
    found = centroid(mask)
    if found is None:
        return None
    side = np.arange(mask.shape[0]) + 0.5  # pixel centres
    x, y = side[None, :] - found[0], side[:, None] - found[1]  # [1, W], [H, 1]
    area = float(mask.sum())
    best: tuple[str, float, float] = ("circle", 0.0, -1.0)
    for shape, count in TRIED_ANGLES.items():
        angles = np.arange(count)[:, None, None] * PERIOD[shape] / count  # [A, 1, 1]
        radius = math.sqrt(area / AREA_PER_R2[shape])
        template = inside_shape(shape, x, y, radius, angles)  # [A, H, W]
        overlap = (template & mask).sum(axis=(1, 2)) / (template | mask).sum(axis=(1, 2))
        index = int(np.argmax(overlap))
        if overlap[index] > best[2]:
            best = (shape, float(angles[index, 0, 0]), float(overlap[index]))
    return best
