"""The project's one video reader and one video writer.

decord is the fast path for MP4/AVI/WebM, but it cannot open GIFs on Linux, so GIFs go
through PyAV. Writing uses PyAV for both containers: H.264 for MP4 and a single global
palette for GIF (per-frame palettes would make a static background flicker, which the
frame-difference selection would mistake for motion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from nextframe.errors import UserError
from nextframe.store import atomic_path

GIF_SUFFIXES = {".gif"}
DECORD_SUFFIXES = {".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v"}
DEFAULT_FPS = 10.0  # when a container states no usable frame rate


class VideoReadError(UserError):
    """A file that is not a decodable video; callers skip the clip and count it.

    ``reason`` is a short stable code (``missing``, ``undecodable``, ``empty``,
    ``too_many_pixels``) so that callers can count failures per reason without parsing
    messages.
    """

    def __init__(self, message: str, reason: str = "undecodable") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Video:
    frames: np.ndarray  # [N, H, W, 3] uint8 RGB
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


def read_video(
    path: str | Path,
    max_frames: int | None = None,
    *,
    max_seconds: float | None = None,
    max_pixels: int | None = None,
) -> Video:
    """Decode the first frames of a video as RGB uint8.

    ``max_frames`` and ``max_seconds`` (frames with ``index / fps < max_seconds``) both
    bound how much is decoded, so a caller that needs only the start of a long video
    does not pay for the rest; None means no bound. ``max_pixels`` bounds width x height
    x frames held in memory: a few KB of GIF can declare a 3000x3000 canvas and 70 frames
    (1.9 GB as RGB), so the bound is checked before each frame is converted (and for
    decord, which decodes a batch at once, before the batch), raising ``too_many_pixels``.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path}: no such video file", reason="missing")
    try:
        if path.suffix.lower() in GIF_SUFFIXES:
            video = _read_with_pyav(path, max_frames, max_seconds, max_pixels)
        else:
            video = _read_with_decord(path, max_frames, max_seconds, max_pixels)
    except VideoReadError:
        raise
    except Exception as exc:  # decoders raise many unrelated types on corrupt input
        raise VideoReadError(f"{path}: cannot decode video ({type(exc).__name__}: {exc})") from exc
    if video.n_frames == 0:
        raise VideoReadError(f"{path}: the file decodes to zero frames", reason="empty")
    return video


def _usable_fps(rate: float | None) -> float:
    return float(rate) if rate and math.isfinite(rate) and rate > 0 else DEFAULT_FPS


def _frame_limit(max_frames: int | None, max_seconds: float | None, fps: float) -> int | None:
    """The number of leading frames to decode, or None for all of them."""
    limits = [] if max_frames is None else [max_frames]
    if max_seconds is not None:
        # frame i is shown at i / fps; keep those strictly before max_seconds (at least one)
        limits.append(max(1, math.ceil(max_seconds * fps - 1e-6)))
    return min(limits) if limits else None


def _check_pixels(path: Path, frames: int, width: int, height: int, max_pixels: int | None) -> None:
    """Raise ``too_many_pixels`` before ``frames`` frames of width x height are held."""
    if max_pixels is not None and frames * width * height > max_pixels:
        raise VideoReadError(
            f"{path}: {frames} frame(s) of {width}x{height} exceed the decoding budget of "
            f"{max_pixels} pixels (download.max_pixels)",
            reason="too_many_pixels",
        )


def _frame_size(path: Path) -> tuple[int, int]:
    """Width and height from the container's header, without decoding a frame."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(f"{path}: the file holds no video stream", reason="empty")
        stream = container.streams.video[0]
        return stream.codec_context.width, stream.codec_context.height


def _read_with_decord(
    path: Path, max_frames: int | None, max_seconds: float | None, max_pixels: int | None
) -> Video:
    import decord

    width, height = _frame_size(path) if max_pixels is not None else (0, 0)
    _check_pixels(path, 1, width, height, max_pixels)
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    fps = _usable_fps(reader.get_avg_fps())
    limit = _frame_limit(max_frames, max_seconds, fps)
    count = len(reader) if limit is None else min(len(reader), limit)
    _check_pixels(path, count, width, height, max_pixels)
    if count == 0:
        return Video(frames=np.zeros((0, 1, 1, 3), np.uint8), fps=fps)
    frames = reader.get_batch(list(range(count))).asnumpy()  # [N, H, W, 3]; releases the GIL
    return Video(frames=frames, fps=fps)


def _read_with_pyav(
    path: Path, max_frames: int | None, max_seconds: float | None, max_pixels: int | None
) -> Video:
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoReadError(f"{path}: the file holds no video stream", reason="empty")
        stream = container.streams.video[0]
        context = stream.codec_context
        _check_pixels(path, 1, context.width, context.height, max_pixels)
        fps = _usable_fps(stream.average_rate or stream.guessed_rate)
        limit = _frame_limit(max_frames, max_seconds, fps)
        for frame in container.decode(stream):
            _check_pixels(path, len(frames) + 1, frame.width, frame.height, max_pixels)
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit is not None and len(frames) >= limit:
                break
    if not frames:
        return Video(frames=np.zeros((0, 1, 1, 3), np.uint8), fps=fps)
    return Video(frames=np.stack(frames), fps=fps)


def write_video(path: str | Path, frames: np.ndarray, fps: float) -> None:
    """Write ``[N, H, W, 3]`` uint8 RGB frames as MP4 (H.264) or GIF, chosen by suffix."""
    path = Path(path)
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"expected frames of shape [N, H, W, 3] with N > 0, got {frames.shape}")
    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".gif":
            _write_gif(tmp, frames, fps)
        elif suffix == ".mp4":
            _write_mp4(tmp, frames, fps)
        else:
            raise ValueError(f"{path}: can write .mp4 or .gif, not {suffix!r}")


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _encode_all(container: av.container.OutputContainer, stream, frames) -> None:
    for frame in frames:
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    # yuv420p needs even sides; pad by repeating the edge rather than distorting
    height, width = frames.shape[1:3]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=_rate(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # Reproducible bytes: one encoder thread (x264's output depends on its thread
        # count), and intra-only frames without lookahead or macroblock tree: with inter
        # prediction, 1 of 1,080 re-encodes of the same frames in one process differed,
        # this way none of 2,160 did. Clips are short, so the larger files cost little.
        stream.options = {
            "crf": "18",
            "preset": "medium",
            "threads": "1",
            "x264-params": "keyint=1:bframes=0:rc-lookahead=0:mbtree=0",
        }
        _encode_all(
            container, stream, (av.VideoFrame.from_ndarray(f, format="rgb24") for f in frames)
        )


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    count, height, width, _ = frames.shape
    # one palette for the whole clip, taken from all frames at once
    palette_image = Image.fromarray(frames.reshape(count * height, width, 3)).quantize(
        colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    rgb = np.zeros((256, 3), np.uint8)
    used = np.asarray(palette_image.getpalette(), np.uint8).reshape(-1, 3)[:256]
    rgb[: len(used)] = used
    # PyAV's pal8 palette rows are (alpha, red, green, blue); test_video round-trips colours
    palette = np.concatenate([np.full((256, 1), 255, np.uint8), rgb], axis=1)
    with av.open(str(path), mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=_rate(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "pal8"
        indexed = (
            np.asarray(Image.fromarray(f).quantize(palette=palette_image, dither=Image.Dither.NONE))
            for f in frames
        )
        _encode_all(
            container,
            stream,
            (av.VideoFrame.from_ndarray((idx, palette), format="pal8") for idx in indexed),
        )
