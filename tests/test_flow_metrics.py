"""Weight-free motion metrics: Farneback on a known shift, VBench's dynamic-degree rule,
warp error and flickering by hand, and the evaluate keys beside the true frames'."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from nextframe.config import EvaluateParams
from nextframe.field_metrics import field_scores
from nextframe.flow_metrics import (
    backward_flow,
    flow_scores,
    moving_threshold,
    pairs_needed,
    top_mean,
    warp,
)

SHIFT_PX = 3


def textured(size: int = 96, seed: int = 0) -> np.ndarray:
    """A smooth random texture [S, S, 3] uint8 (Farneback needs gradients everywhere)."""
    noise = np.random.default_rng(seed).random((size, size))
    smooth = gaussian_filter(noise, 2.0)
    scaled = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    return np.repeat(scaled.astype(np.uint8)[..., None], 3, axis=-1)


def shifted(frame: np.ndarray, dx: int) -> np.ndarray:
    return np.roll(frame, dx, axis=1)


def test_farneback_magnitude_of_a_three_pixel_shift() -> None:
    frame = textured()
    video = np.stack([frame, shifted(frame, SHIFT_PX)])
    flow = backward_flow(video[0], video[1])[12:-12, 12:-12]  # away from the wrap-around
    magnitude = float(np.linalg.norm(flow, axis=-1).mean())
    assert 2.5 <= magnitude <= 3.5
    assert float(flow[..., 0].mean()) < -2.5  # frame 1 at x shows frame 0 at x - 3
    assert 2.5 <= flow_scores(video, fps=8).flow_mag <= 3.5


def test_warping_by_the_flow_explains_a_shift_but_not_new_content() -> None:
    frame = textured()
    moved = shifted(frame, SHIFT_PX)
    flow = backward_flow(frame, moved)
    inner = (slice(12, -12), slice(12, -12))
    warped_error = np.abs(warp(frame, flow).astype(float) - moved)[inner].mean()
    unwarped_error = np.abs(frame.astype(float) - moved)[inner].mean()
    assert warped_error < 0.25 * unwarped_error
    other = textured(seed=1)
    assert (
        flow_scores(np.stack([frame, moved]), 8).warp_err
        < 0.5 * flow_scores(np.stack([frame, other]), 8).warp_err
    )


def test_flicker_is_vbench_formula() -> None:
    dark = np.zeros((2, 16, 16, 3), dtype=np.uint8)
    video = dark.copy()
    video[1] = 51  # mean |difference| 51 -> (255 - 51) / 255 = 0.8
    assert flow_scores(video, 8).flicker == pytest.approx(0.8)
    assert flow_scores(dark, 8).flicker == 1.0


def test_dynamic_degree_rule() -> None:
    assert moving_threshold(256, 256, 8) == pytest.approx(6.0)
    assert moving_threshold(64, 96, 8) == pytest.approx(1.5)  # short side 64
    assert moving_threshold(256, 256, 4) == pytest.approx(12.0)  # pairs twice as far apart
    assert moving_threshold(256, 256, 30) == pytest.approx(6.0)  # never below 8 fps's
    assert [pairs_needed(n) for n in (16, 8, 7, 2)] == [4, 2, 2, 0]
    values = np.arange(100, dtype=float)
    assert top_mean(values, 0.05) == pytest.approx(np.mean([95, 96, 97, 98, 99]))


def test_a_moving_video_is_dynamic_and_a_still_one_is_not() -> None:
    frame = textured(64)
    # 64 px at 8 fps: a pair moves above 1.5 px; 8 frames need round(2) moving pairs
    moving = np.stack([shifted(frame, SHIFT_PX * i) for i in range(8)])
    still = np.stack([frame] * 8)
    assert flow_scores(moving, fps=8).dynamic == 1.0
    assert flow_scores(still, fps=8).dynamic == 0.0
    # at 1 fps the threshold is 12 px: a 3-px step per frame is slow
    assert flow_scores(moving, fps=1).dynamic == 0.0


def test_field_scores_give_flow_per_clip_beside_the_true_frames() -> None:
    frame = textured(64)
    truth = [np.stack([shifted(frame, SHIFT_PX * i) for i in range(5)]) for _ in range(3)]
    videos = {
        ("copy_start", "step", "backbone"): np.stack([np.stack([t[0]] * 5) for t in truth]),
        ("perfect", "step", "backbone"): np.stack(truth),
    }
    settings = EvaluateParams(horizon=4)
    scores = field_scores(videos, truth, settings, fps=8.0)
    assert scores.per_set == {}  # FVD is off by default
    assert set(scores.per_clip) == {
        f"{prefix}.{name}"
        for prefix in ("real", "copy_start.step.backbone", "perfect.step.backbone")
        for name in ("flow_mag", "dynamic", "warp_err", "flicker")
    }
    np.testing.assert_allclose(
        scores.per_clip["perfect.step.backbone.flow_mag"], scores.per_clip["real.flow_mag"]
    )
    assert (scores.per_clip["real.flow_mag"] > 2.5).all()
    assert (scores.per_clip["copy_start.step.backbone.flow_mag"] < 0.1).all()
    assert (scores.per_clip["copy_start.step.backbone.dynamic"] == 0).all()
    off = EvaluateParams(horizon=4, flow={"enabled": False})
    assert field_scores(videos, truth, off, fps=8.0).per_clip == {}
