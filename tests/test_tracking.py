"""MLflow logging: one run per stage, tagged, with flattened params and metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextframe.tracking import flatten, git_commit, stage_run


def test_flatten_nested_params() -> None:
    nested = {"loss": {"mse": 1.0, "cos": 0.5}, "modes": ["all"], "epochs": 3}
    assert flatten(nested) == {"loss.mse": 1.0, "loss.cos": 0.5, "modes": ["all"], "epochs": 3}


def test_stage_run_logs_to_the_configured_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # the default artifact store is ./mlruns
    curve, sheet = tmp_path / "curve.csv", tmp_path / "sheet.png"
    curve.write_text("h,m\n1,0.5\n")
    sheet.write_bytes(b"not really a png")
    with stage_run("train", {"loss": {"mse": 1.0}, "epochs": 2}) as run:
        run.log_metrics({"val": {"loss": 0.25}}, step=1)
        run.log_metrics({"seconds": 3})
        run.log_artifacts([curve, sheet])

    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("nextframe")
    (logged,) = client.search_runs([experiment.experiment_id])
    assert logged.data.tags["stage"] == "train"
    assert logged.data.tags["git_commit"] == git_commit()
    assert logged.data.params == {"loss.mse": "1.0", "epochs": "2"}
    assert logged.data.metrics == {"val.loss": 0.25, "seconds": 3.0}
    assert logged.info.status == "FINISHED"
    stored = sorted(a.path for a in client.list_artifacts(logged.info.run_id))
    assert stored == ["curve.csv", "sheet.png"]
    assert (tmp_path / "runs.db").stat().st_size > 0


def test_git_commit_outside_a_repository_is_unknown(tmp_path: Path) -> None:
    assert git_commit(cwd=tmp_path) == "unknown"
