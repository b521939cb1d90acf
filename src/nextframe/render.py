"""Videos and contact sheets from decoded frames: what a person looks at to judge a run.

Every picture here is ``[H, W, 3]`` uint8 RGB and every video ``[n, H, W, 3]``. A contact
sheet is one labelled row per video (the true frames first, then one row per method and
rollout), frames left to right, so a glance shows whether a method moves the way the
truth does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from nextframe.data.video import write_video
from nextframe.store import atomic_path

VIDEO_FORMATS = ("gif", "mp4")


def to_array(image: Image.Image, size: int) -> np.ndarray:
    """A picture as [size, size, 3] uint8 RGB (resized if it is not that size already)."""
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


TITLE_HEIGHT = 16  # pixels of the title line above the rows


def contact_sheet(
    rows: Sequence[tuple[str, np.ndarray]], title: str = "", label_width: int = 96
) -> Image.Image:
    """One labelled row of frames per entry ``(label, [n, H, W, 3])``, frames left to right,
    under a ``title`` line (which clip, which caption) when one is given."""
    height, width = rows[0][1].shape[1:3]
    columns = max(len(frames) for _, frames in rows)
    offset = TITLE_HEIGHT if title else 0
    sheet = Image.new("RGB", (label_width + columns * width, offset + len(rows) * height), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 2), title, fill="black")
    for index, (label, frames) in enumerate(rows):
        top = offset + index * height
        draw.text((4, top + height // 2 - 5), label, fill="black")
        strip = np.concatenate(list(frames), axis=1)  # [H, n * W, 3]
        sheet.paste(Image.fromarray(strip), (label_width, top))
    return sheet


def read_pictures(paths: Sequence[Path], size: int) -> np.ndarray:
    """Pictures on disk as one ``[n, size, size, 3]`` array (resized where needed)."""
    loaded = []
    for path in paths:
        with Image.open(path) as image:
            loaded.append(to_array(image, size))
    return np.stack(loaded)


def write_videos(
    clip_ids: list[str],
    pictures: dict[tuple[str, str], np.ndarray],
    decoder: str,
    out_dir: Path,
    fps: float,
) -> list[Path]:
    """``out_dir/<clip_id>/<method>_<rollout>_<decoder>.{gif,mp4}`` for every clip; the paths."""
    written = []
    for (method, kind), videos in pictures.items():
        for clip_id, video in zip(clip_ids, videos, strict=True):
            for suffix in VIDEO_FORMATS:
                path = out_dir / clip_id / f"{method}_{kind}_{decoder}.{suffix}"
                write_video(path, video, fps)
                written.append(path)
    return written


def write_contact_sheets(
    clip_ids: list[str],
    captions: list[str],
    pictures: dict[tuple[str, str], np.ndarray],
    truth: dict[str, np.ndarray],
    decoded_truth: dict[str, np.ndarray],
    decoder: str,
    out_dir: Path,
) -> list[Path]:
    """``out_dir/<clip_id>_<decoder>.png`` per clip, titled with its caption: the true
    frames and the decoder's picture of their embeddings (the best it can do), where the
    clip has them, then a row per method.rollout; returns the paths."""
    written = []
    for index, (clip_id, caption) in enumerate(zip(clip_ids, captions, strict=True)):
        rows = [("truth", truth[clip_id])] if clip_id in truth else []
        if clip_id in decoded_truth:
            rows.append(("truth decoded", decoded_truth[clip_id]))
        rows += [(f"{method}.{kind}", videos[index]) for (method, kind), videos in pictures.items()]
        path = out_dir / f"{clip_id}_{decoder}.png"
        with atomic_path(path) as tmp:
            sheet = contact_sheet(rows, title=f"{clip_id} ({decoder}): {caption}")
            sheet.save(tmp, format="PNG", optimize=True)
        written.append(path)
    return written


def strip_path(out_dir: Path, clip_id: str, key: tuple[str, ...], decoder: str) -> Path:
    return out_dir / clip_id / f"{'_'.join(key)}_{decoder}.png"


def write_strips(
    clip_ids: list[str], pictures: dict[tuple[str, str], np.ndarray], decoder: str, out_dir: Path
) -> None:
    """Every decoded video [n, S, S, 3] losslessly as one PNG, frames left to right."""
    for key, videos in pictures.items():
        for clip_id, video in zip(clip_ids, videos, strict=True):
            with atomic_path(strip_path(out_dir, clip_id, key, decoder)) as tmp:
                Image.fromarray(np.concatenate(list(video), axis=1)).save(tmp, format="PNG")


def read_strip(path: Path) -> np.ndarray:
    """A strip written by ``write_strips`` back to its frames [n, S, S, 3]."""
    with Image.open(path) as image:
        strip = np.asarray(image.convert("RGB"))
    size = strip.shape[0]
    return np.stack(np.split(strip, strip.shape[1] // size, axis=1))


def truth_pictures(
    clip_ids: list[str], frames: pd.DataFrame, frames_root: Path, size: int
) -> dict[str, np.ndarray]:
    """The selected true frames of each clip, [K, size, size, 3], for contact sheets."""
    wanted = frames[frames["clip_id"].isin(clip_ids)].sort_values("k")
    return {
        str(clip_id): read_pictures([frames_root / path for path in rows["path"]], size)
        for clip_id, rows in wanted.groupby("clip_id")
    }
