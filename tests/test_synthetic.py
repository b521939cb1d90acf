"""The synthetic source: deterministic clips whose pixels do what their captions say."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from nextframe.config import DownloadParams, SplitFractions, SyntheticParams
from nextframe.data.synthetic import (
    BACKBONE,
    COLORS,
    HELD_OUT,
    MOTIONS,
    ClipSpec,
    caption_side,
    collect,
    make_specs,
    render_clip,
    synthetic_splits,
)
from nextframe.data.video import read_video
from nextframe.errors import UserError

BASE = ClipSpec(
    shape="square",
    color="red",
    background="gray",
    motion="moves_right",
    speed="quickly",
    scale="large",
    offset=0.05,
    angle=0.3,
    n_frames=8,
    size=48,
    fps=8.0,
)


def shape_mask(frames: np.ndarray, spec: ClipSpec) -> np.ndarray:
    """Pixels closer to the shape's colour than to the background's, ``[F, H, W]``."""
    pixels = frames.astype(np.float32)
    to_shape = np.linalg.norm(pixels - np.array(COLORS[spec.color]), axis=-1)
    to_background = np.linalg.norm(pixels - np.array(COLORS[spec.background]), axis=-1)
    return to_shape < to_background


def centroids(mask: np.ndarray) -> np.ndarray:
    """``[F, 2]`` (x, y) centroid of the mask in every frame."""
    rows, cols = np.indices(mask.shape[1:])
    area = mask.sum(axis=(1, 2))
    return np.stack(
        [(mask * cols).sum(axis=(1, 2)) / area, (mask * rows).sum(axis=(1, 2)) / area], 1
    )


def download_params(seed: int = 0, n_clips: int = 6, **synthetic) -> DownloadParams:
    settings = {"n_clips": n_clips, "n_frames": 8, "size": 32} | synthetic
    return DownloadParams(seed=seed, synthetic=SyntheticParams(**settings))


@pytest.mark.parametrize(
    ("motion", "axis", "sign"),
    [("moves_right", 0, 1), ("moves_left", 0, -1), ("moves_down", 1, 1), ("moves_up", 1, -1)],
)
@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_translations_move_the_centroid_the_stated_way(
    shape: str, motion: str, axis: int, sign: int
) -> None:
    spec = dataclasses.replace(BASE, shape=shape, motion=motion)
    frames = render_clip(spec)
    assert frames.shape == (8, 48, 48, 3) and frames.dtype == np.uint8
    path = centroids(shape_mask(frames, spec))
    steps = sign * np.diff(path[:, axis])
    assert (steps > 0).all(), path
    assert np.abs(np.diff(path[:, 1 - axis])).max() < 0.5  # no drift across the path
    assert sign * (path[-1, axis] - path[0, axis]) > 0.4 * 48 * 0.9  # "quickly": half the side


@pytest.mark.parametrize("shape", ["circle", "square", "triangle"])
def test_growing_and_shrinking_change_the_area(shape: str) -> None:
    for motion, sign in [("grows", 1), ("shrinks", -1)]:
        spec = dataclasses.replace(BASE, shape=shape, motion=motion)
        area = shape_mask(render_clip(spec), spec).sum(axis=(1, 2))
        assert (sign * np.diff(area) > 0).all(), (motion, area)


def test_rotation_turns_the_shape_in_place() -> None:
    spec = dataclasses.replace(BASE, shape="triangle", motion="rotates")
    mask = shape_mask(render_clip(spec), spec)
    path = centroids(mask)
    assert np.abs(path - path[0]).max() < 0.5  # the centre stays put
    area = mask.sum(axis=(1, 2))
    assert area.max() - area.min() <= 0.1 * area.mean()  # pixel rounding only
    assert (mask[0] != mask[-1]).sum() > 0.2 * area.mean()  # but the pixels change


def test_specs_are_seeded_and_captions_state_shape_colour_and_motion() -> None:
    params = SyntheticParams(n_clips=40)
    specs = make_specs(params, seed=0)
    assert specs == make_specs(params, seed=0)
    assert [s.caption() for s in specs] != [s.caption() for s in make_specs(params, seed=1)]
    assert {spec.motion for spec in specs} == set(MOTIONS)
    for spec in specs:
        caption = spec.caption()
        assert spec.background != spec.color
        assert not (spec.shape == "circle" and spec.motion == "rotates")
        assert f"{spec.color} {spec.shape}" in caption
        assert spec.scale in caption and spec.speed in caption
        assert caption.endswith(f"{spec.background} background")
        assert spec.motion.removeprefix("moves_") in caption or "moves" in caption
    example = dataclasses.replace(BASE, shape="circle", background="orange").caption()
    assert example == "a large red circle moves quickly from left to right on an orange background"


def test_collect_writes_both_formats_that_decode_to_the_rendered_frames(tmp_path: Path) -> None:
    params = download_params()
    result = collect(params, tmp_path)
    specs = make_specs(params.synthetic, params.seed)
    assert [row.path.rsplit(".", 1)[1] for row in result.rows] == ["mp4", "gif"] * 3
    for row, spec in zip(result.rows, specs, strict=True):
        assert row.status == "ok" and row.label == spec.motion and row.caption == spec.caption()
        video = read_video(tmp_path / row.path)
        assert video.n_frames == 8 and video.frames.shape[1:] == (32, 32, 3)
        error = np.abs(video.frames.astype(np.int16) - render_clip(spec)).mean()
        assert error < (0.5 if row.path.endswith(".gif") else 6.0), (row.path, error)
    assert {row.split for row in result.rows} == {"train", "val", "test"}


def test_same_seed_gives_identical_decoded_frames_and_rows(tmp_path: Path) -> None:
    first = collect(download_params(seed=7, n_clips=2), tmp_path / "a")
    second = collect(download_params(seed=7, n_clips=2), tmp_path / "b")
    assert first.rows == second.rows
    for row in first.rows:
        a, b = read_video(tmp_path / "a" / row.path), read_video(tmp_path / "b" / row.path)
        np.testing.assert_array_equal(a.frames, b.frames)
    other = collect(download_params(seed=8, n_clips=2), tmp_path / "c")
    assert [r.clip_id for r in other.rows] != [r.clip_id for r in first.rows]


def test_a_broken_video_is_rewritten_and_good_ones_are_kept(tmp_path: Path) -> None:
    params = download_params(n_clips=2)
    rows = collect(params, tmp_path).rows
    good, broken = tmp_path / rows[0].path, tmp_path / rows[1].path
    broken.write_bytes(b"not a gif")
    before = good.stat().st_mtime_ns
    result = collect(params, tmp_path)
    assert result.metrics == {"videos_written": 1, "videos_kept": 1}
    assert good.stat().st_mtime_ns == before
    assert read_video(broken).n_frames == 8


def test_only_held_out_side_captions_are_held_out() -> None:
    """Clips whose caption is on the backbone's side of the caption partition always train;
    the others fill val and test at about the configured fractions of all clips; the
    partition is a fixed property of the caption, the same for every seed."""
    params = DownloadParams(synthetic=SyntheticParams(n_clips=2000))
    specs = make_specs(params.synthetic, params.seed)
    clip_ids = [f"syn{index:04d}-{spec.digest()}" for index, spec in enumerate(specs)]
    splits = synthetic_splits(clip_ids, specs, params.split, params.seed)
    sides = [caption_side(spec.caption()) for spec in specs]
    assert 0.4 < np.mean([side == HELD_OUT for side in sides]) < 0.6
    backbone_side = [c for c, side in zip(clip_ids, sides, strict=True) if side == BACKBONE]
    assert all(splits[c] == "train" for c in backbone_side)
    for name in ("val", "test"):
        assert 0.12 < np.mean([split == name for split in splits.values()]) < 0.18
    assert {caption_side(spec.caption()) for spec in specs[:50]} == {BACKBONE, HELD_OUT}
    other_seed = synthetic_splits(clip_ids, specs, params.split, seed=7)
    assert all(other_seed[c] == "train" for c in backbone_side)
    with pytest.raises(UserError, match="held-out side"):
        synthetic_splits(clip_ids, specs, SplitFractions(val=0.25, test=0.25), params.seed)
