"""Bring frames of any shape to the square ``size`` the image encoders expect.

``letterbox`` keeps the whole picture and pads the short side with ``pad_color``;
``center_crop`` fills the square and cuts the long side. Both resample with Pillow's
bicubic filter; a frame already at the target size passes through unchanged.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image, ImageOps

ResizeMode = Literal["letterbox", "center_crop"]


def resize_frame(
    frame: np.ndarray, size: int, mode: ResizeMode, pad_color: tuple[int, int, int] = (0, 0, 0)
) -> Image.Image:
    """frame: [H, W, 3] uint8 RGB -> a ``size`` x ``size`` RGB image."""
    image = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8))
    target = (size, size)
    if image.size == target:
        return image
    if mode == "letterbox":
        return ImageOps.pad(image, target, method=Image.Resampling.BICUBIC, color=pad_color)
    if mode == "center_crop":
        return ImageOps.fit(image, target, method=Image.Resampling.BICUBIC)
    raise ValueError(f"resize mode must be letterbox or center_crop, got {mode!r}")
