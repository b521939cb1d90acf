"""One MLflow run per stage.

DVC decides *what* reran; MLflow keeps the history of every run with its params, metrics
and the git commit it came from, so a variant can be found again after its workspace is
gone. The store is ``sqlite:///mlflow.db`` in the working directory unless
``MLFLOW_TRACKING_URI`` says otherwise.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
EXPERIMENT_NAME = "nextframe"


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params to MLflow's flat ``a.b.c`` keys (lists stay as their string form)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def git_commit(cwd: Path | None = None) -> str:
    """The current commit, or ``unknown`` outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip()


class StageRun:
    """The handle a stage logs through; keeps stage code free of MLflow details."""

    def __init__(self, mlflow_module: Any) -> None:
        self._mlflow = mlflow_module

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        numeric = {key: float(value) for key, value in flatten(metrics).items()}
        self._mlflow.log_metrics(numeric, step=step)

    def log_artifacts(self, paths: Iterable[str | Path]) -> None:
        for path in paths:
            self._mlflow.log_artifact(str(path))


@contextmanager
def stage_run(stage: str, params: Mapping[str, Any]) -> Iterator[StageRun]:
    """Open an MLflow run tagged with the stage name and git commit, logging ``params``."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI))
    mlflow.set_experiment(EXPERIMENT_NAME)
    with mlflow.start_run(run_name=stage, tags={"stage": stage, "git_commit": git_commit()}):
        mlflow.log_params({key: str(value) for key, value in flatten(params).items()})
        yield StageRun(mlflow)
