"""The embed stage on one process against several under a launcher (CPU, the Kandinsky 2.2
test fixture: kandinsky22's code at toy width).

Writes ``--frames`` random PNGs in ``--clips`` clips (``benchmarks/embed.py``'s inputs) and
runs ``stages/embed.py`` as DVC would, on a fresh output folder each time: once per
``--processes`` value, the larger counts under ``NEXTFRAME_LAUNCHER="python -m
torch.distributed.run --standalone --nproc-per-node N"``, with ``--cores`` CPU threads
shared out (``runtime.threads`` = cores / processes). Runs alternate between the settings
``--repeats`` times. One JSON line per run: wall seconds of the whole stage (start-up,
model load, both tables, the merge), the stage's own frames/s and captions/s (from its
summary line: rank 0's view of the whole run), CPU seconds of the children, and the load
average before and after (the machine may be shared: compare runs side by side).

    python benchmarks/embed_processes.py --frames 2048 --clips 256 --processes 1 --processes 2
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed import make_inputs

from nextframe.backbones import kandinsky_fixture
from nextframe.distributed import LAUNCHER_ENV

STAGE = Path(__file__).resolve().parents[1] / "stages" / "embed.py"
SUMMARY = re.compile(
    r"encoded (\d+) frames \(([\d.]+)/s\) and (\d+) captions \(([\d.]+)/s\), the rest reused; "
    r"([\d.]+)s"
)
app = typer.Typer(add_completion=False)


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_stage(root: Path, out_dir: Path, processes: int, threads: int, batch_size: int) -> dict:
    params = root / f"params-{processes}-{threads}.yaml"
    settings = {
        "backbone": kandinsky_fixture.backbone_params(
            device="cpu", batch_size=batch_size
        ).model_dump(),
        "runtime": {"threads": threads},
    }
    params.write_text(yaml.safe_dump(settings))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'runs.db'}"}
    env.pop(LAUNCHER_ENV, None)
    if processes > 1:
        launcher = f"{sys.executable} -m torch.distributed.run --standalone"
        env[LAUNCHER_ENV] = f"{launcher} --nproc-per-node {processes}"
    args = [str(root / "manifest.parquet"), str(root / "frames" / "frames.parquet"), str(out_dir)]
    load_before, cpu_before, started = (
        os.getloadavg()[0],
        children_cpu_seconds(),
        time.perf_counter(),
    )
    result = subprocess.run(
        [sys.executable, str(STAGE), *args, "--params", str(params)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    found = SUMMARY.search(result.stdout)
    frames, frames_per_s, captions, captions_per_s, stage_s = found.groups()
    return {
        "processes": processes,
        "threads_per_process": settings["runtime"]["threads"],
        "wall_s": round(wall, 2),
        "stage_s": float(stage_s),  # inside run(): after imports and start-up
        "cpu_s": round(children_cpu_seconds() - cpu_before, 2),
        "frames": int(frames),
        "frames_per_s": float(frames_per_s),
        "captions": int(captions),
        "captions_per_s": float(captions_per_s),
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


@app.command()
def main(
    frames: Annotated[int, typer.Option(help="frames to embed")] = 2048,
    clips: Annotated[int, typer.Option(help="clips (one caption each)")] = 256,
    size: Annotated[int, typer.Option(help="side of the PNGs in px")] = 64,
    processes: Annotated[list[int] | None, typer.Option(help="process counts")] = None,
    cores: Annotated[int, typer.Option(help="CPU threads shared by the processes")] = 2,
    batch_size: Annotated[int, typer.Option(help="backbone.batch_size")] = 32,
    repeats: Annotated[int, typer.Option(help="runs per setting, alternating")] = 2,
    extra_threads: Annotated[
        list[int] | None, typer.Option(help="also run each count with these threads")
    ] = None,
) -> None:
    extra_threads = extra_threads or []
    kandinsky_fixture.ensure_fixture()  # build outside the timings
    with tempfile.TemporaryDirectory(prefix="nextframe-bench-") as tmp:
        root = Path(tmp)
        make_inputs(root, frames, clips, size)
        for repeat in range(repeats):
            for count in processes or [1, 2]:
                for threads in sorted({max(1, cores // count), *extra_threads}):
                    out_dir = root / f"out-{count}-{threads}-{repeat}"
                    record = run_stage(root, out_dir, count, threads, batch_size)
                    typer.echo(json.dumps({"repeat": repeat, **record}, sort_keys=True))


if __name__ == "__main__":
    app()
