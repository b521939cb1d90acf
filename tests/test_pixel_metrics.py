"""Picture metrics against the synthetic generator's own truth, and hand-made failure cases."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from nextframe.config import SyntheticParams
from nextframe.data.synthetic import ClipSpec, make_specs, render_clip, truth_rows
from nextframe.pixel_metrics import (
    psnr,
    scene_colours,
    segment,
    ssim,
    trajectory,
    video_scores,
)


def clip_with(motion: str) -> ClipSpec:
    spec = next(s for s in make_specs(SyntheticParams(n_clips=200), 5) if s.motion == motion)
    return replace(spec, n_frames=8)


def poses_of(spec: ClipSpec) -> np.ndarray:
    rows = truth_rows("c", spec)
    return np.array([[r["cx"], r["cy"], r["radius"]] for r in rows])


@pytest.mark.parametrize("motion", ["moves_right", "moves_up", "grows", "shrinks", "rotates"])
def test_segmenting_rendered_frames_recovers_the_generators_pose(motion: str) -> None:
    spec = clip_with(motion)
    frames, poses = render_clip(spec), poses_of(spec)
    centroid, area = segment(frames, scene_colours(frames[0]))
    # the centroid of an anti-aliased shape is its centre within a fraction of a pixel
    # (triangles: the centroid of the area is the circumcentre for an equilateral one)
    assert np.abs(centroid - poses[:, :2]).max() < 0.6
    if spec.shape == "circle":
        np.testing.assert_allclose(area, math.pi * poses[:, 2] ** 2, rtol=0.08)
    scored = trajectory(frames[1:], poses[1:], scene_colours(frames[0]))
    assert scored.centroid_error < 0.6
    if motion.startswith("moves"):
        assert scored.direction_correct == 1.0 and scored.displacement_error < 1.0
        assert math.isnan(scored.size_change_error)
    else:
        assert math.isnan(scored.direction_correct) and math.isnan(scored.displacement_error)
    if motion in ("grows", "shrinks"):
        assert scored.size_change_error < 0.08
    else:
        assert math.isnan(scored.size_change_error)


def test_standing_still_or_moving_backwards_gets_no_direction_credit() -> None:
    spec = clip_with("moves_right")
    frames, poses = render_clip(spec), poses_of(spec)
    scene = scene_colours(frames[0])
    still = trajectory(np.repeat(frames[1:2], 7, axis=0), poses[1:], scene)
    assert still.direction_correct == 0.0
    true_shift = poses[-1, :2] - poses[1, :2]
    assert still.displacement_error == pytest.approx(np.linalg.norm(true_shift), rel=0.05)
    backwards = trajectory(frames[1:][::-1], poses[1:], scene)
    assert backwards.direction_correct == 0.0
    assert backwards.displacement_error == pytest.approx(2 * np.linalg.norm(true_shift), rel=0.1)
    assert backwards.centroid_error > still.centroid_error / 2


def test_an_empty_picture_puts_the_object_in_the_middle() -> None:
    spec = clip_with("moves_right")
    frames = render_clip(spec)
    blank = np.broadcast_to(frames[0, :1, :1], frames.shape).copy()  # background only
    centroid, area = segment(blank, scene_colours(frames[0]))
    assert (area == 0).all() and (centroid == spec.size / 2).all()


def test_psnr_and_ssim_match_the_references() -> None:
    generator = np.random.default_rng(0)
    truth = generator.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    noisy = np.clip(truth.astype(int) + generator.integers(-20, 21, truth.shape), 0, 255).astype(
        np.uint8
    )
    expected = [
        peak_signal_noise_ratio(t, n, data_range=255) for t, n in zip(truth, noisy, strict=True)
    ]
    np.testing.assert_allclose(psnr(noisy, truth), expected)
    mse = np.mean((truth[0].astype(float) - noisy[0]) ** 2)
    assert psnr(noisy, truth)[0] == pytest.approx(10 * math.log10(255**2 / mse))
    assert psnr(truth, truth)[0] == 100.0
    assert ssim(truth, truth) == pytest.approx(np.ones(3))
    assert (ssim(noisy, truth) < 0.99).all()


def test_video_scores_apply_trajectory_metrics_only_where_a_pose_is_known() -> None:
    spec = clip_with("moves_down")
    frames, poses = render_clip(spec), poses_of(spec)
    videos = {("m", "step", "x"): np.stack([frames, frames])}
    scores = video_scores(videos, [frames, frames], [poses, None], horizon=7)
    assert scores["m.step.x.psnr"].tolist() == [100.0, 100.0]
    assert scores["m.step.x.direction_acc"][0] == 1.0
    assert math.isnan(scores["m.step.x.direction_acc"][1])
    assert math.isnan(scores["m.step.x.centroid_err"][1])
