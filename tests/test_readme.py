"""The README's claims about the committed run: its results block is what the committed
metrics give, and its set-up commands are the ones that exist."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "readme_results.py"


def test_the_results_block_matches_the_committed_metrics() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_fails_when_a_number_changes(tmp_path: Path) -> None:
    metrics = json.loads((REPO / "metrics" / "evaluate.json").read_text())
    metrics["splitter.step.cos_mean"] += 0.01
    changed = tmp_path / "evaluate.json"
    changed.write_text(json.dumps(metrics))
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--metrics", str(changed)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "differs" in result.stdout


def test_the_readme_opens_with_the_two_setup_commands() -> None:
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert "bash scripts/setup.sh && dvc repro" in first_block
    assert "bash scripts/setup.sh && pytest" in first_block
    assert (REPO / "scripts" / "setup.sh").is_file()


def test_the_per_method_and_per_class_tables_come_from_the_methods_file(tmp_path: Path) -> None:
    """With a run's evaluate_methods.json the block gains every method with intervals
    (privileged ones marked) and a methods x classes table per metric; the README's block
    is then out of date, and --check says so."""
    methods = {
        "by_class.left.n_clips": 2.0,
        "by_class.rotate.n_clips": 4.0,
        "by_class.left.splitter.step.factor_motion": 0.5,
        "by_class.rotate.splitter.step.factor_motion": -0.25,
        "by_class.rotate.splitter.step.factor_motion.ci_low": -0.5,
        "by_class.rotate.splitter.step.factor_motion.ci_high": 0.125,
        "by_class.rotate.class_regression.step.factor_motion": 0.75,
        "class_regression.step.cos_mean": 0.9,
        "splitter.step.direction_acc_45": 0.8,
        "splitter-class_regression.step.cos_mean": -0.03,
        "splitter-class_regression.step.cos_mean.ci_low": -0.05,
        "splitter-class_regression.step.cos_mean.ci_high": -0.01,
    }
    headline = {  # the committed headline, less what the methods file below describes
        key: value
        for key, value in json.loads((REPO / "metrics" / "evaluate.json").read_text()).items()
        if not key.startswith("class_regression.") and key not in methods
    }
    (tmp_path / "evaluate.json").write_text(json.dumps(headline))
    (tmp_path / "evaluate_methods.json").write_text(json.dumps(methods))
    arguments = ["--metrics", str(tmp_path / "evaluate.json")]
    arguments += ["--methods", str(tmp_path / "evaluate_methods.json")]
    printed = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, check=True
    ).stdout
    lines = printed.splitlines()
    assert "| class_regression (privileged) | 0.900 | n/a | n/a |" in lines
    paired = "| n/a | n/a | n/a | n/a | n/a | -0.030 [-0.050, -0.010] |  |"
    assert f"| class_regression (privileged) | 0.900 {paired}" in lines
    assert any("splitter" in line and "0.80" in line for line in lines)  # direction_acc_45
    header = next(line for line in lines if line.startswith("| motion on what the clip changes"))
    assert header.endswith("| left (2) | rotate (4) |")
    after = lines[lines.index(header) :]
    assert "| splitter | 0.50 | -0.25 [-0.50, 0.12] |" in after
    assert "| class_regression (privileged) |  | 0.75 |" in after
    assert not [line for line in lines if line.startswith("| cos_mean | left")]  # no figure
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1 and "differs" in result.stdout
