"""``stages/download.py``: the Typer stage end to end on the synthetic source."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from stage_scripts import load_stage
from typer.testing import CliRunner

from nextframe.config import DownloadParams, Params
from nextframe.data.manifest import ManifestRow, SourceResult, failed
from nextframe.pipeline import download as sources
from nextframe.store import MANIFEST_SCHEMA, read_manifest, read_truth

SMALL = {"download": {"synthetic": {"n_clips": 6, "n_frames": 8, "size": 32}}}


@pytest.fixture(scope="module")
def stage():
    return load_stage("download")


def invoke(stage, out: Path, params: dict, tmp_path: Path):
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    return CliRunner().invoke(stage.app, [str(out), "--params", str(params_file)])


def test_stage_writes_the_manifest_and_a_rerun_keeps_the_videos(stage, tmp_path: Path) -> None:
    out = tmp_path / "raw"
    result = invoke(stage, out, SMALL, tmp_path)
    assert result.exit_code == 0, result.output
    assert "download (synthetic): 6/6 clips ok" in result.output
    manifest = read_manifest(out / "manifest.parquet")
    assert list(manifest.columns) == MANIFEST_SCHEMA.names
    assert set(manifest.status) == {"ok"} and set(manifest.split) == {"train", "val", "test"}
    videos = sorted((out / "videos").iterdir())
    assert len(videos) == 6 and {v.suffix for v in videos} == {".mp4", ".gif"}
    mtimes = {video: video.stat().st_mtime_ns for video in videos}

    again = invoke(stage, out, SMALL, tmp_path)
    assert again.exit_code == 0, again.output
    assert {video: video.stat().st_mtime_ns for video in videos} == mtimes
    assert read_manifest(out / "manifest.parquet").equals(manifest)


def test_a_bad_param_exits_2_with_its_dotted_key(stage, tmp_path: Path) -> None:
    params = {"download": {"synthetic": {"n_clips": -1}}}
    result = invoke(stage, tmp_path / "raw", params, tmp_path)
    assert result.exit_code == 2
    assert "download.synthetic.n_clips" in result.output
    assert not (tmp_path / "raw").exists()


def test_help_documents_every_source(stage) -> None:
    result = CliRunner().invoke(stage.app, ["--help"])
    assert result.exit_code == 0
    for key in ("synthetic", "tgif", "ucf50", "folder", "download.split.val", "--params"):
        assert key in result.output


def test_summary_counts_failures_per_reason_and_split(monkeypatch, tmp_path: Path) -> None:
    def row(clip_id: str, split: str, status: str = "ok") -> ManifestRow:
        return ManifestRow(clip_id, "tgif", "a cat", "", split, f"{clip_id}.gif", "u", status)

    rows = [row("a", "train"), row("b", "val"), row("c", "train", failed("http_404"))]
    rows.append(row("d", "test", failed("http_404")))
    fake = SourceResult(rows, metrics={"bytes": 10.0}, notes=["sample exhausted"])
    monkeypatch.setattr(sources, "collect", lambda params, out_dir: fake)
    summary = sources.run(tmp_path, Params(download=DownloadParams(source="tgif")))
    metrics = summary.metrics()
    assert metrics["clips_total"] == 4 and metrics["clips_ok"] == 2
    assert metrics["failed.http_404"] == 2 and metrics["bytes"] == 10.0
    assert metrics["split.train"] == 1 and metrics["split.val"] == 1
    assert "2/4 clips ok" in summary.describe() and "http_404: 2" in summary.describe()
    assert summary.describe().endswith("; sample exhausted")
    assert len(read_manifest(tmp_path / "manifest.parquet")) == 4


def test_a_new_sample_prunes_the_clips_no_manifest_row_names(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    first = DownloadParams.model_validate({**SMALL["download"], "seed": 0})
    sources.run(out, Params(download=first))
    old_videos = set((out / "videos").iterdir())
    (out / "videos" / "stray.txt").write_text("left by hand")
    (out / "notes.txt").write_text("the user's, outside videos/")

    second = DownloadParams.model_validate({**SMALL["download"], "seed": 1})
    summary = sources.run(out, Params(download=second))
    kept = set((out / "videos").iterdir())
    listed = {out / path for path in read_manifest(out / "manifest.parquet").path}
    assert kept == listed
    assert not kept & old_videos
    assert summary.metrics()["files_pruned"] == len(old_videos) + 1
    assert (out / "notes.txt").read_text() == "the user's, outside videos/"


def test_pruning_removes_links_and_special_files_but_never_follows_a_link(tmp_path: Path) -> None:
    import os

    out = tmp_path / "raw"
    videos = out / "videos"
    (videos / "sub").mkdir(parents=True)
    (videos / "kept.mp4").write_bytes(b"listed")
    os.mkfifo(videos / "listed_fifo.mp4")  # named by a row, but not a regular file
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "yours.txt").write_text("not ours")
    (videos / "link").symlink_to(outside)
    (videos / "sub" / "stale.gif").write_bytes(b"old")
    pruned = sources.prune_unlisted(out, {"videos/kept.mp4", "videos/listed_fifo.mp4"})
    assert pruned == 3
    assert sorted(path.name for path in videos.rglob("*")) == ["kept.mp4"]
    assert (outside / "yours.txt").read_text() == "not ours"


def test_synthetic_download_writes_the_true_pose_of_every_frame(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    params = DownloadParams.model_validate(SMALL["download"])
    sources.run(out, Params(download=params))
    truth = read_truth(out / "truth.parquet")
    manifest = read_manifest(out / "manifest.parquet")
    assert len(truth) == 6 * 8 and set(truth.clip_id) == set(manifest.clip_id)
    assert (truth.frame_size == 32).all()
    assert truth.t_seconds.tolist()[:3] == [0.0, 1 / 8, 2 / 8]  # frame_index / fps
    assert truth[["cx", "cy"]].stack().between(0, 32).all()
    moving = manifest.loc[manifest.label == "moves_right", "clip_id"]
    for clip_id in moving:
        cx = truth.loc[truth.clip_id == clip_id].sort_values("frame_index").cx
        assert cx.is_monotonic_increasing and cx.iloc[-1] - cx.iloc[0] > 5


def test_sources_without_poses_write_an_empty_truth_table(monkeypatch, tmp_path: Path) -> None:
    rows = [ManifestRow("a", "tgif", "a cat", "", "train", "a.gif", "u", "ok")]
    monkeypatch.setattr(sources, "collect", lambda params, out_dir: SourceResult(rows))
    sources.run(tmp_path, Params(download=DownloadParams(source="tgif")))
    assert read_truth(tmp_path / "truth.parquet").empty
