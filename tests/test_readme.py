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
