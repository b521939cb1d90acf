"""Frame selection: the rules on arrays, on real MP4/GIF files, and the whole stage on disk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from stage_scripts import load_stage
from typer.testing import CliRunner

from nextframe.code_digest import code_digest
from nextframe.config import Params, SelectFramesParams
from nextframe.data.frames import difference_scores, select_top_diff, select_uniform
from nextframe.data.resize import resize_frame
from nextframe.data.video import read_video, write_video
from nextframe.errors import UserError
from nextframe.pipeline import select_frames as extract
from nextframe.store import MANIFEST_SCHEMA, read_frames, write_dataframe

FPS = 8.0
JUMPS = (5, 11, 17)  # the only frames that differ from the frame before them
N_FRAMES = 24


def jumping_square_clip(jumps: tuple[int, ...] = JUMPS, n_frames: int = N_FRAMES) -> np.ndarray:
    """A static gray scene whose red square jumps to a new place at each frame in ``jumps``."""
    frames = np.full((n_frames, 64, 64, 3), 110, np.uint8)  # [N, H, W, 3]
    places = [(4, 4), (36, 36), (4, 36), (36, 4)]
    for index in range(n_frames):
        top, left = places[sum(index >= jump for jump in jumps) % len(places)]
        frames[index, top : top + 24, left : left + 24] = (230, 20, 20)
    return frames


def select_frames(manifest: Path, out: Path, settings: SelectFramesParams, progress: bool):
    return extract.run(manifest, out, Params(select_frames=settings), progress=progress)


def params(**overrides) -> SelectFramesParams:
    base = {"k": 4, "window_s": 4.0, "min_frames": 4, "size": 32, "workers": 2}
    return SelectFramesParams(**{**base, **overrides})


# --- selection rules on arrays ---------------------------------------------------------


def test_difference_scores_equal_an_exact_per_pixel_reference() -> None:
    # exact, not close: the scores decide the frames kept, so they must not depend on how
    # a CPU's float kernels round (python ints here, BT.601 weights in thousandths)
    frames = np.random.default_rng(1).integers(0, 256, (5, 7, 9, 3), dtype=np.uint8)
    weights = (299, 587, 114)
    expected = [0.0]
    for index in range(1, 5):
        total = 0
        for y in range(7):
            for x in range(9):
                now = sum(w * int(v) for w, v in zip(weights, frames[index, y, x], strict=True))
                before = sum(
                    w * int(v) for w, v in zip(weights, frames[index - 1, y, x], strict=True)
                )
                total += abs(now - before)
        expected.append(total / 1000)
    np.testing.assert_array_equal(difference_scores(frames), expected)


def test_top_diff_keeps_frame_zero_and_the_jumps_in_time_order() -> None:
    selection = select_top_diff(jumping_square_clip(), FPS, k=4, window_s=4.0)
    assert selection.frame_indices.tolist() == [0, *JUMPS]
    assert selection.scores[0] == 0.0
    assert (selection.scores[1:] > 0).all()
    assert selection.usable_frames == N_FRAMES


def test_top_diff_ignores_motion_after_the_window_and_breaks_ties_early() -> None:
    # 2 s at 8 fps = frames 0..15: the jump at 17 is outside, so the 4th pick is the
    # earliest zero-score frame, 1
    selection = select_top_diff(jumping_square_clip(), FPS, k=4, window_s=2.0)
    assert selection.frame_indices.tolist() == [0, 1, 5, 11]
    assert selection.usable_frames == 16


def test_uniform_takes_every_step_th_frame_up_to_k() -> None:
    frames = jumping_square_clip()
    assert select_uniform(frames, k=5, step=3).frame_indices.tolist() == [0, 3, 6, 9, 12]
    short = select_uniform(frames[:7], k=5, step=3)
    assert short.frame_indices.tolist() == [0, 3, 6]
    assert short.usable_frames == 3


# --- selection on real files: compression noise must not move the picks ----------------


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_top_diff_on_a_written_clip_selects_the_jump_frames(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"clip{suffix}"
    write_video(path, jumping_square_clip(), FPS)
    video = read_video(path, max_seconds=4.0)
    selection = select_top_diff(video.frames, video.fps, k=4, window_s=4.0)
    assert selection.frame_indices.tolist() == [0, *JUMPS]


# --- resizing ---------------------------------------------------------------------------


def test_letterbox_keeps_the_whole_frame_and_pads_with_the_colour() -> None:
    frame = np.full((32, 64, 3), (200, 10, 10), np.uint8)  # wide: pad above and below
    image = np.asarray(resize_frame(frame, 16, "letterbox", (1, 2, 3)))
    assert image.shape == (16, 16, 3)
    assert (image[:4] == (1, 2, 3)).all() and (image[12:] == (1, 2, 3)).all()
    assert np.abs(image[5:11].astype(int) - (200, 10, 10)).max() <= 1


def test_center_crop_fills_the_square_with_the_middle() -> None:
    frame = np.zeros((32, 96, 3), np.uint8)  # thirds: red | green | blue
    frame[:, :32] = (255, 0, 0)
    frame[:, 32:64] = (0, 255, 0)
    frame[:, 64:] = (0, 0, 255)
    image = np.asarray(resize_frame(frame, 16, "center_crop"))
    assert image.shape == (16, 16, 3)
    assert np.abs(image[:, 2:14].astype(int) - (0, 255, 0)).max() <= 2


def test_a_frame_already_at_size_passes_through_unchanged() -> None:
    frame = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    for mode in ("letterbox", "center_crop"):
        np.testing.assert_array_equal(np.asarray(resize_frame(frame, 16, mode)), frame)


# --- the stage on disk ------------------------------------------------------------------


def write_manifest(root: Path, rows: list[dict]) -> Path:
    table = pd.DataFrame(
        [
            {
                "source": "test",
                "caption": "a red square jumps",
                "label": "",
                "split": "train",
                "url": "",
                "status": "ok",
                **row,
            }
            for row in rows
        ]
    )[MANIFEST_SCHEMA.names]
    path = root / "raw" / "manifest.parquet"
    write_dataframe(table, MANIFEST_SCHEMA, path)
    return path


@pytest.fixture
def raw_clips(tmp_path: Path) -> Path:
    """Two good clips and one of each kind of bad input; paths relative to the manifest."""
    raw = tmp_path / "raw"
    raw.mkdir()
    write_video(raw / "good_mp4.mp4", jumping_square_clip(), FPS)
    write_video(raw / "good_gif.gif", jumping_square_clip(), FPS)
    write_video(raw / "short.gif", jumping_square_clip(n_frames=3), FPS)
    (raw / "corrupt.mp4").write_bytes(os.urandom(3000))
    Image.new("RGB", (20, 20), (9, 9, 9)).save(raw / "still.gif", format="PNG")
    return write_manifest(
        tmp_path,
        [
            {"clip_id": "good_mp4", "path": "good_mp4.mp4"},
            {"clip_id": "good_gif", "path": "good_gif.gif"},
            {"clip_id": "short", "path": "short.gif"},
            {"clip_id": "corrupt", "path": "corrupt.mp4"},
            {"clip_id": "still", "path": "still.gif"},
            {"clip_id": "gone", "path": "gone.mp4"},
            {"clip_id": "failed", "path": "failed.gif", "status": "failed:http_404"},
            {"clip_id": "..", "path": "good_gif.gif"},
        ],
    )


def test_stage_writes_good_clips_and_counts_every_skip(raw_clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    summary = select_frames(raw_clips, out, params(), progress=False)
    assert summary.clips_in == 7 and summary.manifest_not_ok == 1
    assert summary.clips_kept == 2 and summary.frames_total == 8 == summary.frames_written
    assert dict(summary.skipped) == {
        "too_few_frames": 2,  # the 3-frame GIF and the still PNG named .gif
        "undecodable": 1,
        "missing": 1,
        "unsafe_clip_id": 1,
    }
    metrics = summary.metrics()
    assert metrics["skipped.missing"] == 1 and metrics["clips_per_s"] > 0

    table = read_frames(out / "frames.parquet")
    expected = pd.DataFrame(
        {
            "clip_id": ["good_gif"] * 4 + ["good_mp4"] * 4,
            "k": [0, 1, 2, 3] * 2,
            "frame_index": [0, *JUMPS] * 2,
            "path": [f"{clip}/{k}.png" for clip in ("good_gif", "good_mp4") for k in range(4)],
        }
    )
    pd.testing.assert_frame_equal(
        table[["clip_id", "k", "frame_index", "path"]], expected, check_dtype=False
    )
    mp4_rows = table[table.clip_id == "good_mp4"]
    np.testing.assert_allclose(mp4_rows.t_seconds, np.array([0, *JUMPS]) / FPS)
    assert set(os.listdir(out)) == {"frames.parquet", "good_gif", "good_mp4"}

    # the PNG is the source frame, letterboxed (already square: only resized to 32 px)
    source = read_video(raw_clips.parent / "good_gif.gif").frames[JUMPS[1]]
    png = np.asarray(Image.open(out / table.path[2]))
    np.testing.assert_array_equal(png, np.asarray(resize_frame(source, 32, "letterbox")))


def all_files(root: Path) -> dict[Path, bytes]:
    return {path.relative_to(root): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def test_output_bytes_do_not_depend_on_workers_or_run(raw_clips: Path, tmp_path: Path) -> None:
    # identical bytes (PNGs, selection.json, frames.parquet) keep DVC hashes stable
    select_frames(raw_clips, tmp_path / "one", params(workers=1), progress=False)
    select_frames(raw_clips, tmp_path / "two", params(workers=2), progress=False)
    one, two = (all_files(tmp_path / name) for name in ("one", "two"))
    assert len(one) == 2 * (4 + 1) + 1 and one == two


def test_a_source_with_new_content_is_redone(raw_clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    select_frames(raw_clips, out, params(), progress=False)
    write_video(raw_clips.parent / "good_gif.gif", jumping_square_clip(jumps=(3, 9, 20)), FPS)
    summary = select_frames(raw_clips, out, params(), progress=False)
    assert summary.clips_resumed == 1
    table = read_frames(out / "frames.parquet")
    assert table[table.clip_id == "good_gif"].frame_index.tolist() == [0, 3, 9, 20]


def test_a_rerun_after_a_code_change_redoes_every_clip(
    raw_clips: Path, tmp_path: Path, monkeypatch
) -> None:
    # DVC reruns the stage when a source file it tracks changes; resuming the old code's
    # frames would hand back the very results the change was made to replace
    out = tmp_path / "frames"
    first = select_frames(raw_clips, out, params(), progress=False)
    assert first.clips_kept == 2
    monkeypatch.setattr(extract, "FRAMES_CODE", "another version")
    summary = select_frames(raw_clips, out, params(), progress=False)
    assert summary.clips_resumed == 0 and summary.clips_kept == 2
    summary = select_frames(raw_clips, out, params(), progress=False)
    assert summary.clips_resumed == 2  # and the new code's output resumes as usual


def test_code_digest_follows_the_source_bytes(tmp_path: Path, monkeypatch) -> None:
    module = tmp_path / "rules.py"
    module.write_text("LIMIT = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import rules

    before = code_digest(rules)
    assert code_digest(rules) == before  # the bytes, not paths or times
    module.write_text("LIMIT = 2\n")
    assert code_digest(rules) != before


def test_rerun_resumes_without_decoding_or_rewriting(
    raw_clips: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "frames"
    select_frames(raw_clips, out, params(), progress=False)
    first_table = read_frames(out / "frames.parquet")
    mtimes = {png: png.stat().st_mtime_ns for png in out.rglob("*.png")}

    decoded: list[Path] = []
    real_read = extract.read_video

    def counting_read(path, *args, **kwargs):
        decoded.append(Path(path))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(extract, "read_video", counting_read)
    summary = select_frames(raw_clips, out, params(), progress=False)
    assert summary.clips_resumed == 2 and summary.frames_written == 0
    assert {path.name for path in decoded} == {"short.gif", "corrupt.mp4", "still.gif"}
    assert {png: png.stat().st_mtime_ns for png in out.rglob("*.png")} == mtimes
    pd.testing.assert_frame_equal(read_frames(out / "frames.parquet"), first_table)

    # a deleted PNG makes its clip incomplete: only that clip is redone
    (out / "good_mp4" / "2.png").unlink()
    summary = select_frames(raw_clips, out, params(), progress=False)
    assert summary.clips_resumed == 1 and summary.frames_written == 4


def test_changed_params_redo_clips_and_drop_stale_outputs(raw_clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    select_frames(raw_clips, out, params(k=6), progress=False)
    assert (out / "good_gif" / "5.png").exists()
    summary = select_frames(raw_clips, out, params(k=3, min_frames=2), progress=False)
    assert summary.clips_resumed == 0
    assert sorted(p.name for p in (out / "good_gif").glob("*.png")) == ["0.png", "1.png", "2.png"]
    # min_frames=2 now admits the 3-frame clip; the 1-frame still stays out
    assert summary.skipped["too_few_frames"] == 1 and (out / "short").is_dir()
    (raw_clips.parent / "short.gif").write_bytes(b"broken now")
    select_frames(raw_clips, out, params(k=3, min_frames=2), progress=False)
    assert not (out / "short").exists()


def test_a_rerun_prunes_partial_and_temporary_leftovers_but_not_foreign_files(
    raw_clips: Path, tmp_path: Path
) -> None:
    """The folder is a DVC persist output: what an interrupted run left must not stay in it."""
    out = tmp_path / "frames"
    select_frames(raw_clips, out, params(), progress=False)
    (out / "vanished").mkdir()  # a clip interrupted before its marker, gone from the manifest
    (out / "vanished" / "0.png").write_bytes(b"partial")
    (out / ".frames.parquet.123.tmp").write_bytes(b"partial")
    (out / "notes").mkdir()  # not something the stage writes: left alone
    (out / "notes" / "mine.txt").write_text("keep")
    select_frames(raw_clips, out, params(), progress=False)
    assert not (out / "vanished").exists() and not (out / ".frames.parquet.123.tmp").exists()
    assert (out / "notes" / "mine.txt").read_text() == "keep"


def test_uniform_method_through_the_stage(raw_clips: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames"
    summary = select_frames(raw_clips, out, params(method="uniform", step=5, k=4), progress=False)
    table = read_frames(out / "frames.parquet")
    assert summary.clips_kept == 2
    assert table[table.clip_id == "good_mp4"].frame_index.tolist() == [0, 5, 10, 15]


def test_stage_script_runs_and_logs(raw_clips: Path, tmp_path: Path) -> None:
    module = load_stage("select_frames")
    params_file = tmp_path / "params.yaml"
    params_file.write_text("select_frames:\n  k: 4\n  size: 32\n  resize: center_crop\n")
    out = tmp_path / "frames"
    result = CliRunner().invoke(
        module.app, [str(raw_clips), str(out), "--params", str(params_file)]
    )
    assert result.exit_code == 0, result.output
    assert "kept 2/7 clips" in result.output
    assert Image.open(out / "good_mp4" / "0.png").size == (32, 32)

    params_file.write_text("select_frames:\n  resize: stretch\n")
    result = CliRunner().invoke(
        module.app, [str(raw_clips), str(out), "--params", str(params_file)]
    )
    assert result.exit_code == 2
    assert "select_frames.resize" in result.output


def test_a_manifest_without_any_usable_clip_is_a_clear_error(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, [{"clip_id": "gone", "path": "data/raw/gone.mp4"}])
    with pytest.raises(UserError, match=r"no clip gave frames.*missing: 1"):
        select_frames(manifest, tmp_path / "frames", params(), progress=False)
    assert not (tmp_path / "frames" / "frames.parquet").exists()


def test_a_write_failure_stops_the_stage_without_a_table(
    raw_clips: Path, tmp_path: Path, monkeypatch
) -> None:
    # only unreadable inputs are skipped; our own failures (disk full, bugs) must surface
    def disk_full(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(extract, "resize_frame", disk_full)
    with pytest.raises(OSError, match="No space left"):
        select_frames(raw_clips, tmp_path / "frames", params(), progress=False)
    assert not (tmp_path / "frames" / "frames.parquet").exists()
