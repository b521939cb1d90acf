"""One self-contained check of a CUDA machine with no network, in about 8 minutes at most.

Prints one JSON line per figure (``"case"`` names it), so the whole output can be pasted
into an issue:

- ``env``: torch and CUDA versions, the GPUs.
- ``meta`` / ``build_*`` / ``embed`` / ``texts`` / ``decode`` (relayed from
  ``benchmarks/real_size.py``): Kandinsky 2.2's real-size components with random weights,
  fp16, throughput across batch sizes and peak GPU memory per case.
- ``repro``: a short end-to-end ``dvc repro`` of the toy defaults in a fresh copy of the
  repository (its tracked files, a new git repository), with ``backbone.device`` and
  ``train.device`` set to cuda: seconds per stage and in all, and the headline metrics.
- ``decode_sharding``: not measured yet (generate does not shard its decoding); the line
  says so, so a reader does not take a missing line for a failure.

``--cpu`` is the dry run for a machine without a GPU (tests/test_gpu_check.py runs it):
``real_size.py --meta-only`` (counts and shapes, no weights in memory) and the repro on
small params (16 clips, 3 epochs, the retrieval decoder) on the CPU. Every step runs
even when an earlier one failed; the exit status is 1 if any failed.

    bash benchmarks/gpu_check.sh            # on the GPU machine
    bash benchmarks/gpu_check.sh --cpu      # the dry run, anywhere
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated

import torch
import typer
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("download", "select_frames", "embed", "train", "generate", "evaluate")
# The dry run's params: about a minute of CPU instead of several (as tests/test_remotes.py).
CPU_PARAMS = {
    "download.synthetic.n_clips": 16,
    "download.synthetic.n_frames": 12,
    "train.epochs": 3,
    "generate.decoders": ["retrieval"],
    "generate.decode_clips": 1,
    "evaluate.bootstrap": 100,
    "evaluate.contact_sheets": 1,
}
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "gpu check",
    "GIT_AUTHOR_EMAIL": "gpu-check@nextframe.invalid",
    "GIT_COMMITTER_NAME": "gpu check",
    "GIT_COMMITTER_EMAIL": "gpu-check@nextframe.invalid",
}
STAGE_LINE = re.compile(r"Running stage '(\w+)'")

app = typer.Typer(add_completion=False)


def emit(record: dict) -> None:
    typer.echo(json.dumps(record, sort_keys=True), nl=True)
    sys.stdout.flush()


def env_case() -> dict:
    cuda = torch.cuda.is_available()
    return {
        "case": "env",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda
        else [],
    }


def relay(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> bool:
    """Run ``args``; print its JSON lines as they are; report a failure as a JSON line."""
    started = time.perf_counter()
    try:
        result = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        emit({"case": "failed", "command": args[1:3], "reason": f"timeout after {timeout}s"})
        return False
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            typer.echo(line)
    if result.returncode != 0:
        emit(
            {
                "case": "failed",
                "command": args[1:3],
                "returncode": result.returncode,
                "seconds": round(time.perf_counter() - started, 1),
                "stderr_tail": result.stderr[-2000:],
            }
        )
        return False
    return True


def tracked_files() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [name for name in listing.split("\0") if name and (REPO / name).is_file()]


def fresh_copy(destination: Path, env: dict[str, str]) -> None:
    """The repository as a fresh clone holds it, as a new git repository."""
    for name in tracked_files():
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run(["git", *args], cwd=destination, env=env, check=True, capture_output=True)


def set_params(repo: Path, overrides: dict[str, object]) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in overrides.items():
        *parents, key = dotted.split(".")
        section = params
        for name in parents:
            section = section.setdefault(name, {})
        section[key] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def repro_case(device: str, overrides: dict[str, object], env: dict[str, str], timeout: float):
    """``dvc repro`` in a fresh copy; one JSON line with the stage times and headline."""
    with tempfile.TemporaryDirectory(prefix="nextframe-gpu-check-") as scratch:
        repo = Path(scratch)
        fresh_copy(repo, env)
        set_params(repo, {**overrides, "backbone.device": device, "train.device": device})
        run_env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
        started = time.perf_counter()
        process = subprocess.Popen(
            ["dvc", "repro"],
            cwd=repo,
            env=run_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        killer = threading.Timer(timeout, process.kill)  # a hung stage ends the step
        killer.start()
        stage_times: dict[str, float] = {}
        current, mark, tail = None, started, []
        assert process.stdout is not None
        for line in process.stdout:  # stage starts, as dvc prints them
            tail = [*tail[-40:], line]
            match = STAGE_LINE.search(line)
            if match:
                now = time.perf_counter()
                if current:
                    stage_times[current] = round(now - mark, 1)
                current, mark = match[1], now
        code = process.wait()
        killer.cancel()
        total = time.perf_counter() - started
        if current:
            stage_times[current] = round(time.perf_counter() - mark, 1)
        record = {"case": "repro", "device": device, "seconds": round(total, 1)}
        if code != 0:
            emit({**record, "case": "failed", "returncode": code, "tail": "".join(tail)[-3000:]})
            return False
        headline = json.loads((repo / "metrics" / "evaluate.json").read_text())
        keys = ("n_clips", "splitter.step.cos_mean", "splitter.chain.cos_mean")
        emit(
            {
                **record,
                "stage_seconds": stage_times,
                "headline": {key: headline.get(key) for key in keys},
            }
        )
        return True


@app.command()
def main(
    cpu: Annotated[bool, typer.Option("--cpu", help="dry run on the CPU, small sizes")] = False,
    timeout_s: Annotated[float, typer.Option(help="most seconds of each step")] = 300.0,
) -> None:
    env = {**os.environ, **GIT_IDENTITY}
    emit(env_case())
    if not cpu and not torch.cuda.is_available():
        emit({"case": "failed", "reason": "no CUDA device; run with --cpu for the dry run"})
        raise typer.Exit(1)
    real_size = [sys.executable, str(REPO / "benchmarks" / "real_size.py")]
    real_size += ["--meta-only"] if cpu else ["--device", "cuda"]
    ok = relay(real_size, REPO, env, timeout_s)
    emit(
        {
            "case": "decode_sharding",
            "skipped": "generate does not shard its decoding yet (issue 18, item 4)",
        }
    )
    device = "cpu" if cpu else "cuda"
    ok = repro_case(device, CPU_PARAMS if cpu else {}, env, timeout_s) and ok
    if not ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
