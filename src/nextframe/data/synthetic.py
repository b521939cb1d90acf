"""The ``synthetic`` source: captioned clips of one moving shape, drawn from a seeded RNG.

The true motion of every clip is known: stated in its caption ("a large red circle moves
quickly from left to right on a gray background") and, pose by pose, written to
``truth.parquet`` (``truth_rows``). That makes this source the project's motion
benchmark, and lets the whole pipeline run offline in seconds.

Per clip the RNG draws a shape, its colour, a different background colour, a motion
(translate left/right/up/down, grow, shrink, rotate; circles never rotate, since a
rotating circle looks still), a speed and a size. Frames are rendered with numpy
(2 x 2 supersampling for smooth edges) and written through ``video.write_video``,
alternating over ``formats`` so both readers (decord for MP4, PyAV for GIF) get used.

The caption space is split in two by a fixed hash of the caption (``caption_side``): the
toy backbone trains only on captions of the ``backbone`` side, and only clips whose
caption is on the ``held_out`` side can go to val or test (the other clips all train).
A toy that saw a test caption verbatim would hand the pipeline part of the answer; with
the split no seed, clip count or split fraction can make the two meet.

Clip ids carry a digest of their spec (``syn0007-3fa2c1``): a rerun with other params or
another seed writes new files instead of trusting old ones, and a rerun with the same
params keeps every video that still decodes to the expected number of frames.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nextframe.config import DownloadParams, SplitFractions, SyntheticParams
from nextframe.data.manifest import OK, VIDEO_DIR, ManifestRow, SourceResult, failed
from nextframe.data.splits import assign_splits, split_position
from nextframe.data.synthetic_captions import (
    COLORS,
    MOTIONS,
    SCALES,
    SHAPES,
    SPEEDS,
    TRANSLATIONS,
    caption,
)
from nextframe.data.video import VideoReadError, read_video, write_video
from nextframe.errors import UserError
from nextframe.progress import progress_bar

SOURCE = "synthetic"

# Geometry in fractions of the frame side, chosen so every shape stays inside the frame.
RADIUS = {"small": 0.10, "large": 0.17}  # circumradius at the start of the clip
TRAVEL = {"slowly": 0.25, "quickly": 0.5}  # distance covered by a translation
GROWTH = {"slowly": 0.5, "quickly": 1.0}  # relative radius change over the clip (grows)
SHRINK = {"slowly": 0.35, "quickly": 0.6}  # relative radius change over the clip (shrinks)
TURN = {"slowly": math.pi / 6, "quickly": math.pi / 3}  # total rotation; below every symmetry
SUPERSAMPLE = 2

# The caption partition: a caption's side is fixed by a hash with this seed (not download.seed)
BACKBONE, HELD_OUT = "backbone", "held_out"
HELD_OUT_SHARE = 0.5  # of the caption space (and so, on average, of the drawn clips)
PARTITION_SEED = 20_001


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides a clip's pixels; ``offset`` shifts the path sideways."""

    shape: str
    color: str
    background: str
    motion: str
    speed: str
    scale: str
    offset: float  # fraction of the side, perpendicular to a translation (or both axes)
    angle: float  # initial orientation in radians
    n_frames: int
    size: int
    fps: float

    def caption(self) -> str:
        return caption(self.shape, self.color, self.background, self.motion, self.speed, self.scale)

    def digest(self) -> str:
        """A short stable hash of the spec, so a changed spec never reuses an old file."""
        payload = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:6]


def caption_side(caption: str) -> str:
    """``HELD_OUT`` if clips with this caption may be held out (val, test), else ``BACKBONE``
    (captions the toy backbone may train on); the same for every seed and every run."""
    return HELD_OUT if split_position(caption, PARTITION_SEED) < HELD_OUT_SHARE else BACKBONE


def synthetic_splits(
    clip_ids: list[str], specs: list[ClipSpec], fractions: SplitFractions, seed: int
) -> dict[str, str]:
    """Each clip's split: clips with a ``BACKBONE`` caption train; the others are split by
    ``assign_splits`` at fractions scaled by 1 / ``HELD_OUT_SHARE``, so that about
    ``fractions`` of all clips land in val and test, as for any other source. In a tiny
    run val and test are not left empty while a held-out-side clip is in train."""
    if fractions.val + fractions.test >= HELD_OUT_SHARE:
        raise UserError(
            f"download.split: val + test ({fractions.val} + {fractions.test}) must be below "
            f"{HELD_OUT_SHARE} for the synthetic source: only clips whose caption is on the "
            "held-out side of the caption partition (half of them) can be held out"
        )
    held_out = [
        clip_id
        for clip_id, spec in zip(clip_ids, specs, strict=True)
        if caption_side(spec.caption()) == HELD_OUT
    ]
    scaled = SplitFractions(
        val=fractions.val / HELD_OUT_SHARE, test=fractions.test / HELD_OUT_SHARE
    )
    splits = {clip_id: "train" for clip_id in clip_ids} | assign_splits(held_out, scaled, seed)
    for name in ("test", "val"):  # a tiny run: a held-out-side clip that trains fills a gap
        spare = [clip_id for clip_id in held_out if splits[clip_id] == "train"]
        if spare and name not in splits.values():
            splits[min(spare, key=lambda clip_id: split_position(clip_id, seed))] = name
    return splits


def make_specs(params: SyntheticParams, seed: int) -> list[ClipSpec]:
    """``n_clips`` specs drawn in order from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    specs = []
    for _ in range(params.n_clips):
        shape = SHAPES[rng.integers(len(SHAPES))]
        color = list(COLORS)[rng.integers(len(COLORS))]
        backgrounds = [name for name in COLORS if name != color]
        motions = [m for m in MOTIONS if not (shape == "circle" and m == "rotates")]
        specs.append(
            ClipSpec(
                shape=shape,
                color=color,
                background=backgrounds[rng.integers(len(backgrounds))],
                motion=motions[rng.integers(len(motions))],
                speed=SPEEDS[rng.integers(len(SPEEDS))],
                scale=SCALES[rng.integers(len(SCALES))],
                offset=round(float(rng.uniform(-0.1, 0.1)), 3),
                angle=round(float(rng.uniform(0, 2 * math.pi)), 3),
                n_frames=params.n_frames,
                size=params.size,
                fps=params.fps,
            )
        )
    return specs


def _pose(spec: ClipSpec, t: float) -> tuple[float, float, float, float]:
    """Centre x, centre y, circumradius and angle at clip time ``t`` in [0, 1]."""
    radius, angle = RADIUS[spec.scale], spec.angle
    center_x = center_y = 0.5 + spec.offset
    if spec.motion in TRANSLATIONS:
        (dx, dy), _ = TRANSLATIONS[spec.motion]
        along = TRAVEL[spec.speed] * (t - 0.5)
        center_x = 0.5 + (dx * along if dx else spec.offset)
        center_y = 0.5 + (dy * along if dy else spec.offset)
    elif spec.motion == "grows":
        radius *= 1 + GROWTH[spec.speed] * t
    elif spec.motion == "shrinks":
        radius *= 1 - SHRINK[spec.speed] * t
    elif spec.motion == "rotates":
        angle += TURN[spec.speed] * t
    return center_x, center_y, radius, angle


def truth_rows(clip_id: str, spec: ClipSpec) -> list[dict]:
    """The object's pose in every frame of the clip, in pixels (store.TRUTH_SCHEMA rows)."""
    rows = []
    for index in range(spec.n_frames):
        center_x, center_y, radius, angle = _pose(spec, index / (spec.n_frames - 1))
        rows.append(
            {
                "clip_id": clip_id,
                "frame_index": index,
                "t_seconds": index / spec.fps,
                "cx": center_x * spec.size,
                "cy": center_y * spec.size,
                "radius": radius * spec.size,
                "angle": angle,
                "frame_size": spec.size,
            }
        )
    return rows


def inside_shape(shape: str, x: np.ndarray, y: np.ndarray, radius: float, angle) -> np.ndarray:
    """Whether points at offsets (x, y) from the centre lie inside ``shape`` of circumradius
    ``radius`` turned by ``angle``; ``angle`` may be an array that broadcasts against x and y
    (the toy's shape probe tries many orientations at once)."""
    if shape == "circle":
        shape_out = np.broadcast_shapes(np.shape(x), np.shape(y), np.shape(angle))
        return np.broadcast_to(x**2 + y**2 <= radius**2, shape_out)
    if shape == "square":
        half = radius / math.sqrt(2)  # the square inscribed in the circumcircle
        u = x * np.cos(angle) + y * np.sin(angle)
        v = -x * np.sin(angle) + y * np.cos(angle)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    inside = True  # equilateral triangle: inside all three edges, each at the inradius R / 2
    for k in range(3):
        normal = angle + math.pi / 2 + 2 * math.pi * k / 3  # towards an edge's midpoint
        inside = inside & (x * np.cos(normal) + y * np.sin(normal) <= radius / 2)
    return inside


def _coverage(spec: ClipSpec, t: float, grid_x: np.ndarray, grid_y: np.ndarray) -> np.ndarray:
    """Fraction of each pixel covered by the shape, ``[H, W]`` float32."""
    center_x, center_y, radius, angle = _pose(spec, t)
    inside = inside_shape(spec.shape, grid_x - center_x, grid_y - center_y, radius, angle)
    s = SUPERSAMPLE  # inside: [H*S, W*S]
    return inside.reshape(spec.size, s, spec.size, s).mean(axis=(1, 3), dtype=np.float32)


def render_clip(spec: ClipSpec) -> np.ndarray:
    """The clip's frames, ``[F, H, W, 3]`` uint8 RGB; a pure function of ``spec``."""
    samples = (np.arange(spec.size * SUPERSAMPLE, dtype=np.float32) + 0.5) / (
        spec.size * SUPERSAMPLE
    )
    grid_x, grid_y = np.meshgrid(samples, samples)  # [H*S, W*S] in [0, 1)
    foreground = np.array(COLORS[spec.color], np.float32)
    background = np.array(COLORS[spec.background], np.float32)
    frames = np.empty((spec.n_frames, spec.size, spec.size, 3), np.uint8)
    for index in range(spec.n_frames):
        cover = _coverage(spec, index / (spec.n_frames - 1), grid_x, grid_y)[..., None]
        frames[index] = np.rint(background + (foreground - background) * cover)
    return frames


def _problem(path: Path, n_frames: int) -> str | None:
    """Why ``path`` is not a usable clip of ``n_frames`` frames, or None if it is."""
    try:
        decoded = read_video(path, max_frames=n_frames + 1).n_frames
    except VideoReadError as exc:
        return exc.reason
    return None if decoded == n_frames else "frame_count"


def collect(params: DownloadParams, out_dir: Path) -> SourceResult:
    """Render and write every clip (keeping complete ones) and return their manifest rows."""
    synthetic = params.synthetic
    specs = make_specs(synthetic, params.seed)
    clip_ids = [f"syn{index:04d}-{spec.digest()}" for index, spec in enumerate(specs)]
    splits = synthetic_splits(clip_ids, specs, params.split, params.seed)
    rows, truth, written = [], [], 0
    for index, spec in enumerate(progress_bar(specs, desc=SOURCE, unit="clip")):
        clip_id = clip_ids[index]
        relative = f"{VIDEO_DIR}/{clip_id}.{synthetic.formats[index % len(synthetic.formats)]}"
        path = out_dir / relative
        problem = _problem(path, spec.n_frames) if path.exists() else "absent"
        if problem is not None:
            write_video(path, render_clip(spec), spec.fps)
            written += 1
            problem = _problem(path, spec.n_frames)
        rows.append(
            ManifestRow(
                clip_id=clip_id,
                source=SOURCE,
                caption=spec.caption(),
                label=spec.motion,
                split=splits[clip_id],
                path=relative,
                url="",
                status=OK if problem is None else failed(problem),
            )
        )
        truth += truth_rows(clip_id, spec)
    return SourceResult(
        rows,
        metrics={"videos_written": written, "videos_kept": len(specs) - written},
        truth=truth,
    )
