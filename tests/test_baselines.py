"""Baselines: fitted motion recovered exactly on clips whose motion is known; round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fixtures.methods import clip_set
from fixtures.methods import fit as fit_method

from nextframe.config import SplitterParams
from nextframe.errors import UserError
from nextframe.methods.baselines import fit_mean_motion
from nextframe.methods.loading import load_methods, method_dir
from nextframe.methods.registry import load_class
from nextframe.model.clips import rises_from_times
from nextframe.model.rotation import cosine, plane, rotate_by
from nextframe.model.splitter import Splitter, SplitterConfig

NAMES = ("copy_start", "mean_frame", "nearest_clip", "linear", "slerp")

DIM = 16


def padded(
    clips: list[torch.Tensor], times: list[torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded frames [C, F, D], n_frames [C] and rises [C, F] (evenly timed by default)."""
    width = max(len(c) for c in clips)
    frames = torch.zeros(len(clips), width, DIM)
    seconds = torch.zeros(len(clips), width, dtype=torch.float64)
    for row, clip in enumerate(clips):
        frames[row, : len(clip)] = clip
        clip_times = torch.arange(len(clip)) / 8.0 if times is None else times[row]
        seconds[row, : len(clip)] = clip_times
    n_frames = torch.tensor([len(c) for c in clips])
    return frames, n_frames, rises_from_times(seconds, n_frames).float()


def fit(frames, n_frames, rises, text=None):
    """Every caption-blind baseline fitted on the padded clips."""
    text = torch.randn(len(frames), DIM) if text is None else text
    train = clip_set(frames, n_frames, rises, text)
    return {name: fit_method(name, train) for name in NAMES}


def predict(model, start, rise, text=None):
    text = torch.randn(len(start), DIM) if text is None else text
    return model.predict(torch.zeros(len(start), 3, DIM), start, rise, text)


def test_linear_recovers_a_shared_velocity_in_time_not_frame_positions() -> None:
    generator = torch.Generator().manual_seed(0)
    velocity = torch.randn(DIM, generator=generator)
    clips, times = [], []
    for n in (3, 6, 9):  # different lengths, padded: padding must not count
        first = torch.randn(DIM, generator=generator)
        seconds = torch.sort(torch.rand(n, generator=generator, dtype=torch.float64)).values
        rise = (seconds - seconds[0]) / (seconds[-1] - seconds[0])  # uneven in time
        clips.append(first + rise.float().unsqueeze(-1) * velocity)
        times.append(seconds)
    frames, n_frames, rises = padded(clips, times)
    motion, _ = fit_mean_motion(frames, n_frames, rises)
    torch.testing.assert_close(motion, velocity, atol=1e-5, rtol=1e-5)
    # frame positions as rises (what the seed did) do not recover it
    positional = padded(clips)[2]
    assert (fit_mean_motion(frames, n_frames, positional)[0] - velocity).norm() > 0.05
    linear = fit(frames, n_frames, rises)["linear"]
    start = torch.randn(2, DIM, generator=generator)
    rise = torch.tensor([0.5, -1.0])
    torch.testing.assert_close(predict(linear, start, rise), start + rise.unsqueeze(-1) * velocity)


def test_slerp_recovers_angular_speed_and_keeps_the_norm() -> None:
    generator = torch.Generator().manual_seed(1)
    speed = 0.6  # radians per unit rise
    clips = []
    for n in (5, 8):
        first = torch.randn(DIM, generator=generator)
        towards = torch.randn(DIM, generator=generator)
        rise = torch.arange(n) / (n - 1)
        clips.append(rotate_by(first.expand(n, DIM), first, towards, speed * rise))
    frames, n_frames, rises = padded(clips)
    _, angular_speed = fit_mean_motion(frames, n_frames, rises)
    assert angular_speed.item() == pytest.approx(speed, rel=1e-4)
    slerp = fit(frames, n_frames, rises)["slerp"]
    start = torch.randn(3, DIM, generator=generator)
    rise = torch.tensor([0.0, 0.5, -0.5])
    predicted = predict(slerp, start, rise)
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


def test_copy_start_and_mean_frame_ignore_text_and_time() -> None:
    frames, n_frames, rises = padded([torch.randn(4, DIM), torch.randn(2, DIM)])
    fitted = fit(frames, n_frames, rises)
    start = torch.randn(2, DIM)
    torch.testing.assert_close(predict(fitted["copy_start"], start, torch.ones(2)), start)
    mean = torch.cat([frames[0, :4], frames[1, :2]]).mean(0)  # padding does not count
    for rise in (torch.zeros(2), torch.tensor([0.3, -1.0])):
        torch.testing.assert_close(predict(fitted["mean_frame"], start, rise), mean.expand(2, DIM))


def test_nearest_clip_replays_the_clip_with_the_nearest_caption_in_time() -> None:
    generator = torch.Generator().manual_seed(4)
    clips = [torch.randn(5, DIM, generator=generator) for _ in range(3)]
    times = [torch.tensor([0.0, 0.1, 0.2, 0.3, 1.0], dtype=torch.float64)] * 3  # uneven
    frames, n_frames, rises = padded(clips, times)
    captions = torch.randn(3, DIM, generator=generator)
    nearest = fit(frames, n_frames, rises, captions)["nearest_clip"]
    text = captions[[2, 0]] + 0.01 * torch.randn(2, DIM, generator=generator)  # near clips 2, 0
    # from the first frame of the caption's clip, replay it at the true moments
    start = torch.stack([clips[2][0], clips[0][0]])
    torch.testing.assert_close(
        predict(nearest, start, torch.tensor([0.3, 0.2]), text),
        torch.stack([clips[2][3], clips[0][2]]),
    )
    # between two frames: linear in time (rise 0.65 lies halfway between 0.3 and 1.0)
    halfway = predict(nearest, start, torch.tensor([0.65, 0.65]), text)
    torch.testing.assert_close(halfway[0], (clips[2][3] + clips[2][4]) / 2)
    # a chain step continues from where the start sits in the clip; past the end it stays
    torch.testing.assert_close(
        predict(nearest, clips[2][1:2], torch.tensor([0.1]), text[:1]), clips[2][2:3]
    )
    torch.testing.assert_close(
        predict(nearest, clips[2][3:4], torch.tensor([5.0]), text[:1]), clips[2][4:5]
    )
    # back in time (rises of the back mode are negative): from frame 3 (0.3) by -0.2 to frame 1
    torch.testing.assert_close(
        predict(nearest, clips[2][3:4], torch.tensor([-0.2]), text[:1]), clips[2][1:2]
    )


def test_fit_refuses_clips_without_motion() -> None:
    frames = torch.randn(1, 1, DIM)
    with pytest.raises(ValueError, match="two frames"):
        fit_mean_motion(frames, torch.tensor([1]), torch.zeros(1, 1))


def test_save_load_and_load_methods(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(2)
    frames, n_frames, rises = padded([torch.randn(5, DIM, generator=generator) for _ in range(3)])
    fitted = fit(frames, n_frames, rises)
    for name, method in fitted.items():
        method.save(method_dir(tmp_path, name))
        files = sorted(p.name for p in method_dir(tmp_path, name).iterdir())
        assert files == ["method.json", "weights.safetensors"]
        assert (
            json.loads((method_dir(tmp_path, name) / "method.json").read_text())["method"] == name
        )
    Splitter(SplitterConfig.from_params(SplitterParams(), dim=DIM, text_length=3)).save(
        tmp_path / "splitter"
    )
    loaded = load_methods(tmp_path, ["splitter", *NAMES], "cpu")
    start, rise = torch.randn(4, DIM, generator=generator), torch.linspace(-1, 1, 4)
    text = torch.randn(4, DIM, generator=generator)
    for name in NAMES:
        torch.testing.assert_close(
            predict(loaded[name], start, rise, text), predict(fitted[name], start, rise, text)
        )
    assert predict(loaded["splitter"], start, rise, text).shape == (4, DIM)


def test_load_without_files_says_to_train(tmp_path: Path) -> None:
    (tmp_path / "linear").mkdir()
    with pytest.raises(FileNotFoundError, match="train stage"):
        load_class("linear").load(tmp_path / "linear")
    with pytest.raises(UserError, match=r"generate.methods: \['slerp'\] not fitted"):
        load_methods(tmp_path, ["slerp"])
    with pytest.raises(UserError, match="unknown method"):
        load_methods(tmp_path, ["telepathy"])
