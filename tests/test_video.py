"""The one video reader/writer: round trips, which decoder reads what, and clean failures."""

from __future__ import annotations

import os
from pathlib import Path

import decord
import numpy as np
import pytest

from nextframe.data.video import VideoReadError, read_video, write_video

FPS = 8.0
PALETTE = np.array(
    [[128, 128, 128], [220, 30, 30], [20, 200, 40], [30, 40, 210], [250, 250, 250]], np.uint8
)


def moving_clip(n_frames: int = 24, height: int = 48, width: int = 64) -> np.ndarray:
    """A few flat colours only (so a GIF palette holds them exactly), with a moving square."""
    rng = np.random.default_rng(0)
    labels = np.zeros((n_frames, height, width), np.int64)  # [N, H, W] palette indices
    for index in range(n_frames):
        top, left = 4 + index % 20, 2 + 2 * index
        labels[index, top : top + 14, left : left + 14] = 1 + index % 3
        labels[index, :4, :] = 4
    labels[:, -6:, -6:] = rng.integers(0, 5)
    return PALETTE[labels]  # [N, H, W, 3]


def test_gif_round_trip_is_exact(tmp_path: Path) -> None:
    frames = moving_clip()
    write_video(tmp_path / "clip.gif", frames, FPS)
    video = read_video(tmp_path / "clip.gif")
    np.testing.assert_array_equal(video.frames, frames)
    assert abs(video.fps - FPS) < 0.5  # GIF delays are whole centiseconds (12 cs -> 8.33 fps)


def test_mp4_round_trip_is_close_and_keeps_fps(tmp_path: Path) -> None:
    frames = moving_clip()
    write_video(tmp_path / "clip.mp4", frames, FPS)
    video = read_video(tmp_path / "clip.mp4")
    assert video.frames.shape == frames.shape
    assert video.fps == pytest.approx(FPS)
    error = np.abs(video.frames.astype(np.int16) - frames.astype(np.int16))
    assert error.mean() < 3.0


def test_mp4_with_odd_sides_is_padded_to_even(tmp_path: Path) -> None:
    frames = moving_clip(n_frames=4, height=31, width=45)
    write_video(tmp_path / "odd.mp4", frames, FPS)
    video = read_video(tmp_path / "odd.mp4")
    assert video.frames.shape == (4, 32, 46, 3)
    original = video.frames[:, :31, :45].astype(np.int16)
    assert np.abs(original - frames).mean() < 3.0


def test_gifs_never_reach_decord_and_mp4s_do(monkeypatch, tmp_path: Path) -> None:
    frames = moving_clip(n_frames=6)
    write_video(tmp_path / "clip.gif", frames, FPS)
    write_video(tmp_path / "clip.mp4", frames, FPS)

    def refuse(*args, **kwargs):
        raise RuntimeError("decord was called")

    monkeypatch.setattr(decord, "VideoReader", refuse)
    assert read_video(tmp_path / "clip.gif").n_frames == 6
    with pytest.raises(VideoReadError, match="decord was called"):
        read_video(tmp_path / "clip.mp4")


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_decoding_stops_at_max_frames_and_max_seconds(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    write_video(path, moving_clip(), FPS)
    assert read_video(path, max_frames=5).n_frames == 5
    # frames shown before 1 s: 8 at 8 fps (a GIF's 8.33 fps shows 9: 0 .. 8 * 0.12 s)
    expected = 9 if suffix == ".gif" else 8
    assert read_video(path, max_seconds=1.0).n_frames == expected
    assert read_video(path, max_frames=3, max_seconds=1.0).n_frames == 3
    assert read_video(path, max_seconds=100.0).n_frames == 24


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("random.mp4", os.urandom(4000), "undecodable"),
        ("empty.mp4", b"", "undecodable"),
        ("random.gif", os.urandom(4000), "undecodable"),
        ("text.avi", b"not a video at all\n" * 50, "undecodable"),
    ],
)
def test_undecodable_files_raise_video_read_error(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(VideoReadError) as caught:
        read_video(path)
    assert caught.value.reason == reason
    assert str(path) in str(caught.value)


def test_missing_file_has_reason_missing(tmp_path: Path) -> None:
    with pytest.raises(VideoReadError) as caught:
        read_video(tmp_path / "nowhere.mp4")
    assert caught.value.reason == "missing"


def test_write_video_rejects_bad_input_and_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"mp4 or \.gif"):
        write_video(tmp_path / "clip.avi", moving_clip(n_frames=2), FPS)
    with pytest.raises(ValueError, match="shape"):
        write_video(tmp_path / "clip.mp4", np.zeros((0, 8, 8, 3), np.uint8), FPS)
    with pytest.raises(ValueError, match="shape"):
        write_video(tmp_path / "clip.gif", np.zeros((2, 8, 8), np.uint8), FPS)
    assert list(tmp_path.iterdir()) == []
