"""Progress output: a live bar on a terminal; off one (a pipe, a log file) a few plain lines."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from stage_scripts import STAGES_DIR
from test_training import write_synthetic_tables

import nextframe.progress
from nextframe.progress import progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(stream: io.StringIO, steps: int = 1000) -> list[str]:
    """A hand-updated bar of ``steps`` steps with a postfix, as the training loop uses it."""
    bar = progress_bar(total=steps, desc="train", unit="step", leave=False, stream=stream)
    for step in range(steps):
        bar.update(1)
        bar.set_postfix(loss=f"{1 / (step + 1):.4f}", refresh=False)
    bar.close()
    return stream.getvalue().splitlines()


def test_on_a_terminal_the_bar_redraws_in_place() -> None:
    terminal = Terminal()
    for _ in progress_bar(range(5), desc="clips", stream=terminal):
        time.sleep(0.15)  # longer than tqdm's redraw interval on a terminal
    drawn = terminal.getvalue()
    assert drawn.count("\r") >= 5, drawn  # every redraw overwrites the line
    assert "clips: 100%|" in drawn  # the bar itself (its blocks depend on the encoding)
    assert drawn.count("\n") == 1


def test_off_a_terminal_a_quick_bar_writes_its_start_and_its_end_only() -> None:
    log = io.StringIO()
    lines = drive(log)
    assert "\r" not in log.getvalue()
    assert len(lines) == 2, lines
    assert lines[0].startswith("train:   0% 0/1000")
    assert lines[1].startswith("train: 100% 1000/1000") and "loss=" in lines[1]


def test_off_a_terminal_at_most_one_line_per_tenth_however_often_time_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(nextframe.progress, "LOG_INTERVAL_S", 0.0)  # time never holds it back
    log = io.StringIO()
    lines = drive(log)
    assert 2 < len(lines) <= 12, lines  # start, one per 10%, end
    assert all(line.startswith("train: ") for line in lines)


def test_off_a_terminal_an_iterable_of_unknown_length_still_ends_with_a_line() -> None:
    log = io.StringIO()
    assert sum(progress_bar(iter(range(500)), desc="clips", stream=log)) == sum(range(500))
    assert log.getvalue().splitlines()[-1].startswith("clips: 500 ")


def test_the_train_stage_writes_a_short_log_to_a_pipe(tmp_path: Path) -> None:
    """A real stage, its output piped as DVC under a runner, nohup or a cluster job pipe it:
    many optimiser steps (each once redrew the bar, twice), a handful of lines."""
    manifest, embeddings = write_synthetic_tables(tmp_path, n_clips=16)
    params = tmp_path / "params.yaml"
    train = {"epochs": 1, "batch_size": 8, "patience": 0, "splitter": {"hidden": 32}}
    params.write_text(yaml.safe_dump({"train": train, "generate": {"methods": ["splitter"]}}))
    args = [str(manifest), str(embeddings), str(tmp_path / "models"), str(tmp_path / "metrics")]
    done = subprocess.run(
        [sys.executable, str(STAGES_DIR / "train.py"), *args, "--params", str(params)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout
    assert "\r" not in done.stdout
    lines = done.stdout.splitlines()
    progress = [line for line in lines if line.startswith("train: ")]
    steps = int(progress[-1].split()[2].split("/")[1])
    assert steps >= 30, progress  # enough updates that per-update output would show
    assert 2 <= len(progress) <= 12, progress
    assert lines[-1].startswith("trained "), lines  # the stage's summary line
    assert len(lines) <= 16, lines
