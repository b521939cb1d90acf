"""FVD: the Frechet distance against hand computations and closed forms, the refusal on
singular covariances, and the I3D path through a random-weight TorchScript stand-in."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
import yaml
from fixtures.i3d import save_tiny_i3d

from nextframe.config import FvdParams, ParamsError, parse_params
from nextframe.errors import UserError
from nextframe.field_metrics import fvd_keys
from nextframe.fvd import (
    Gaussian,
    fit_gaussian,
    frechet_distance,
    gaussian_distance,
    i3d_features,
    load_i3d,
    sample_frames,
)

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


def scipy_fvd(real: np.ndarray, generated: np.ndarray) -> float:
    """The textbook computation (as in common FVD/FID code) with scipy.linalg.sqrtm."""
    mu1, mu2 = real.mean(0), generated.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(generated, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def test_matches_the_scipy_hand_computation_on_full_rank_sets() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    generated = rng.normal(loc=0.7, size=(300, 5)) @ rng.normal(size=(5, 5))
    expected = scipy_fvd(real, generated)
    assert expected > 1
    assert frechet_distance(real, generated) == pytest.approx(expected, rel=1e-6)


def test_identical_sets_are_at_distance_zero() -> None:
    features = np.random.default_rng(1).normal(size=(50, 8))
    assert abs(frechet_distance(features, features.copy())) < 1e-9 * np.trace(np.cov(features.T))


def test_diagonal_gaussians_match_the_closed_form() -> None:
    first = Gaussian(np.array([1.0, -2.0, 0.5]), np.diag([4.0, 1.0, 0.25]))
    second = Gaussian(np.array([0.0, 1.0, 0.5]), np.diag([1.0, 9.0, 0.25]))
    # |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2 = (1 + 9) + (1 + 4 + 0)
    assert gaussian_distance(first, second) == pytest.approx(15.0, rel=1e-6)


def test_non_commuting_gaussians_match_the_two_dimensional_closed_form() -> None:
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 3.0]])
    mu1, mu2 = np.array([0.5, 0.0]), np.array([-1.0, 2.0])
    # for 2 x 2 PSD M: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), M = S1^1/2 S2 S1^1/2
    trace_sqrt = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt
    found = gaussian_distance(Gaussian(mu1, s1), Gaussian(mu2, s2))
    assert found == pytest.approx(expected, rel=1e-6)


def test_fewer_clips_than_features_is_refused_with_the_minimum() -> None:
    rng = np.random.default_rng(2)
    real, generated = rng.normal(size=(31, 40)), rng.normal(size=(31, 40))
    with pytest.raises(UserError, match=r"at least 41 clips.*evaluate\.fvd\.shrinkage"):
        frechet_distance(real, generated)


def test_shrinkage_regularises_singular_sets_to_a_meaningful_distance() -> None:
    rng = np.random.default_rng(3)
    real = rng.normal(size=(31, 400))
    same = rng.normal(size=(31, 400))
    shifted = rng.normal(loc=1.0, size=(31, 400))
    near, far = (frechet_distance(real, other, shrinkage=0.1) for other in (same, shifted))
    assert 0 <= near < far
    # the shift adds about |mu1 - mu2|^2 = 400 on top of what the same distribution gives
    assert far - near == pytest.approx(400, rel=0.2)
    shrunk = fit_gaussian(real, 0.1).covariance
    plain = np.cov(real, rowvar=False)
    expected = 0.9 * plain + 0.1 * np.trace(plain) / 400 * np.eye(400)
    np.testing.assert_allclose(shrunk, expected, rtol=1e-12)
    assert np.linalg.eigvalsh(shrunk).min() > 0


def test_real_and_generated_sets_must_match() -> None:
    features = np.zeros((10, 3))
    with pytest.raises(UserError, match=r"same shape.*\(10, 3\).*\(9, 3\)"):
        frechet_distance(features, features[:9])


def test_frame_sampling() -> None:
    assert sample_frames(10, 4, "first").tolist() == [0, 1, 2, 3]
    assert sample_frames(10, 4, "uniform").tolist() == [0, 3, 6, 9]
    with pytest.raises(UserError, match=r"evaluate\.fvd\.clip_length"):
        sample_frames(8, 16, "first")


def test_i3d_file_loads_and_gives_the_features_of_the_documented_call(tmp_path: Path) -> None:
    path = save_tiny_i3d(tmp_path / "i3d_torchscript.pt", features=6)
    detector = load_i3d(path, CPU)
    videos = np.random.default_rng(4).integers(0, 256, size=(5, 4, 32, 32, 3), dtype=np.uint8)
    features = i3d_features(detector, videos, size=32, batch_size=2, device=CPU)
    assert features.shape == (5, 6)
    by_hand = torch.from_numpy(videos).float().permute(0, 4, 1, 2, 3)  # [B, 3, T, H, W]
    expected = detector(by_hand, rescale=True, resize=True, return_features=True)
    np.testing.assert_allclose(features, expected.detach().double().numpy(), rtol=1e-5, atol=1e-6)


def test_a_missing_or_foreign_weights_file_names_the_param(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"evaluate\.fvd\.weights.*not found"):
        load_i3d(tmp_path / "absent.pt", CPU)
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"not a torchscript archive")
    with pytest.raises(UserError, match=r"evaluate\.fvd\.weights.*not a TorchScript"):
        load_i3d(foreign, CPU)


def test_fvd_keys_per_method_with_lengths_mean_and_spread(tmp_path: Path) -> None:
    weights = save_tiny_i3d(tmp_path / "i3d.pt", features=3)
    rng = np.random.default_rng(5)
    truth = [rng.integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8) for _ in range(12)]
    noisy = np.stack([np.clip(t + rng.normal(0, 60, t.shape), 0, 255) for t in truth])
    videos = {("copy", "step", "backbone"): np.stack(truth), ("noisy", "step", "backbone"): noisy}
    settings = FvdParams(enabled=True, weights=str(weights), clip_length=5, lengths=[4, 5], size=16)
    scores = fvd_keys(videos, truth, settings)
    assert scores["copy.step.backbone.fvd"] == pytest.approx(0, abs=1e-9)
    noisy_values = [scores[f"noisy.step.backbone.fvd@{n}"] for n in (4, 5)]
    assert min(noisy_values) > 0
    assert scores["noisy.step.backbone.fvd"] == pytest.approx(np.mean(noisy_values))
    assert scores["noisy.step.backbone.fvd.spread"] == pytest.approx(np.std(noisy_values))
    assert scores["noisy.step.backbone.fvd.n"] == 12
    with pytest.raises(UserError, match=r"evaluate\.fvd\.n_samples is 13"):
        fvd_keys(videos, truth, settings.model_copy(update={"n_samples": 13}))


def test_seed_msrvtt_preset_fixes_the_protocol() -> None:
    fvd = parse_params({"evaluate": {"fvd": {"protocol": "seed_msrvtt"}}}).evaluate.fvd
    resolved = {key: fvd.resolved(key) for key in ("n_samples", "clip_length", "size", "lengths")}
    assert resolved == {
        "n_samples": 31,
        "clip_length": 16,
        "size": 256,
        "lengths": [10, 11, 12, 13, 14, 15, 16],
    }
    # params.yaml lists every key at its default: the preset still applies
    listed = yaml.safe_load((REPO / "params.yaml").read_text())
    listed["evaluate"]["fvd"]["protocol"] = "seed_msrvtt"
    assert parse_params(listed).evaluate.fvd.resolved("size") == 256
    with pytest.raises(ParamsError, match=r"evaluate\.fvd.*fixes size"):
        parse_params({"evaluate": {"fvd": {"protocol": "seed_msrvtt", "size": 128}}})
    with pytest.raises(ParamsError, match=r"lengths \[20\] exceed clip_length 16"):
        parse_params({"evaluate": {"fvd": {"lengths": [20]}}})
