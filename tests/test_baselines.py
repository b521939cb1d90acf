"""Baselines: fitted motion recovered exactly on clips whose motion is known; round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nextframe.config import SplitterParams
from nextframe.model import load_predictors
from nextframe.model.baselines import fit_baselines, fit_mean_motion, load_baselines, save_baselines
from nextframe.model.rotation import cosine, plane, rotate_by
from nextframe.model.splitter import Splitter, SplitterConfig

DIM = 16


def padded(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(c) for c in clips)
    frames = torch.zeros(len(clips), width, DIM)
    for row, clip in enumerate(clips):
        frames[row, : len(clip)] = clip
    return frames, torch.tensor([len(c) for c in clips])


def test_linear_recovers_a_shared_velocity() -> None:
    generator = torch.Generator().manual_seed(0)
    velocity = torch.randn(DIM, generator=generator)
    clips = []
    for n in (3, 6, 9):  # different lengths, padded: padding must not count
        first = torch.randn(DIM, generator=generator)
        rise = torch.arange(n) / (n - 1)
        clips.append(first + rise.unsqueeze(-1) * velocity)
    frames, n_frames = padded(clips)
    motion, _ = fit_mean_motion(frames, n_frames)
    torch.testing.assert_close(motion, velocity, atol=1e-5, rtol=1e-5)
    linear = fit_baselines(frames, n_frames)["linear"]
    start = torch.randn(2, DIM, generator=generator)
    rise = torch.tensor([0.5, -1.0])
    torch.testing.assert_close(
        linear.predict(torch.zeros(2, 3, DIM), start, rise), start + rise.unsqueeze(-1) * velocity
    )


def test_slerp_recovers_angular_speed_and_keeps_the_norm() -> None:
    generator = torch.Generator().manual_seed(1)
    speed = 0.6  # radians per unit rise
    clips = []
    for n in (5, 8):
        first = torch.randn(DIM, generator=generator)
        towards = torch.randn(DIM, generator=generator)
        rise = torch.arange(n) / (n - 1)
        clips.append(rotate_by(first.expand(n, DIM), first, towards, speed * rise))
    frames, n_frames = padded(clips)
    _, angular_speed = fit_mean_motion(frames, n_frames)
    assert angular_speed.item() == pytest.approx(speed, rel=1e-4)
    slerp = fit_baselines(frames, n_frames)["slerp"]
    start = torch.randn(3, DIM, generator=generator)
    rise = torch.tensor([0.0, 0.5, -0.5])
    predicted = slerp.predict(torch.zeros(3, 2, DIM), start, rise)
    torch.testing.assert_close(predicted.norm(dim=-1), start.norm(dim=-1))
    torch.testing.assert_close(predicted[0], start[0])
    angles = plane(start, predicted).angle.squeeze(-1)
    torch.testing.assert_close(angles[1:], torch.tensor([0.3, 0.3]), atol=1e-4, rtol=1e-4)
    # forward moves towards start + motion, backward away from it
    towards = start + slerp.motion
    assert (
        cosine(predicted[1], towards[1])
        > cosine(start[1], towards[1])
        > cosine(predicted[2], towards[2])
    )


def test_copy_start_predicts_the_start() -> None:
    frames, n_frames = padded([torch.randn(4, DIM)])
    copy = fit_baselines(frames, n_frames)["copy_start"]
    start = torch.randn(2, DIM)
    torch.testing.assert_close(copy.predict(torch.zeros(2, 1, DIM), start, torch.ones(2)), start)


def test_fit_refuses_clips_without_motion() -> None:
    frames, n_frames = padded([torch.randn(1, DIM)])
    with pytest.raises(ValueError, match="two frames"):
        fit_mean_motion(frames, n_frames)


def test_save_load_and_load_predictors(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(2)
    frames, n_frames = padded([torch.randn(5, DIM, generator=generator) for _ in range(3)])
    fitted = fit_baselines(frames, n_frames)
    save_baselines(fitted, tmp_path / "baselines")
    assert sorted(p.name for p in (tmp_path / "baselines").iterdir()) == [
        "baselines.json",
        "baselines.safetensors",
    ]
    description = json.loads((tmp_path / "baselines" / "baselines.json").read_text())
    assert description["methods"] == ["copy_start", "linear", "slerp"] and description["dim"] == DIM
    loaded = load_baselines(tmp_path / "baselines")
    start, rise = torch.randn(4, DIM, generator=generator), torch.linspace(-1, 1, 4)
    hidden = torch.zeros(4, 3, DIM)
    for name in ("copy_start", "linear", "slerp"):
        torch.testing.assert_close(
            loaded[name].predict(hidden, start, rise), fitted[name].predict(hidden, start, rise)
        )
    Splitter(SplitterConfig.from_params(SplitterParams(), dim=DIM, text_length=3)).save(
        tmp_path / "splitter"
    )
    predictors = load_predictors(tmp_path, "cpu")
    assert sorted(predictors) == ["copy_start", "linear", "slerp", "splitter"]
    assert predictors["splitter"].predict(hidden, start, rise).shape == (4, DIM)


def test_load_without_files_says_to_train(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train stage"):
        load_baselines(tmp_path)
