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
    direction_scores,
    orientation,
    psnr,
    scene_colours,
    segment,
    ssim,
    symmetry_order,
    trajectory,
    video_scores,
)


def clip_with(motion: str) -> ClipSpec:
    spec = next(s for s in make_specs(SyntheticParams(n_clips=200), 5) if s.motion == motion)
    return replace(spec, n_frames=8)


def poses_of(spec: ClipSpec) -> np.ndarray:
    rows = truth_rows("c", spec)
    return np.array([[r["cx"], r["cy"], r["radius"], r["angle"]] for r in rows])


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
    scene = scene_colours(frames[0])
    scored = trajectory(frames[1:], poses[1:], scene, symmetry_order(frames[1], scene))
    assert scored.centroid_error < 0.6
    if motion.startswith("moves"):
        assert scored.direction_correct == 1.0 and scored.displacement_error < 1.0
        assert scored.direction_correct_45 == 1.0 and scored.position_motion > 0.98
        assert math.isnan(scored.size_change_error)
    else:
        assert math.isnan(scored.direction_correct) and math.isnan(scored.displacement_error)
        assert math.isnan(scored.position_motion)
    if motion in ("grows", "shrinks"):
        assert scored.size_change_error < 0.08 and scored.size_motion > 0.95
    else:
        assert math.isnan(scored.size_change_error) and math.isnan(scored.size_motion)
    if motion == "rotates":
        assert scored.angle_motion > 0.95
    else:
        assert math.isnan(scored.angle_motion)
    # every moving clip has one motion score, on the factor it changes
    assert scored.factor_motion > 0.95


def test_standing_still_or_moving_backwards_gets_no_direction_credit() -> None:
    spec = clip_with("moves_right")
    frames, poses = render_clip(spec), poses_of(spec)
    scene = scene_colours(frames[0])
    still = trajectory(np.repeat(frames[1:2], 7, axis=0), poses[1:], scene, 4)
    assert still.direction_correct == 0.0 and still.direction_correct_45 == 0.0
    assert still.position_motion == pytest.approx(0.0, abs=0.02)
    true_shift = poses[-1, :2] - poses[1, :2]
    assert still.displacement_error == pytest.approx(np.linalg.norm(true_shift), rel=0.05)
    backwards = trajectory(frames[1:][::-1], poses[1:], scene, 4)
    assert backwards.direction_correct == 0.0 and backwards.position_motion == -1.0
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


def test_strict_direction_fails_a_tenth_of_the_way_and_passes_the_whole_way() -> None:
    """The right direction is not enough: a rollout that creeps 10% of the true
    displacement (the old criterion's loophole: linear got 0.625 moving 9%) fails; the
    whole way passes; up to 1.5x overshooting passes; 30 degrees off fails."""
    spec = clip_with("moves_right")  # 8 frames at t = k / 7
    poses = poses_of(spec)
    fine = render_clip(replace(spec, n_frames=71))  # frame j at t = j / 70: frame 10 k is k
    scene = scene_colours(fine[0])
    whole = trajectory(fine[10::10], poses[1:], scene, 4)  # steps 1..7 as they are
    creeping = trajectory(fine[10:17], poses[1:], scene, 4)  # a tenth of each step's change
    assert whole.direction_correct == 1.0 and whole.position_motion > 0.98
    assert creeping.direction_correct == 0.0
    assert creeping.direction_correct_45 == 1.0  # the old criterion gave it credit
    true_shift = poses[-1, :2] - poses[1, :2]
    for fraction, strict in ((0.1, 0), (0.49, 0), (0.5, 1), (1.0, 1), (1.5, 1), (1.6, 0)):
        assert direction_scores(fraction * true_shift, true_shift)[0] == strict, fraction
    turn = math.radians(30)
    rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    assert direction_scores(rotation @ true_shift, true_shift) == (0.0, 1.0)


@pytest.mark.parametrize("shape", ["square", "triangle"])
def test_orientation_follows_the_generators_angle(shape: str) -> None:
    spec = replace(clip_with("rotates"), shape=shape, speed="quickly", scale="large")
    frames, poses = render_clip(spec), poses_of(spec)
    scene = scene_colours(frames[0])
    order = symmetry_order(frames[0], scene)
    assert order == {"square": 4, "triangle": 3}[shape]
    turned = orientation(frames, scene, order)
    np.testing.assert_allclose(turned - turned[0], poses[:, 3] - poses[0, 3], atol=math.radians(3))
    # standing still after step 1 scores 0 on the angle, turning back the way it came -1
    still = trajectory(np.repeat(frames[1:2], 7, axis=0), poses[1:], scene, order)
    assert still.angle_motion == pytest.approx(0.0, abs=0.05)
    assert still.factor_motion == still.angle_motion and math.isnan(still.position_motion)
    assert trajectory(frames[1:][::-1], poses[1:], scene, order).angle_motion == -1.0
