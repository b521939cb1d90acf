"""A team's shared `mlflow server`: MLFLOW_TRACKING_URI=http://host:port sends every stage
there (the pipeline's parent run and one child per stage), artifacts included, and what
arrived is read back over the server's REST API, the way any other client would see it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from servers import MlflowServer, mlflow_server, serve

from nextframe.tracking import EXPERIMENT_NAME, stage_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    yield from serve(mlflow_server, tmp_path_factory.mktemp("mlflow-server"))


@pytest.fixture
def on_server(server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """This test's stages log to the server, from a folder of their own."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    return server.url


def search_runs(server: MlflowServer, filter_string: str) -> list[dict]:
    experiment = server.api("GET", "experiments/get-by-name", experiment_name=EXPERIMENT_NAME)
    found = server.api(
        "POST",
        "runs/search",
        experiment_ids=[experiment["experiment"]["experiment_id"]],
        filter=filter_string,
        max_results=100,
    )
    return found.get("runs", [])


def tags(run: dict) -> dict[str, str]:
    return {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}


def metrics(run: dict) -> dict[str, float]:
    return {metric["key"]: metric["value"] for metric in run["data"].get("metrics", [])}


def test_two_stages_log_parent_children_and_artifacts_to_the_server(
    server: MlflowServer, on_server: str, tmp_path: Path
) -> None:
    all_params = {"train": {"epochs": 2}, "evaluate": {"horizon": 3}, "run": tmp_path.name}
    curve = tmp_path / "train_loss.csv"
    curve.write_text("epoch,train_total\n1,0.5\n2,0.25\n")
    with stage_run("train", {"train": {"epochs": 2}}, all_params) as run:
        for epoch, loss in ((1, 0.5), (2, 0.25)):
            run.log_metrics({"epoch": {"loss": loss}}, step=epoch)
        run.log_summary({"val": {"loss": 0.2}})
        run.log_artifacts([curve])
        train_id = run.run_id
    with stage_run("evaluate", {"evaluate": {"horizon": 3}}, all_params) as run:
        run.log_summary({"splitter.step.cos@1": 0.5})
        evaluate_id = run.run_id

    parent_id = tags(server.api("GET", "runs/get", run_id=train_id)["run"])["mlflow.parentRunId"]
    children = search_runs(server, f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(tags(child)["stage"] for child in children) == ["evaluate", "train"]
    assert {child["info"]["run_id"] for child in children} == {train_id, evaluate_id}
    parent = server.api("GET", "runs/get", run_id=parent_id)["run"]
    assert tags(parent)["nextframe.role"] == "pipeline"
    assert parent["info"]["status"] == "FINISHED"
    for child in children:
        child_tags = tags(child)
        assert child_tags["nextframe.role"] == "stage"
        assert child["info"]["status"] == "FINISHED"
        for key in ("git_commit", "git_dirty", "dvc_exp_name", "params_digest"):
            assert child_tags[key] == tags(parent)[key], key
    train = next(child for child in children if tags(child)["stage"] == "train")
    assert metrics(train) == {"epoch.loss": 0.25, "val.loss": 0.2}  # the latest epoch's value
    history = server.api("GET", "metrics/get-history", run_id=train_id, metric_key="epoch.loss")
    assert [(m["step"], m["value"]) for m in history["metrics"]] == [(1, 0.5), (2, 0.25)]
    assert metrics(parent) == {"train.val.loss": 0.2, "evaluate.splitter.step.cos_at_1": 0.5}

    listed = server.api("GET", "artifacts/list", run_id=train_id)
    assert [f["path"] for f in listed.get("files", [])] == ["train_loss.csv"]
    # uploaded through the server (--serve-artifacts) into its own artifact store, not
    # written by the client into some local folder
    stored = list(server.artifacts.rglob("train_loss.csv"))
    assert len(stored) == 1 and train_id in stored[0].parts
    assert stored[0].read_text() == curve.read_text()
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()


def test_stage_scripts_log_to_the_server_named_by_the_environment(
    server: MlflowServer, tmp_path: Path
) -> None:
    """The real download and select_frames scripts, as DVC runs them (a process each, the
    server named only by MLFLOW_TRACKING_URI), land under one parent on the server."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["download"]["synthetic"].update(n_clips=6, n_frames=12)
    params["select_frames"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
    env.pop("DVC_EXP_NAME", None)
    for args in (
        ["download.py", "data/raw"],
        ["select_frames.py", "data/raw/manifest.parquet", "data/frames"],
    ):
        result = subprocess.run(
            [sys.executable, str(REPO / "stages" / args[0]), *args[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "mlflow.db").exists()  # nothing fell back to the local store

    stages = search_runs(server, "tags.stage = 'select_frames'")
    assert len(stages) == 1
    parent_id = tags(stages[0])["mlflow.parentRunId"]
    children = search_runs(server, f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(tags(child)["stage"] for child in children) == ["download", "select_frames"]
    parent = server.api("GET", "runs/get", run_id=parent_id)["run"]
    assert tags(parent)["nextframe.role"] == "pipeline"
    parent_params = {p["key"]: p["value"] for p in parent["data"]["params"]}
    assert parent_params["download.synthetic.n_clips"] == "6"
    assert any(key.startswith("download.") for key in metrics(parent))
    assert any(key.startswith("select_frames.") for key in metrics(parent))
