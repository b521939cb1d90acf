"""``nextframe sample``: a video for a free caption through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from fixtures.project import FakeBackbone, build_project
from typer.testing import CliRunner

import nextframe.sample
from nextframe.cli import app
from nextframe.data.video import read_video

runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path]:
    backbone = FakeBackbone()
    monkeypatch.setattr(nextframe.sample, "load_backbone", lambda params: backbone)
    paths = build_project(tmp_path, backbone, {"train": 4, "val": 1, "test": 1})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"generate": {"size": 32, "steps": 2, "fps": 5.0}}))
    options = [
        "--models", str(paths["models"]),
        "--params", str(params_file),
        "--embeddings", str(paths["embeddings"]),
        "--frames-table", str(paths["frames"]),
        "--manifest", str(paths["manifest"]),
    ]  # fmt: skip
    return options, tmp_path


@pytest.mark.parametrize(("decoder", "suffix"), [("retrieval", "gif"), ("backbone", "mp4")])
def test_sample_writes_a_video_with_the_requested_frames(
    project, decoder: str, suffix: str
) -> None:
    options, root = project
    out = root / f"sample.{suffix}"
    args = [
        "sample",
        "a red dot moves up",
        "--frames",
        "6",
        "--out",
        str(out),
        "--decoder",
        decoder,
    ]
    result = runner.invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    video = read_video(out)
    assert video.frames.shape == (6, 32, 32, 3)


def test_sample_chain_rollout_with_a_baseline(project) -> None:
    options, root = project
    out = root / "linear.gif"
    args = ["sample", "a dot", "--frames", "3", "--out", str(out), "--method", "linear"]
    result = runner.invoke(app, [*args, "--rollout", "chain", *options])
    assert result.exit_code == 0, result.output
    assert read_video(out).n_frames == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "clip.avi"], ".gif or .mp4"),
        (["--method", "magic"], "--method: unknown method(s) ['magic']"),
        (["--decoder", "paint"], "retrieval or backbone"),
        (["--rollout", "zigzag"], "step or chain"),
    ],
)
def test_sample_reports_bad_options_without_a_traceback(project, extra, message) -> None:
    options, root = project
    result = runner.invoke(app, ["sample", "a dot", "--out", str(root / "x.gif"), *options, *extra])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_lists_the_sample_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "sample" in result.output
