"""MLflow: one parent run per pipeline run, one child run per stage, tagged with provenance."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nextframe.tracking import (
    EXPERIMENT_NAME,
    flatten,
    git_commit,
    metric_name,
    provenance,
    stage_run,
)

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t.invalid",
}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    return uri


def runs(uri: str) -> list:
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def by_role(found: list) -> tuple[list, list]:
    parents = [r for r in found if r.data.tags.get("nextframe.role") == "pipeline"]
    children = [r for r in found if r.data.tags.get("nextframe.role") == "stage"]
    return parents, children


def test_flatten_and_metric_names() -> None:
    nested = {"loss": {"mse": 1.0, "cos": 0.5}, "modes": ["all"], "epochs": 3}
    assert flatten(nested) == {"loss.mse": 1.0, "loss.cos": 0.5, "modes": ["all"], "epochs": 3}
    assert metric_name("splitter.step.cos@3") == "splitter.step.cos_at_3"


def test_two_stages_land_under_one_parent_with_provenance(store: str, tmp_path: Path) -> None:
    all_params = {"train": {"epochs": 2}, "evaluate": {"horizon": 3}}
    curve = tmp_path / "curve.csv"
    curve.write_text("h,m\n1,0.5\n")
    with stage_run("train", {"train": {"epochs": 2}}, all_params) as run:
        run.log_metrics({"epoch": {"loss": 0.25}}, step=1)
        run.log_summary({"val": {"loss": 0.2}, "seconds": 3, "note": "not a number"})
        run.log_artifacts([curve])
    with stage_run("evaluate", {"evaluate": {"horizon": 3}}, all_params) as run:
        run.log_summary({"splitter.step.cos@1": 0.5})

    parents, children = by_role(runs(store))
    assert len(parents) == 1 and [c.data.tags["stage"] for c in children] == ["train", "evaluate"]
    parent = parents[0]
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED"
        for tag in ("git_commit", "git_dirty", "dvc_exp_name", "params_digest"):
            assert child.data.tags[tag] == parent.data.tags[tag]
    assert parent.data.tags["git_commit"] == git_commit()
    assert parent.data.params == {"train.epochs": "2", "evaluate.horizon": "3"}
    assert children[0].data.params == {"train.epochs": "2"}
    assert children[0].data.metrics == {"epoch.loss": 0.25, "val.loss": 0.2, "seconds": 3.0}
    assert children[1].data.metrics == {"splitter.step.cos_at_1": 0.5}
    assert parent.data.metrics == {
        "train.val.loss": 0.2,
        "train.seconds": 3.0,
        "evaluate.splitter.step.cos_at_1": 0.5,
    }
    assert parent.info.status == "FINISHED"
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    stored = [a.path for a in client.list_artifacts(children[0].info.run_id)]
    assert stored == ["curve.csv"]
    assert (tmp_path / "mlartifacts").is_dir()  # beside the database, not in the cwd's mlruns


def test_changed_params_or_an_experiment_name_start_a_new_parent(
    store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for stage, params in (("train", {"x": 1}), ("evaluate", {"x": 1}), ("train", {"x": 2})):
        with stage_run(stage, params, params):
            pass
    monkeypatch.setenv("DVC_EXP_NAME", "wide-lr")
    with stage_run("train", {"x": 2}, {"x": 2}):
        pass
    parents, children = by_role(runs(store))
    assert len(children) == 4 and len(parents) == 3
    names = sorted(p.info.run_name for p in parents)
    assert "wide-lr" in names
    exp_parent = next(p for p in parents if p.info.run_name == "wide-lr")
    assert exp_parent.data.tags["dvc_exp_name"] == "wide-lr"
    # the first two stages (same code, same params) share their parent
    assert (
        children[0].data.tags["mlflow.parentRunId"] == children[1].data.tags["mlflow.parentRunId"]
    )


def test_a_forced_rerun_gets_a_parent_of_its_own(store: str) -> None:
    """``dvc repro -f`` reruns stages that finished with the same code and params: a new
    pipeline run, while a stage that failed and is rerun completes its old parent."""
    params = {"x": 1}
    with stage_run("download", params, params):
        pass
    with pytest.raises(ValueError), stage_run("train", params, params):
        raise ValueError("broken")
    with stage_run("train", params, params):  # dvc repro after the fix: completes the run
        pass
    with stage_run("download", params, params):  # dvc repro -f
        pass
    with stage_run("train", params, params):
        pass
    parents, children = by_role(runs(store))
    assert len(parents) == 2
    parent_of = [c.data.tags["mlflow.parentRunId"] for c in children]
    first, second = parents[0].info.run_id, parents[1].info.run_id
    assert parent_of == [first, first, first, second, second]
    assert [c.info.status for c in children] == ["FINISHED", "FAILED", *["FINISHED"] * 3]


def test_a_copied_repository_keeps_its_artifacts_in_the_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local store's artifact folder follows the database: a run logged in a copy of
    the repository lands in the copy's mlartifacts, and the copy's old runs read the
    artifacts copied along, while the original store is left as it was."""
    import shutil

    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    original, copy = tmp_path / "a", tmp_path / "b"
    curve = Path("metrics/plots/train_loss.csv")

    def log_stage(repo: Path, stage: str) -> str:
        monkeypatch.setenv("DVC_ROOT", str(repo))
        monkeypatch.chdir(repo)
        curve.parent.mkdir(parents=True, exist_ok=True)
        curve.write_text(f"epoch,train_total\n1,{stage}\n")
        with stage_run(stage, {"x": 1}) as run:
            run.log_artifacts([curve])
        return run.run_id

    original.mkdir()
    first = log_stage(original, "train")
    shutil.copytree(original, copy)
    second = log_stage(copy, "evaluate")

    def stored(repo: Path) -> list[str]:
        return sorted(
            str(p.relative_to(repo / "mlartifacts")) for p in (repo / "mlartifacts").rglob("*.csv")
        )

    layout = "{}/artifacts/metrics/plots/train_loss.csv"  # the file's folder in the repo
    assert stored(original) == [layout.format(first)]
    assert stored(copy) == sorted([layout.format(first), layout.format(second)])
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{copy / 'mlflow.db'}")
    for run_id in (first, second):
        assert client.get_run(run_id).info.artifact_uri.startswith(copy.as_uri())
        local = client.download_artifacts(run_id, str(curve), str(tmp_path / run_id))
        assert Path(local).read_text().startswith("epoch")
    before = client.get_experiment_by_name(EXPERIMENT_NAME)
    assert before.artifact_location == (copy / "mlartifacts").as_uri()
    origin = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{original / 'mlflow.db'}")
    assert origin.get_run(first).info.artifact_uri.startswith(original.as_uri())


def test_sigterm_marks_the_run_killed_and_exits_143(store: str) -> None:
    """What a scheduler sends: the stage cleans up as on Ctrl-C and says it was terminated."""
    import signal

    from nextframe.errors import TERMINATED_STATUS, report_user_errors

    cleaned = []

    @report_user_errors
    def stage() -> None:
        with stage_run("train", {"x": 1}):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)  # the signal interrupts this
            finally:
                cleaned.append(True)

    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        stage()
    assert exit_info.value.code == TERMINATED_STATUS and time.monotonic() - started < 10
    assert cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored afterwards
    parents, children = by_role(runs(store))
    assert [c.info.status for c in children] == ["KILLED"]
    assert parents[0].info.status == "KILLED"


def test_interrupted_and_failed_stages_are_marked(store: str) -> None:
    with pytest.raises(KeyboardInterrupt), stage_run("train", {"x": 1}):
        raise KeyboardInterrupt
    with pytest.raises(ValueError), stage_run("evaluate", {"x": 1}):
        raise ValueError("broken")
    parents, children = by_role(runs(store))
    assert [c.info.status for c in children] == ["KILLED", "FAILED"]
    assert parents[0].info.status == "FAILED"  # the parent reports the latest stage


def test_provenance_sees_code_changes_but_not_pipeline_outputs(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, env={**os.environ, **GIT_IDENTITY})

    git("init", "-q")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "dvc.lock").write_text("one\n")
    git("add", "-A")
    git("commit", "-q", "-m", "start")
    clean = provenance({"p": 1}, tmp_path)
    assert (clean.git_dirty, clean.code_digest) == (False, "")

    (tmp_path / "dvc.lock").write_text("two\n")  # written by DVC as the stages finish
    assert provenance({"p": 1}, tmp_path) == clean

    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    edited = provenance({"p": 1}, tmp_path)
    assert edited.git_dirty and edited.code_digest
    assert edited.pipeline_key() != clean.pipeline_key()
    assert provenance({"p": 2}, tmp_path).params_digest != clean.params_digest
    assert git_commit(cwd=tmp_path.parent / "nowhere-a-repo") == "unknown"


STAGE_SCRIPT = """
import sys
import yaml
from nextframe.tracking import stage_run

params = yaml.safe_load(open("params.yaml"))
with stage_run(sys.argv[1], params, params) as run:
    run.log_summary({"x_seen": params["x"]})
open(sys.argv[1] + ".out", "w").write(str(params["x"]))
"""


def test_dvc_exp_run_groups_its_stages_under_the_experiment(tmp_path: Path, store: str) -> None:
    """A real ``dvc repro`` then ``dvc exp run`` of a two-stage pipeline."""
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, **GIT_IDENTITY, "DVC_NO_ANALYTICS": "1"}

    def run(*args: str) -> None:
        result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr

    (repo / "stage.py").write_text(STAGE_SCRIPT)
    (repo / "params.yaml").write_text("x: 1\n")
    python = sys.executable
    (repo / "dvc.yaml").write_text(
        textwrap.dedent(
            f"""
            stages:
              first:
                cmd: {python} stage.py first
                deps: [stage.py]
                params: [x]
                outs: [first.out]
              second:
                cmd: {python} stage.py second
                deps: [first.out]
                outs: [second.out]
            """
        )
    )
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("git", "add", "-A")
    run("git", "commit", "-q", "-m", "pipeline")
    run("dvc", "repro")
    run("dvc", "exp", "run", "-n", "bigger-x", "-S", "x=2")

    parents, children = by_role(runs(store))
    assert len(parents) == 2 and len(children) == 4
    by_id = {p.info.run_id: p for p in parents}
    groups: dict[str, list[str]] = {}
    for child in children:
        parent = by_id[child.data.tags["mlflow.parentRunId"]]
        groups.setdefault(parent.info.run_name, []).append(child.data.tags["stage"])
    assert groups.pop("bigger-x") == ["first", "second"]
    (plain,) = groups.values()
    assert plain == ["first", "second"]
    experiment = next(p for p in parents if p.info.run_name == "bigger-x")
    assert experiment.data.tags["dvc_exp_name"] == "bigger-x"
    assert experiment.data.metrics == {"first.x_seen": 2.0, "second.x_seen": 2.0}


def test_evaluate_logs_the_json_keys_histories_and_files(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluate stage's MLflow run, through the runner every stage uses: the metrics are
    evaluate.json's keys exactly (none of the full file's thousands), cos@h is one history
    per method and rollout, and the JSON files and plots go along as artifacts."""
    import json

    import mlflow

    from nextframe.pipeline import run_stage
    from nextframe.pipeline.evaluate import EvaluateSummary

    repo = Path(__file__).resolve().parents[1]
    headline = json.loads((repo / "metrics" / "evaluate.json").read_text())
    full = {**headline, **{f"splitter.step.cos@{h}.ci_low": 0.5 for h in range(1, 500)}}
    names = ("evaluate.json", "evaluate_full.json", "plots/cos_at_h.csv")
    files = [tmp_path / "metrics" / name for name in names]  # the store fixture's cwd
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
    curves = {"splitter.step": [0.9, 0.8, 0.7], "copy_start.chain": [0.85, 0.75, 0.65]}
    summary = EvaluateSummary(full, headline, curves, files=files)
    run_stage(
        "evaluate",
        ("evaluate",),
        repo / "params.yaml",
        lambda params, log: summary,
        artifacts=lambda s: s.files,
        history=lambda s: s.steps(),
    )

    parents, children = by_role(runs(store))
    (child,) = children
    histories = {f"{series}.cos_at_h" for series in curves}  # their latest value shows too
    assert set(child.data.metrics) == {*headline, "seconds", *histories}
    assert "splitter.step.cos_mean.worst_paired_low" in child.data.metrics
    assert child.data.metrics["splitter.step.psnr"] == headline["splitter.step.psnr"]
    assert set(parents[0].data.metrics) == {f"evaluate.{key}" for key in {*headline, "seconds"}}
    client = mlflow.tracking.MlflowClient(tracking_uri=store)
    run_id = child.info.run_id
    for series, values in curves.items():
        history = client.get_metric_history(run_id, f"{series}.cos_at_h")
        assert sorted((m.step, m.value) for m in history) == [
            (1, values[0]),
            (2, values[1]),
            (3, values[2]),
        ]
    listed = {a.path for a in client.list_artifacts(run_id, "metrics")}
    assert listed == {"metrics/evaluate.json", "metrics/evaluate_full.json", "metrics/plots"}
    plots = [a.path for a in client.list_artifacts(run_id, "metrics/plots")]
    assert plots == ["metrics/plots/cos_at_h.csv"]
