"""`dvc plots show` as a researcher uses it, in a scratch repository with the project's
dvc.yaml, templates and .dvc/config: the page draws with no network (no script is loaded
from anywhere), the cos@h plot gives each method one colour and each rollout one dash,
and the loss plot has a log axis."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}


def dvc(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["dvc", *args], cwd=repo, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DVC repository with the project's plots set-up and plot files of a run's shape."""
    root = tmp_path_factory.mktemp("plots")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")
    plots = root / "metrics" / "plots"
    plots.mkdir(parents=True)
    losses = ["epoch,train_total,val_total"]
    losses += [f"{epoch},{4.0 / epoch**2:.4g},{3.0 / epoch**2:.4g}" for epoch in range(1, 11)]
    (plots / "train_loss.csv").write_text("\n".join(losses) + "\n")
    series = [
        f"{m}.{r}" for m in ("splitter", "copy_start", "linear", "slerp") for r in ("chain", "step")
    ]
    rows = ["h," + ",".join(series)]
    rows += [f"{h}," + ",".join(f"{0.9 - 0.01 * h * i:.3f}" for i in range(8)) for h in range(1, 7)]
    (plots / "cos_at_h.csv").write_text("\n".join(rows) + "\n")
    return root


def specs(repo: Path) -> dict[str, dict]:
    shown = dvc(repo, "plots", "show", "--json")
    data = json.loads(shown[shown.index("{") :])["data"]
    return {name: data[name][0]["content"] for name in ("cos_at_h", "train_loss")}


def test_the_page_loads_no_script_from_the_network(repo: Path) -> None:
    dvc(repo, "plots", "show")
    page = (repo / "dvc_plots" / "index.html").read_text(encoding="utf8")
    assert not re.search(r"<script[^>]*\bsrc=", page)  # DVC's default loads three from a CDN
    assert "window.vegaEmbed=" in page  # Vega-Embed, Vega-Lite and Vega, inlined
    assert "vegaEmbed('#train_loss'" in page and "vegaEmbed('#cos_at_h'" in page


def test_one_colour_per_method_one_dash_per_rollout(repo: Path) -> None:
    cos = specs(repo)["cos_at_h"]
    derived = {step["as"]: step["calculate"] for step in cos["transform"]}
    encoding = cos["encoding"]
    assert encoding["color"]["field"] == "method" and encoding["strokeDash"]["field"] == "rollout"
    # the page splits each row's series name, "<method>.<rollout>", into the two
    assert derived == {
        "method": "split(datum.field, '.')[0]",
        "rollout": "split(datum.field, '.')[1]",
    }
    fields = {row["field"] for row in cos["data"]["values"]}
    assert {field.split(".")[0] for field in fields} == {
        "splitter",
        "copy_start",
        "linear",
        "slerp",
    }
    assert {field.split(".")[1] for field in fields} == {"chain", "step"}


def test_the_loss_is_on_a_log_axis(repo: Path) -> None:
    loss = specs(repo)["train_loss"]
    assert loss["encoding"]["y"]["scale"] == {"type": "log"}
    assert {row["field"] for row in loss["data"]["values"]} == {"train_total", "val_total"}


def test_the_committed_page_is_the_one_the_script_makes() -> None:
    pytest.importorskip("vl_convert", reason="vl-convert-python builds the page")
    script = REPO / "scripts" / "offline_plots.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
