"""DVC conventions: the model registry's artifacts, and the CI report a pull request gets."""

from __future__ import annotations

from pathlib import Path

import yaml
from test_pipeline_e2e import copy_repo, run

REPO = Path(__file__).resolve().parents[1]


def test_every_artifact_is_a_trained_model_a_stage_writes() -> None:
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    outs_of = {
        name: {next(iter(out)) if isinstance(out, dict) else out for out in stage.get("outs", [])}
        for name, stage in pipeline["stages"].items()
    }
    outs = set().union(*outs_of.values())
    artifacts = pipeline["artifacts"]
    assert set(artifacts) == {"methods"}  # models/<method>/ for every fitted method
    for name, artifact in artifacts.items():
        assert artifact["type"] == "model" and artifact["desc"], name
        assert artifact["path"] in outs_of["train"], name
        assert artifact["path"] in outs


def test_dvc_reads_the_artifacts() -> None:
    output = run(["dvc", "stage", "list"], REPO, timeout=120)  # dvc.yaml passes DVC's schema
    assert "train" in output


def test_ci_workflow_pulls_reproduces_and_posts_the_report() -> None:
    workflow = yaml.safe_load((REPO / "docs" / "ci" / "cml.yaml").read_text())
    assert "pull_request" in str(workflow[True])  # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["report"]["steps"]
    commands = "\n".join(step.get("run", "") for step in steps)
    for needed in ("dvc pull", "dvc repro", "scripts/pr_report.sh", "cml comment create"):
        assert needed in commands, needed
    assert any(step.get("uses", "").startswith("iterative/setup-cml") for step in steps)


def test_pr_report_diffs_params_and_metrics_against_the_base(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("  horizon: 7", "  horizon: 6", 1))
    run(["git", "commit", "-q", "-am", "shorter horizon"], repo)
    run(["bash", "scripts/pr_report.sh", "HEAD~1", "report"], repo, timeout=300)
    report = (repo / "report" / "report.md").read_text()
    assert "## Params and metrics: this branch against HEAD~1" in report
    row = next(line for line in report.splitlines() if "evaluate.horizon" in line)
    assert "| 7 " in row and "| 6 " in row
    assert (repo / "report" / "plots" / "index.html").is_file()
