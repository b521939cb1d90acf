"""The GPU check's dry run completes on the CPU, so it is known to work before a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_prints_every_figure() -> None:
    started = time.perf_counter()
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    cases = [record["case"] for record in records]
    assert "failed" not in cases
    assert cases[0] == "env"
    assert cases.count("meta") == 6  # five components and the shapes
    assert next(r for r in records if r["case"] == "decode_sharding")["skipped"]
    repro = next(r for r in records if r["case"] == "repro")
    assert repro["device"] == "cpu"
    stages = {"download", "select_frames", "embed", "train", "generate", "evaluate"}
    assert set(repro["stage_seconds"]) == stages  # sorted keys: every stage ran
    assert repro["headline"]["n_clips"] > 0
    assert -1 <= repro["headline"]["splitter.step.cos_mean"] <= 1
    print(f"gpu_check --cpu: {seconds:.0f} s; repro {repro['seconds']} s {repro['stage_seconds']}")
