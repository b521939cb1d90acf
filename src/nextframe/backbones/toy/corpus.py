"""The toy backbone's training corpus: synthetic clips, what the pipeline would see of them,
and the truth about every frame.

Clips come from the pipeline's own generator (``data.synthetic``) with the recipe's seed,
keeping only those whose caption is on the backbone's side of the generator's caption
partition (never a caption the pipeline can hold out): every shape, colour, background and
motion appears, in combinations the pipeline's val and test never use. Every frame of
every clip is used (the embedding has to follow the whole motion, not just the frames
``top_diff`` keeps). The pipeline writes its clips alternately as MP4 (H.264, yuv420p:
chroma at half resolution, colours shifted by the YUV round trip) and GIF; the image tower
sees what comes back from those files, so the corpus does the same: even clips go through
the project's video writer and reader as MP4, tiled 8 x 8 into one video to pay the
codec's fixed cost once per 64 clips (each tile is four whole 16 px macroblock columns, so
a tile is coded much as a lone 64 px clip is). Odd clips stay as rendered: a synthetic
clip has far fewer than 256 colours, so the GIF round trip with its global palette gives
back the very same pixels. The decoder learns to draw the clean rendered frame.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nextframe.backbones.toy.recipe import Recipe
from nextframe.config import SyntheticParams
from nextframe.data.synthetic import (
    BACKBONE,
    COLORS,
    MOTIONS,
    SCALES,
    SHAPES,
    SPEEDS,
    ClipSpec,
    _pose,
    caption_side,
    make_specs,
    render_clip,
)
from nextframe.data.video import read_video, write_video
from nextframe.progress import progress_bar

TILES = 8  # clips per side of one MP4 mosaic
SYMMETRY = {"circle": 0, "square": 4, "triangle": 3}  # rotations that map a shape onto itself
ATTRIBUTES = {  # what a caption states, as class indices per clip
    "shape": SHAPES,
    "color": tuple(COLORS),
    "background": tuple(COLORS),
    "motion": MOTIONS,
    "speed": SPEEDS,
    "scale": SCALES,
}


@dataclass(frozen=True)
class Corpus:
    """``N`` clips of ``F`` frames: pixels, truth and captions."""

    seen: Tensor  # [N, F, 3, S, S] uint8: frames as the pipeline would read them
    clean: Tensor  # [N, F, 3, S, S] uint8: frames as rendered (the decoder's target)
    poses: Tensor  # [N, F, 4] float32: centre x, centre y, circumradius (pixels), angle
    attributes: dict[str, Tensor]  # name -> [N] int64 class index (see ATTRIBUTES)
    symmetry: Tensor  # [N] float32: rotational symmetry order of the clip's shape (0: circle)
    palette: Tensor  # [N, 2, 3] float32 in [0, 1]: background and object colour
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)


DRAWS_PER_CLIP = 4  # specs drawn per corpus clip: about half have a backbone-side caption


def corpus_specs(recipe: Recipe) -> list[ClipSpec]:
    """The first ``n_clips`` specs drawn from the corpus seed whose caption is on the
    backbone's side of the caption partition (``synthetic.caption_side``): the pipeline
    holds out only clips from the other side, so no val or test caption is in the corpus."""
    params = SyntheticParams(
        n_clips=DRAWS_PER_CLIP * recipe.n_clips,
        n_frames=recipe.n_frames,
        fps=recipe.fps,
        size=recipe.size,
    )
    drawn = make_specs(params, recipe.corpus_seed)
    specs = [spec for spec in drawn if caption_side(spec.caption()) == BACKBONE][: recipe.n_clips]
    if len(specs) < recipe.n_clips:
        raise ValueError(f"only {len(specs)} backbone-side captions in {len(drawn)} draws")
    return specs


def poses_of(spec: ClipSpec) -> np.ndarray:
    """[F, 4] float32: the true centre (pixels), circumradius (pixels) and angle per frame."""
    poses = np.empty((spec.n_frames, 4), np.float32)
    for index in range(spec.n_frames):
        centre_x, centre_y, radius, angle = _pose(spec, index / (spec.n_frames - 1))
        poses[index] = (centre_x * spec.size, centre_y * spec.size, radius * spec.size, angle)
    return poses


def through_mp4(clips: list[np.ndarray], fps: float) -> list[np.ndarray]:
    """Each ``[F, S, S, 3]`` clip as the MP4 writer and reader give it back, in mosaics."""
    count, size = len(clips), clips[0].shape[1]
    out: list[np.ndarray] = []
    with tempfile.TemporaryDirectory(prefix="nextframe-toy-") as folder:
        for start in range(0, count, TILES * TILES):
            group = clips[start : start + TILES * TILES]
            mosaic = np.zeros((len(group[0]), TILES * size, TILES * size, 3), np.uint8)
            for tile, clip in enumerate(group):
                row, col = divmod(tile, TILES)
                mosaic[:, row * size : (row + 1) * size, col * size : (col + 1) * size] = clip
            path = Path(folder) / f"{start}.mp4"
            write_video(path, mosaic, fps)
            decoded = read_video(path).frames  # [F, 8S, 8S, 3]
            for tile in range(len(group)):
                row, col = divmod(tile, TILES)
                out.append(decoded[:, row * size : (row + 1) * size, col * size : (col + 1) * size])
    return out


def make_corpus(recipe: Recipe, progress: bool = False) -> Corpus:
    """Render the recipe's clips, pass the even ones through MP4, and gather their truth."""
    specs = corpus_specs(recipe)
    clean = [
        render_clip(spec)
        for spec in progress_bar(specs, desc="toy corpus", unit="clip", disable=not progress)
    ]  # N x [F, S, S, 3] uint8
    seen = list(clean)
    for index, decoded in zip(
        range(0, len(specs), 2), through_mp4(clean[::2], recipe.fps), strict=True
    ):
        seen[index] = decoded

    def stack(clips: list[np.ndarray]) -> Tensor:
        return torch.from_numpy(np.stack(clips)).permute(0, 1, 4, 2, 3).contiguous()

    attributes = {
        name: torch.tensor([values.index(getattr(spec, name)) for spec in specs])
        for name, values in ATTRIBUTES.items()
    }
    return Corpus(
        seen=stack(seen),  # [N, F, 3, S, S]
        clean=stack(clean),
        poses=torch.from_numpy(np.stack([poses_of(spec) for spec in specs])),  # [N, F, 4]
        attributes=attributes,
        symmetry=torch.tensor([float(SYMMETRY[spec.shape]) for spec in specs]),
        palette=torch.tensor(
            [[COLORS[spec.background], COLORS[spec.color]] for spec in specs], dtype=torch.float32
        )
        / 255,
        captions=[spec.caption() for spec in specs],
    )
