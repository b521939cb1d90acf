"""One module per DVC stage, and the runner every stage script goes through.

Each stage module (``download``, ``select_frames``, ``embed``, ``train``, ``generate``,
``evaluate``) has ``run(inputs..., outputs..., params) -> Summary``: it reads its inputs,
calls the building blocks in ``data/``, ``backbones/``, ``model/``, ``metrics.py`` and
``render.py``, and writes its outputs atomically. It is the only place that knows the
file layout of its stage, and it declares in ``PARAMS`` the params keys it reads; those
are the keys the stage's ``--help`` lists, its MLflow run logs and ``dvc.yaml`` names.

``run_stage`` is the same recipe for every stage script: load and validate params, fix
the CPU kernels and threads, open the MLflow child run, do the work, log the summary
(with ``seconds``) and report. User errors exit 2 without a traceback; Ctrl-C exits 130
with the run KILLED.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Protocol

import typer

from nextframe.config import Params, ParamsError, describe_keys, load_params
from nextframe.device import pin_cpu_kernels, set_threads
from nextframe.errors import report_user_errors
from nextframe.tracking import StageRun, stage_run

PARAMS_FILE = Path("params.yaml")
ParamsFileOption = Annotated[
    Path, typer.Option("--params", help="params.yaml to read (run from the repository root)")
]


class Summary(Protocol):
    """What a stage's ``run`` returns: numbers for MLflow and a line for the terminal."""

    def metrics(self) -> Mapping[str, object]: ...

    def describe(self) -> str: ...


StageWork = Callable[[Params, StageRun], Summary]
StepMetrics = Iterable[tuple[int, Mapping[str, object]]]  # (step, metrics at that step)


@report_user_errors
def run_stage(
    stage: str,
    keys: tuple[str, ...],
    params_file: Path,
    work: StageWork,
    artifacts: Callable[[Summary], Iterable[Path]] = lambda summary: (),
    history: Callable[[Summary], StepMetrics] = lambda summary: (),
) -> None:
    """Run ``work`` as the stage ``stage`` reading params ``keys`` (see the module doc);
    ``artifacts`` names the files to keep with the run, ``history`` the per-step values
    to log as metric histories (one key per series, the step as MLflow's step)."""
    params = load_params(params_file)
    pin_cpu_kernels(params.runtime.cpu_kernels)
    set_threads(params.runtime.threads)
    started = time.perf_counter()
    with stage_run(stage, params.select(keys), params.model_dump(mode="json")) as run:
        summary = work(params, run)
        metrics = dict(summary.metrics())
        metrics.setdefault("seconds", time.perf_counter() - started)
        run.log_summary(metrics)
        for step, values in history(summary):
            run.log_metrics(values, step=step)
        run.log_artifacts(artifacts(summary))
    print(summary.describe())


def unwrap(doc: str | None) -> str:
    """A docstring for ``--help``: its hard-wrapped lines joined into paragraphs (Typer's
    rich help keeps every newline)."""
    paragraphs = (doc or "").strip().split("\n\n")
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in paragraphs)


def params_help(keys: tuple[str, ...], params_file: Path = PARAMS_FILE) -> str:
    """The params a stage reads, one per line: ``key = current value: meaning``.

    Read from ``params_file`` in the working directory (the repository root, where DVC
    runs stages); where it cannot be read, the defaults are shown and the line says so.
    """
    note = f"Settings read from {params_file} (current values):"
    try:
        params = load_params(params_file)
    except ParamsError as exc:
        params = Params()
        note = f"Settings ({params_file} unreadable: {str(exc).splitlines()[0]}; defaults shown):"
    lines = [f"{item.key} = {item.value!r}: {item.meaning}" for item in describe_keys(params, keys)]
    # Typer renders help with rich, which would read "[...]" as markup and drop it.
    return "\n".join([note, *lines]).replace("[", r"\[")
