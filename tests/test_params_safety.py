"""A broken params.yaml never costs outputs, under `dvc repro`, `dvc repro -s` and `dvc exp run`.

A temporary git + DVC repository holds the real dvc.yaml, stage scripts and sources; stand-in
outputs are recorded with `dvc commit` (so no stage has to run first), then params.yaml is
broken three ways (an unknown key, a wrong type, a YAML syntax error) and each command must
fail with a message naming the key or line while every output keeps its bytes. DVC deletes
an output before running its stage unless the output is ``persist``; the stage scripts then
fail on the params before touching anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from test_pipeline_e2e import command
from test_pipeline_e2e import run as run_ok

pytestmark = pytest.mark.e2e  # runs dvc a dozen times (about 2 minutes)

REPO = Path(__file__).resolve().parents[1]
PIPELINE = yaml.safe_load((REPO / "dvc.yaml").read_text())


def declared_outputs() -> dict[str, dict]:
    """Every output of dvc.yaml (outs and metrics) with its options."""
    outputs: dict[str, dict] = {}
    for stage in PIPELINE["stages"].values():
        for entry in stage.get("outs", []) + stage.get("metrics", []):
            path, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
            outputs[path] = options or {}
    return outputs


def test_every_output_is_persistent() -> None:
    """DVC keeps only ``persist`` outputs when a stage fails; the test below exercises some."""
    transient = [path for path, options in declared_outputs().items() if not options.get("persist")]
    assert transient == []


# the stages' `python` is the one running the tests (with its nextframe)
TEST_PYTHON = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return command(args, cwd, timeout=300, env=TEST_PYTHON)


def ok(args: list[str], cwd: Path) -> str:
    return run_ok(args, cwd, timeout=300, env=TEST_PYTHON)


def write_stand_ins(root: Path) -> None:
    """A few bytes for every output, and for the files inside outputs that stages depend on."""
    outputs = declared_outputs()
    inner_deps = {
        dep
        for stage in PIPELINE["stages"].values()
        for dep in stage.get("deps", [])
        if any(dep.startswith(f"{out}/") for out in outputs)
    }
    for path in outputs:
        target = root / path
        if target.suffix:  # a file output
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"previous {path}\n")
        else:
            target.mkdir(parents=True, exist_ok=True)
            (target / "previous.txt").write_text(f"previous {path}\n")
    for dep in inner_deps:
        (root / dep).write_text(f"previous {dep}\n")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under every output."""
    files: dict[str, bytes] = {}
    for path in declared_outputs():
        target = root / path
        found = [target] if target.is_file() else sorted(target.rglob("*"))
        files.update({str(f.relative_to(root)): f.read_bytes() for f in found if f.is_file()})
    return files


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("params_safety")
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, root / name)
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    ok(["git", "init", "-q", "-b", "main"], root)
    ok(["dvc", "init", "-q"], root)
    ok(["dvc", "config", "core.analytics", "false"], root)
    write_stand_ins(root)
    ok(["dvc", "commit", "-f", "-q"], root)  # the stand-ins become the recorded outputs
    ok(["git", "add", "-A"], root)
    ok(["git", "commit", "-q", "-m", "outputs"], root)
    assert "up to date" in ok(["dvc", "status"], root).lower()
    return root


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def line_of(text: str, needle: str) -> int:
    return text.splitlines().index(needle) + 1


PARAMS_TEXT = (REPO / "params.yaml").read_text()
SYNTAX_LINE = line_of(PARAMS_TEXT, "  epochs: 20")
# (edit of params.yaml, the stage it breaks, what the message must say)
BREAKAGES = {
    "typo": (
        replace("\n  epochs: 20", "\n  epoch: 20"),
        "train",
        "train.epoch: unknown key; did you mean train.epochs?",
    ),
    "wrong_type": (
        replace("\n  k: 8", "\n  k: eight"),
        "select_frames",
        "select_frames.k: Input should be a valid integer",
    ),
    # DVC reads params.yaml itself before any stage runs, and names the line
    "yaml_syntax": (replace("\n  epochs: 20", "\n  epochs: [20"), "train", f"line {SYNTAX_LINE}"),
}
COMMANDS = {
    "repro": lambda stage: ["dvc", "repro"],
    "repro_single": lambda stage: ["dvc", "repro", "-s", stage],
    "exp_run": lambda stage: ["dvc", "exp", "run"],
}


@pytest.mark.parametrize("breakage", BREAKAGES)
@pytest.mark.parametrize("command", COMMANDS)
def test_broken_params_fail_clearly_and_keep_every_output(
    project: Path, command: str, breakage: str
) -> None:
    edit, stage, message = BREAKAGES[breakage]
    before = snapshot(project)
    params_path = project / "params.yaml"
    original = params_path.read_text()
    params_path.write_text(edit(original))
    try:
        result = run(COMMANDS[command](stage), project)
    finally:
        params_path.write_text(original)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"exit {result.returncode}:\n{output}"
    assert message in output, f"exit {result.returncode}:\n{output}"
    assert "Traceback" not in output, output
    assert snapshot(project) == before, f"outputs changed or were removed:\n{output}"


def test_a_stage_run_by_hand_reports_a_yaml_error_in_one_line(project: Path) -> None:
    """Without DVC in front, the stage's own check names the line; --help still works (the
    help text reads params.yaml when the script is imported)."""
    params_path = project / "params.yaml"
    original = params_path.read_text()
    params_path.write_text(BREAKAGES["yaml_syntax"][0](original))
    try:
        failed = run(["python", "stages/train.py", "a", "b", "c", "d"], project)
        helped = run(["python", "stages/train.py", "--help"], project)
    finally:
        params_path.write_text(original)
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        f"error: params.yaml line {SYNTAX_LINE + 1}, column 13: expected ',' or ']', but got ':' "
        f"(while parsing a flow sequence from line {SYNTAX_LINE}, column 11); "
        "fix the YAML syntax there"
    ]
    assert helped.returncode == 0 and "Traceback" not in helped.stderr
    assert "unreadable" in helped.stdout
