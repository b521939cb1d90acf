"""scripts/check_reproduction.py: a reproduced run's metrics against the committed ones."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "check_reproduction.py"
FILES = ("metrics/evaluate.json", "metrics/train.json")


def git(root: Path, *args: str) -> None:
    identity = ["-c", "user.name=nextframe tests", "-c", "user.email=tests@nextframe.invalid"]
    subprocess.run(["git", *identity, *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    """A repository whose HEAD holds the project's committed metrics files."""
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, tmp_path / name)
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "committed metrics")
    return tmp_path


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--repo", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


def edit(root: Path, name: str, change) -> None:
    path = root / name
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload, indent=2))


def test_an_unchanged_run_passes(committed: Path) -> None:
    result = check(committed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "agree with HEAD within tolerance" in result.stdout


def test_drift_of_the_size_seen_between_cpus_passes(committed: Path) -> None:
    """About what another CPU gives (issue 21): 2e-4 dB of PSNR, 1e-4 on cosines."""

    def drift(metrics: dict) -> None:
        metrics["splitter.step.psnr"] += 2e-4
        metrics["splitter.step.cos_mean"] -= 1e-4
        metrics["splitter.step.displacement_err"] *= 1 + 1e-5

    edit(committed, "metrics/evaluate.json", drift)
    edit(
        committed,
        "metrics/train.json",
        lambda m: m["val_loss"].update(total=m["val_loss"]["total"] * (1 + 1e-4)),
    )
    assert check(committed).returncode == 0


def test_a_perturbed_run_names_every_key_that_differs(committed: Path) -> None:
    def perturb(metrics: dict) -> None:
        metrics["splitter.step.psnr"] += 0.1  # rel 4e-3
        metrics["splitter.chain.cos_mean"] -= 0.005  # abs 5e-3
        metrics["splitter.step.direction_acc"] -= 1 / 29  # one clip fewer: exact
        metrics["splitter.step.cos_mean"] += 1e-4  # within tolerance: not named
        del metrics["truth.psnr"]

    edit(committed, "metrics/evaluate.json", perturb)
    edit(
        committed,
        "metrics/train.json",
        lambda m: m["val_change_cosine"]["splitter"].update(all=0.5),
    )
    result = check(committed)
    assert result.returncode == 1
    named = [
        line.split(": ")[1] for line in result.stdout.splitlines() if line.startswith("metrics/")
    ]
    assert sorted(named) == [
        "splitter.chain.cos_mean",
        "splitter.step.direction_acc",
        "splitter.step.psnr",
        "truth.psnr",
        "val_change_cosine.splitter.all",
    ]
    assert "missing in the reproduction" in result.stdout
    assert re.search(r"^5 of \d+ metrics differ from HEAD", result.stdout, re.MULTILINE)


def test_a_missing_metrics_file_is_an_error_not_a_pass(committed: Path) -> None:
    (committed / "metrics" / "train.json").unlink()
    result = check(committed)
    assert result.returncode == 2 and "metrics/train.json not found" in result.stderr
