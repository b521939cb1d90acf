"""``nextframe sample``: a video for a free caption through the real CLI entry point."""

from __future__ import annotations

import os
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


def lines_of(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["", "--frames", "3"], "CAPTION is empty"),
        (["   ", "--frames", "3"], "CAPTION is empty"),
        (["a dot", "--frames", "0"], "--frames must be from 2 to 1000, got 0"),
        (["a dot", "--frames", "-1"], "--frames must be from 2 to 1000, got -1"),
        (["a dot", "--frames", "1001"], "--frames must be from 2 to 1000, got 1001"),
        (["a dot", "--models", "no/such/models"], "--models: no/such/models is not a folder"),
        (["a dot", "--params", "no/such/params.yaml"], "--params: no/such/params.yaml not found"),
        (["a dot", "--decoder", "retrieval", "--embeddings", "nowhere"], "--embeddings: nowhere"),
    ],
)
def test_hostile_arguments_get_one_line_naming_the_argument(project, args, message) -> None:
    options, root = project
    result = runner.invoke(app, ["sample", *options, "--out", str(root / "x.gif"), *args])
    assert result.exit_code == 2, result.output
    assert len(lines_of(result.output)) == 1, result.output
    assert lines_of(result.output)[0].startswith("error: ")
    assert message in result.output
    assert not (root / "x.gif").exists()


def test_a_params_file_that_is_not_yaml_names_the_option(project) -> None:
    options, root = project
    broken = root / "broken.yaml"
    broken.write_text("generate: {size: [1, 2\n")
    result = runner.invoke(app, ["sample", "a dot", *options, "--params", str(broken)])
    assert result.exit_code == 2
    first = lines_of(result.output)[0]
    assert first.startswith(f"error: --params: {broken} line 2, column 1:"), first
    assert len(lines_of(result.output)) == 1


def out_cases(root: Path) -> dict[str, tuple[Path, str]]:
    """--out values that cannot be written, each with the start of its message."""
    (root / "a").write_text("a file, not a folder")
    (root / "folder.gif").mkdir()
    return {
        "parent is a file": (root / "a" / "b.gif", f"--out: {root / 'a'} is a file"),
        "grandparent is a file": (root / "a" / "b" / "c.gif", f"--out: {root / 'a'} is a file"),
        "a folder": (root / "folder.gif", f"--out: {root / 'folder.gif'} is a folder"),
        "unwritable (even for root)": (Path("/sys/nextframe-sample.gif"), "--out: cannot write"),
    }


@pytest.mark.parametrize(
    "case", ["parent is a file", "grandparent is a file", "a folder", "unwritable (even for root)"]
)
def test_an_out_that_cannot_be_written_fails_before_any_work(project, case, monkeypatch) -> None:
    options, root = project
    out, message = out_cases(root)[case]
    monkeypatch.setattr(nextframe.sample, "load_backbone", lambda params: pytest.fail("loaded"))
    result = runner.invoke(app, ["sample", "a dot", *options, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert len(lines_of(result.output)) == 1
    assert lines_of(result.output)[0].startswith(f"error: {message}"), result.output
    assert "Traceback" not in result.output


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_an_out_folder_without_write_permission_is_named(project) -> None:
    options, root = project
    locked = root / "locked"
    locked.mkdir(mode=0o555)
    result = runner.invoke(app, ["sample", "a dot", *options, "--out", str(locked / "x.gif")])
    assert result.exit_code == 2
    assert f"error: --out: cannot write into {locked}: Permission denied" in result.output


@pytest.mark.parametrize(
    ("caption", "warning"),
    [
        ("a teal hexagon moves up", "never learned 'teal', 'hexagon'"),
        ("a 🔴 dot moves up 🚀", "never learned '🔴', '🚀'"),
        ("a dot moves up " * 40, "599 tokens (start and end marks included), but the fake text "
         "tower reads 5: it drops the last 594"),
    ],
)  # fmt: skip
def test_a_caption_the_backbone_misreads_is_drawn_with_a_warning(
    project, monkeypatch, caption, warning
) -> None:
    options, root = project
    monkeypatch.setattr(FakeBackbone, "vocabulary", frozenset({"a", "dot", "moves", "up"}))
    out = root / "warned.gif"
    result = runner.invoke(app, ["sample", caption, "--frames", "3", "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    assert "warning: CAPTION: " in result.output
    assert warning in result.output
    assert "Traceback" not in result.output
    assert read_video(out).n_frames == 3


def test_known_words_within_the_token_limit_draw_without_a_warning(project, monkeypatch) -> None:
    options, root = project
    monkeypatch.setattr(FakeBackbone, "vocabulary", frozenset({"a", "dot"}))
    result = runner.invoke(app, ["sample", "a dot", "--out", str(root / "ok.gif"), *options])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output


def test_many_frames_sample_the_same_span(project) -> None:
    options, root = project
    out = root / "long.gif"
    args = ["sample", "a dot", "--frames", "500", "--out", str(out), "--decoder", "retrieval"]
    result = runner.invoke(app, [*args, *options])
    assert result.exit_code == 0, result.output
    assert read_video(out).n_frames == 500


def test_help_says_what_frames_means_and_lists_the_toy_vocabulary() -> None:
    from nextframe.backbones.toy.recipe import RECIPE
    from nextframe.data.synthetic_captions import caption_words

    result = runner.invoke(app, ["sample", "--help"], env={"COLUMNS": "2000"})
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    assert "how many frames sample the same clip span" in help_text
    assert ", ".join(sorted(caption_words())) in help_text
    assert f"({RECIPE.text_length} tokens for the toy)" in help_text
    assert "drawn anyway" in help_text and "An empty caption is refused" in help_text
