"""MLflow: one parent run per pipeline run, one child run per stage.

DVC decides *what* reruns; MLflow keeps the history of every run, so a variant can be
found again after its workspace is gone. DVC runs each stage as its own process and says
nothing about which ``dvc repro`` a stage belongs to, so the parent is found by what makes
a pipeline run what it is (its ``Provenance``): the git commit, the uncommitted code
changes, the params and the DVC experiment's name (``DVC_EXP_NAME``, set by
``dvc exp run``). Every stage of one ``dvc repro`` or ``dvc exp run`` shares those and
lands under one parent; a stage rerun alone (``dvc repro -s train``) with the same code
and params lands under the same parent as the run it completes; a change to code or
params starts a new parent; so does a stage that already finished under the parent it
would join (``dvc repro -f``, or a stage rerun after its outputs were removed): that is a
new run of the pipeline, not the completion of the old one. The parent holds every params
key, the provenance tags and each stage's final metrics (prefixed with the stage name);
its status is the last stage's.

The store is ``sqlite:///<repo>/mlflow.db`` (``<repo>`` is ``DVC_ROOT`` when DVC runs the
stage, so temporary experiment workspaces log to the repository's store) unless
``MLFLOW_TRACKING_URI`` says otherwise, e.g. a team's ``http://host:5000`` server, which
keeps artifacts in its own store. A local store keeps them in ``<repo>/mlartifacts``;
MLflow records that folder as an absolute path, so when the repository has been copied or
moved (the database now lies elsewhere than the folder it names) the store's paths are
rewritten to the new place first, and the copy never writes into the original.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXPERIMENT_NAME = "nextframe"
DEFAULT_DB = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
PIPELINE_KEY_TAG = "nextframe.pipeline_key"
ROLE_TAG = "nextframe.role"  # "pipeline" on parents, "stage" on children
# Code whose uncommitted changes make a different pipeline run (outputs DVC writes into
# git, dvc.lock and metrics/, are deliberately not among them).
CODE_PATHS = ("src", "stages", "dvc.yaml", "pyproject.toml", "requirements.lock")
OUTPUT_PATHS = ("dvc.lock", "metrics")


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


def metric_name(key: str) -> str:
    """A metrics-JSON key as MLflow allows it: ``cos@1`` becomes ``cos_at_1``."""
    return key.replace("@", "_at_")


def digest(payload: Any) -> str:
    """A short stable digest of a JSON-able value."""
    encoded = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


def _git(args: list[str], cwd: Path | None) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout


def git_commit(cwd: Path | None = None) -> str:
    """The current commit, or ``unknown`` outside a git checkout."""
    output = _git(["rev-parse", "HEAD"], cwd)
    return output.strip() if output else "unknown"


@dataclass(frozen=True)
class Provenance:
    """What identifies a pipeline run; every field becomes a tag of its runs."""

    git_commit: str
    git_dirty: bool  # tracked files differ from the commit (pipeline outputs aside)
    code_digest: str  # digest of the uncommitted code changes; "" when there are none
    experiment: str  # DVC_EXP_NAME, "" outside ``dvc exp run``
    params_digest: str

    def pipeline_key(self) -> str:
        return digest([self.git_commit, self.code_digest, self.experiment, self.params_digest])

    def tags(self) -> dict[str, str]:
        return {
            "git_commit": self.git_commit,
            "git_dirty": str(self.git_dirty).lower(),
            "dvc_exp_name": self.experiment,
            "params_digest": self.params_digest,
            PIPELINE_KEY_TAG: self.pipeline_key(),
        }


def provenance(params: Mapping[str, Any], cwd: Path | None = None) -> Provenance:
    """The provenance of a run of the pipeline in ``cwd`` with ``params``."""
    excluded = [f":(exclude){path}" for path in OUTPUT_PATHS]
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", *excluded], cwd)
    code_diff = _git(["diff", "HEAD", "--", *CODE_PATHS], cwd) or ""
    return Provenance(
        git_commit=git_commit(cwd),
        git_dirty=bool(status and status.strip()),
        code_digest=digest(code_diff) if code_diff else "",
        experiment=os.environ.get("DVC_EXP_NAME", ""),
        params_digest=digest(params),
    )


def repository_root() -> Path:
    """Where the default store lives: the DVC repository, even for temporary workspaces."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd())


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repository_root() / DEFAULT_DB}"


class StageRun:
    """The handle a stage logs through; keeps stage code free of MLflow details."""

    def __init__(self, client: Any, run_id: str, parent_id: str, stage: str) -> None:
        self._client = client
        self.run_id = run_id
        self.parent_id = parent_id
        self.stage = stage

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log (nested) numeric metrics on the stage's run, e.g. one epoch's losses."""
        self._log(self.run_id, numeric(metrics), step)

    def log_summary(self, metrics: Mapping[str, Any]) -> None:
        """The stage's final metrics: on its run, and on the parent as ``<stage>.<key>``."""
        flat = numeric(metrics)
        self._log(self.run_id, flat, None)
        self._log(self.parent_id, {f"{self.stage}.{k}": v for k, v in flat.items()}, None)

    def log_artifacts(self, paths: Iterable[str | Path]) -> None:
        """Upload files; one inside the working directory keeps its folder there
        (``metrics/plots/train_loss.csv``), so the run's artifacts read like the repository."""
        for path in paths:
            self._client.log_artifact(self.run_id, str(path), artifact_folder(Path(path)))

    def _log(self, run_id: str, metrics: Mapping[str, float], step: int | None) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        batch = [Metric(metric_name(key), value, now, step or 0) for key, value in metrics.items()]
        for first in range(0, len(batch), 1000):  # MLflow's batch limit
            self._client.log_batch(run_id, metrics=batch[first : first + 1000])


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Flatten and keep the numbers (bools count); strings and lists are not metrics."""
    return {
        key: float(value)
        for key, value in flatten(metrics).items()
        if isinstance(value, (int, float))
    }


def artifact_folder(path: Path) -> str | None:
    """The artifact folder of ``path``: its folder relative to the working directory, or
    the run's root for a file at the top or outside it."""
    try:
        folder = path.resolve().parent.relative_to(Path.cwd().resolve())
    except ValueError:
        return None
    return folder.as_posix() if folder.parts else None


def local_database(uri: str) -> Path | None:
    """The database file of a local ``sqlite:///`` store; None for a server."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _experiment_id(client: Any, uri: str) -> str:
    database = local_database(uri)
    # A local store keeps artifacts beside the database, not in whatever folder the
    # first stage happened to run in; a server decides for itself.
    location = (database.resolve().parent / ARTIFACT_DIR).as_uri() if database else None
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        return client.create_experiment(EXPERIMENT_NAME, artifact_location=location)
    old = experiment.artifact_location
    if database and location != old and is_default_location(old):
        relocate_artifacts(database, old, location)
    return experiment.experiment_id


def is_default_location(location: str) -> bool:
    """Whether ``location`` is a folder this module chose beside a local database (and may
    follow the database when it moves), not one a user or server picked."""
    return location.startswith("file://") and location.rstrip("/").endswith(f"/{ARTIFACT_DIR}")


def relocate_artifacts(database: Path, old: str, new: str) -> None:
    """Point a moved or copied store's artifact paths (the experiment's location and every
    run's artifact URI under it) from ``old`` to ``new``: new runs then write into the new
    place, and old runs read the artifacts that were copied along. MLflow has no API for
    this; the two columns have been in its schema since its first SQL store."""
    with closing(sqlite3.connect(database)) as connection, connection:
        connection.execute(
            "UPDATE experiments SET artifact_location = ? WHERE artifact_location = ?",
            (new, old),
        )
        connection.execute(
            "UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
            "WHERE substr(artifact_uri, 1, ?) = ?",
            (new, len(old) + 1, len(old) + 1, f"{old}/"),
        )


def _parent_run(
    client: Any,
    experiment_id: str,
    origin: Provenance,
    all_params: Mapping[str, Any],
    stage: str,
) -> str:
    """The id of the pipeline run ``origin``'s ``stage`` belongs to: the latest parent with
    the same provenance, unless ``stage`` already finished under it (a forced or repeated
    run), else a new one."""
    key = origin.pipeline_key()
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PIPELINE_KEY_TAG}` = '{key}' and tags.`{ROLE_TAG}` = 'pipeline'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if found and not _finished_under(client, experiment_id, found[0].info.run_id, stage):
        return found[0].info.run_id
    name = origin.experiment or f"pipeline {origin.git_commit[:7]}"
    run = client.create_run(
        experiment_id, run_name=name, tags={**origin.tags(), ROLE_TAG: "pipeline"}
    )
    _log_params(client, run.info.run_id, all_params)
    return run.info.run_id


def _finished_under(client: Any, experiment_id: str, parent_id: str, stage: str) -> bool:
    """Whether ``stage`` has a FINISHED child run under ``parent_id``."""
    done = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`mlflow.parentRunId` = '{parent_id}' and tags.stage = '{stage}' "
            "and attributes.status = 'FINISHED'"
        ),
        max_results=1,
    )
    return bool(done)


def _log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param

    flat = [Param(key, str(value)) for key, value in flatten(params).items()]
    for first in range(0, len(flat), 100):  # MLflow's batch limit for params
        client.log_batch(run_id, params=flat[first : first + 100])


class UntrackedRun(StageRun):
    """The run of a launched stage's rank other than 0: its logs go nowhere."""

    def __init__(self, stage: str) -> None:
        super().__init__(client=None, run_id="", parent_id="", stage=stage)

    def _log(self, run_id: str, metrics: Mapping[str, float], step: int | None) -> None:
        pass

    def log_artifacts(self, paths: Iterable[str | Path]) -> None:
        pass


@contextmanager
def stage_run(
    stage: str, params: Mapping[str, Any], all_params: Mapping[str, Any] | None = None
) -> Iterator[StageRun]:
    """A child run for ``stage`` (logging ``params``, the keys it reads) under its pipeline's
    parent run (holding ``all_params``). Ends FINISHED, FAILED, or KILLED on Ctrl-C or
    SIGTERM (``errors.report_user_errors`` turns SIGTERM into a ``KeyboardInterrupt``).

    A stage started by a launcher on several processes is tracked by its rank 0 only: the
    other ranks (``RANK`` > 0) get a run that logs nothing."""
    if os.environ.get("RANK", "0") != "0":
        yield UntrackedRun(stage)
        return
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    every_param = all_params if all_params is not None else params
    origin = provenance(every_param)
    experiment_id = _experiment_id(client, uri)
    parent_id = _parent_run(client, experiment_id, origin, every_param, stage)
    tags = {
        **origin.tags(),
        "stage": stage,
        ROLE_TAG: "stage",
        "mlflow.parentRunId": parent_id,
    }
    run = client.create_run(experiment_id, run_name=stage, tags=tags)
    run_id = run.info.run_id
    _log_params(client, run_id, params)
    status = "FAILED"
    try:
        yield StageRun(client, run_id, parent_id, stage)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(run_id, status)
        client.set_terminated(parent_id, status)
