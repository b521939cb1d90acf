"""The stage layer: thin scripts, their --help, dvc.yaml in step with the code, Ctrl-C."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from stage_scripts import STAGES_DIR, default_sigint, load_stage
from test_training import write_synthetic_tables
from typer.testing import CliRunner

from nextframe.config import Params, describe_keys, load_params
from nextframe.data.video import read_video

REPO = STAGES_DIR.parent
SRC = REPO / "src"
STAGES = ("download", "select_frames", "embed", "train", "generate", "evaluate")


def stage_params(stage: str) -> tuple[str, ...]:
    import importlib

    return importlib.import_module(f"nextframe.pipeline.{stage}").PARAMS


@pytest.mark.parametrize("stage", STAGES)
def test_help_lists_every_params_key_it_reads_with_its_value(stage: str) -> None:
    keys = stage_params(stage)
    result = CliRunner().invoke(load_stage(stage).app, ["--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    params = load_params(REPO / "params.yaml")
    described = describe_keys(params, keys)
    assert described, stage
    for item in described:
        assert item.meaning, f"{item.key} has no docstring in nextframe.config"
        line = next((line for line in result.output.splitlines() if f" {item.key} = " in line), "")
        assert line, f"{stage} --help does not list {item.key}"
        assert repr(item.value) in line and item.meaning in line, line


def test_every_params_leaf_has_a_meaning() -> None:
    missing = [
        item.key for item in describe_keys(Params(), tuple(Params.model_fields)) if not item.meaning
    ]
    assert missing == []


def _module_file(name: str) -> Path | None:
    path = SRC / Path(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _imports(path: Path) -> set[Path]:
    """nextframe modules ``path`` imports, also lazily and by name (importlib strings)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nextframe"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("nextframe"))
        elif isinstance(node, ast.Constant) and re.fullmatch(r"nextframe(\.\w+)+", str(node.value)):
            names.add(node.value)
    files = set()
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            found = _module_file(".".join(parts[:end]))
            if found is not None:
                files.add(found)
    return files


def _data_files(path: Path) -> set[Path]:
    """Package files other than modules that ``path`` names, relative to the package
    (``"backbones/weights/toy.safetensors"``): what it reads, such as trained weights."""
    return {
        SRC / "nextframe" / node.value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"[\w./-]+/[\w.-]+\.(?!py$)\w+", node.value)
        and (SRC / "nextframe" / node.value).is_file()
    }


def _registered_methods() -> set[Path]:
    """The modules the method registry names (``.module:Class``, relative to its package):
    whoever imports ``methods/loading.py`` may run any of them."""
    registry = SRC / "nextframe" / "methods" / "registry.py"
    return {
        registry.parent / f"{match}.py"
        for match in re.findall(r'"\.(\w+):\w+"', registry.read_text())
    }


def code_closure(script: Path) -> set[str]:
    """The stage script, every project module it runs and the package files they read, as
    dvc.yaml paths."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            imported = _imports(path)
            if SRC / "nextframe" / "methods" / "loading.py" in imported:
                imported |= _registered_methods()
            todo.extend(imported - seen)
    data = set().union(*(_data_files(path) for path in seen))
    return {path.relative_to(REPO).as_posix() for path in seen | data}


@pytest.mark.parametrize("stage", STAGES)
def test_dvc_yaml_deps_and_params_follow_the_code(stage: str) -> None:
    """Editing a module reruns exactly the stages that run it; params are exactly PARAMS."""
    declared = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"][stage]
    code_deps = {dep for dep in declared["deps"] if dep.startswith(("src/", "stages/"))}
    expected = code_closure(STAGES_DIR / f"{stage}.py")
    assert code_deps == expected, (
        f"dvc.yaml {stage}: missing {sorted(expected - code_deps)}, "
        f"extra {sorted(code_deps - expected)}"
    )
    assert tuple(declared["params"]) == stage_params(stage)
    assert f"stages/{stage}.py" in declared["cmd"]


def test_editing_a_method_reruns_only_the_stages_that_run_methods() -> None:
    """A method owns its fit and its rollout, so editing one reruns train and generate;
    evaluate scores what they wrote without importing any method, the stages before them
    only validate ``generate.methods`` by name, and pictures (``render.py``) do not retrain
    anything."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]

    def users(path: str) -> set[str]:
        return {name for name, stage in stages.items() if path in stage["deps"]}

    assert users("src/nextframe/model/rollout.py") == {"train", "generate"}
    assert users("src/nextframe/methods/caption_aware.py") == {"train", "generate"}
    assert "src/nextframe/methods/registry.py" in stages["download"]["deps"]
    assert "train" not in users("src/nextframe/render.py")


@pytest.mark.parametrize("stage", STAGES)
def test_stage_scripts_stay_thin(stage: str) -> None:
    """A stage script parses arguments and calls run_stage; logic lives in the library."""
    tree = ast.parse((STAGES_DIR / f"{stage}.py").read_text())
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    assert [f.name for f in functions] == ["main"]
    branches = [node for node in ast.walk(tree) if isinstance(node, (ast.If, ast.For, ast.While))]
    assert len(branches) == 1  # if __name__ == "__main__"
    assert "run_stage(" in (STAGES_DIR / f"{stage}.py").read_text()


# ---------------------------------------------------------------------------- Ctrl-C


def _start(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, list[str]]:
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    lines: list[str] = []

    def read() -> None:
        for line in process.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


def _wait_for(lines: list[str], pattern: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(pattern in line for line in lines):
            return
        assert process.poll() is None, "".join(lines)
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"never saw {pattern!r}:\n{''.join(lines)}")


def _interrupt(process: subprocess.Popen) -> float:
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    return time.monotonic() - sent


def _killed_runs(uri: str) -> list[str]:
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("nextframe")
    found = client.search_runs([experiment.experiment_id], "tags.`nextframe.role` = 'stage'")
    return [run.info.status for run in found]


def test_ctrl_c_in_training_exits_130_quickly_leaves_nothing_and_marks_the_run(
    tmp_path: Path,
) -> None:
    manifest, embeddings = write_synthetic_tables(tmp_path, n_clips=48)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": {"epochs": 10_000, "patience": 0}}))
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1"}
    models, metrics = tmp_path / "models", tmp_path / "metrics"
    args = [str(STAGES_DIR / "train.py"), str(manifest), str(embeddings), str(models)]
    process, lines = _start([*args, str(metrics), "--params", str(params)], tmp_path, env)
    _wait_for(lines, "train:", process, timeout=120)  # the progress bar: inside the loop
    seconds = _interrupt(process)
    assert process.returncode == 130, "".join(lines)
    assert seconds < 5, seconds
    assert "Traceback" not in "".join(lines)
    assert "interrupted: partial outputs were removed" in "".join(lines)
    assert not models.exists() and not metrics.exists()  # nothing half-written
    assert _killed_runs(uri) == ["KILLED"]


def test_ctrl_c_while_writing_videos_leaves_no_partial_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"download": {"synthetic": {"n_clips": 5000, "size": 64}}}))
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1"}
    raw = tmp_path / "raw"
    args = [str(STAGES_DIR / "download.py"), str(raw), "--params", str(params)]
    process, lines = _start(args, tmp_path, env)
    _wait_for(lines, "synthetic:", process, timeout=120)
    deadline = time.monotonic() + 60
    while len(list((raw / "videos").glob("*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    seconds = _interrupt(process)
    assert process.returncode == 130, "".join(lines)
    assert seconds < 5, seconds
    written = sorted((raw / "videos").iterdir())
    assert written and not [p.name for p in written if not p.name.endswith((".mp4", ".gif"))]
    for path in written:  # every file there is a whole video
        assert read_video(path).n_frames == 24, path
    assert not (raw / "manifest.parquet").exists()
    assert _killed_runs(uri) == ["KILLED"]
