"""Time and peak memory of the O(D) rotation loss against the seed's materialised B x D x D form.

The seed built ``R = I + (n2 n1^T - n1 n2^T) sin + (n1 n1^T + n2 n2^T)(cos - 1)`` as a
[B, D, D] tensor every step and multiplied the probe through it. ``rotation_loss`` does the
same in two dot products per row. Both compute the loss and its gradient (forward +
backward), the way training uses them. Peak memory above the starting point is measured
with the CUDA allocator on a GPU, and on CPU (Linux) as the growth of the process's peak
resident set (``VmHWM``, reset before each call through ``/proc/self/clear_refs``). On CPU
the memory pass runs in a child process with ``MALLOC_MMAP_THRESHOLD_`` fixed, so that
glibc maps every sizeable buffer fresh instead of reusing resident pages (which would hide
the small version's allocations); timing runs here with the default allocator.

Run: ``python benchmarks/rotation.py [--device cuda] [--repeats 5]``
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import typer

from nextframe.model.rotation import plane, rotation_loss

app = typer.Typer(add_completion=False, help=__doc__)


def materialised_loss(a: torch.Tensor, b: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """The seed's way: build R as [B, D, D], then |(R - I) u|^2 (applied as R u, not u R)."""
    rotation = plane(a, b)
    n1, n2 = rotation.n1.unsqueeze(-1), rotation.n2.unsqueeze(-1)  # [B, D, 1]
    angle = rotation.angle.unsqueeze(-1)  # [B, 1, 1]
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    matrix = (
        eye
        + (n2 @ n1.transpose(1, 2) - n1 @ n2.transpose(1, 2)) * torch.sin(angle)
        + (n1 @ n1.transpose(1, 2) + n2 @ n2.transpose(1, 2)) * (torch.cos(angle) - 1)
    )  # [B, D, D]
    change = (matrix - eye) @ probe.unsqueeze(-1)  # [B, D, 1]
    return change.squeeze(-1).square().sum(dim=-1)


def _proc_bytes(key: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{key}:\s+(\d+) kB", status).group(1)) * 1024


def _reset_peak(device: torch.device) -> int:
    """Start a peak-memory window; returns the baseline to subtract."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    return _proc_bytes("VmRSS")


def _peak(device: torch.device, baseline: int) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - baseline
    return _proc_bytes("VmHWM") - baseline


def measure(
    loss_fn: Callable, batch: int, dim: int, device: torch.device, repeats: int
) -> tuple[float, float]:
    """Median seconds per forward+backward and the largest peak bytes over the timed calls."""
    generator = torch.Generator(device="cpu").manual_seed(0)
    a, b = (
        torch.randn(batch, dim, generator=generator).to(device).requires_grad_(True)
        for _ in range(2)
    )
    probe = torch.randn(dim, generator=generator).to(device)
    times, peak = [], 0
    for attempt in range(repeats + 1):
        a.grad = b.grad = None
        baseline = _reset_peak(device)
        began = time.perf_counter()
        loss_fn(a, b, probe).mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - began
        if attempt:  # the first call warms up (lazy allocations, kernel selection)
            times.append(elapsed)
            peak = max(peak, _peak(device, baseline))
    return sorted(times)[len(times) // 2], float(peak)


CASES = [(batch, dim) for dim in (768, 1280) for batch in (64, 256)]
LOSSES = {"O(D)": rotation_loss, "BxDxD": materialised_loss}


def cpu_peaks(repeats: int) -> dict[str, list[float]]:
    """Peak bytes per loss and case, measured in a child process (see the module docstring)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    command = [
        sys.executable,
        __file__,
        "--device",
        "cpu",
        "--repeats",
        str(repeats),
        "--memory-only",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@app.command()
def main(
    device: str = typer.Option("auto", help="cpu, cuda or auto"),
    repeats: int = typer.Option(5, help="timed repeats per case (median reported)"),
    memory_only: bool = typer.Option(False, hidden=True, help="print peak bytes as JSON and exit"),
) -> None:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    results = {
        name: [measure(fn, *case, target, repeats) for case in CASES] for name, fn in LOSSES.items()
    }
    if memory_only:
        typer.echo(json.dumps({name: [peak for _, peak in rows] for name, rows in results.items()}))
        return
    peaks = (
        cpu_peaks(repeats)
        if target.type == "cpu"
        else {n: [p for _, p in r] for n, r in results.items()}
    )
    typer.echo(f"device {target}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    typer.echo("    B     D | O(D) ms  BxDxD ms  time ratio | O(D) MiB  BxDxD MiB  memory ratio")
    for index, (batch, dim) in enumerate(CASES):
        fast_s, slow_s = results["O(D)"][index][0], results["BxDxD"][index][0]
        fast_peak, slow_peak = peaks["O(D)"][index], peaks["BxDxD"][index]
        times = f"{fast_s * 1e3:7.2f}  {slow_s * 1e3:8.2f}  {slow_s / fast_s:10.1f}"
        mib = f"{fast_peak / 2**20:8.2f}  {slow_peak / 2**20:9.1f}"
        typer.echo(f"{batch:5d} {dim:5d} | {times} | {mib}  {slow_peak / max(fast_peak, 1):12.0f}")


if __name__ == "__main__":
    app()
