"""Kandinsky 2.2 at its published size (random weights) through the project's backbone code.

Builds the components from ``nextframe.backbones.kandinsky22_configs`` and prints one JSON
line per case:

- ``meta``: per component, its parameter count against the published one, and the output
  shapes of a forward pass on the meta device (no memory, no time): image embeds
  [B, 1280], text embeds [B, 1280], hidden states [B, 77, 1280], the prior's output
  [B, 1280], the UNet's [B, 8, h, w] and MoVQ's pictures [B, 3, 8h, 8w].
- ``embed``, ``texts``, ``decode`` on the run device, through ``UnclipBackbone``
  (``encode_images``: preprocessing and the image tower; ``encode_texts``: text tower and
  the prior's ``--prior-steps`` steps with guidance; ``decode``: ``--decode-steps`` UNet
  steps with guidance, then MoVQ), one line per batch size: items/s, seconds (wall and
  this process's CPU), peak memory. On CUDA: fp16, each batch size once untimed first
  (warm-up), peak GPU memory from the allocator (``max_memory_allocated``, reset per case).
  Elsewhere: bf16 on the CPU, no warm-up (a call takes minutes), peak resident memory of
  the process so far (``VmHWM``; it includes the weights).

    python benchmarks/real_size.py                       # CUDA if present, else CPU bf16
    python benchmarks/real_size.py --meta-only
    python benchmarks/real_size.py --embed-batch 1 --embed-batch 32 --decode-batch 4
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from PIL import Image

from nextframe.backbones import kandinsky22_configs as k22
from nextframe.device import resolve_device

app = typer.Typer(add_completion=False)


def emit(record: dict) -> None:
    typer.echo(json.dumps(record, sort_keys=True))


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def meta_case(batch: int) -> None:
    built = k22.build("meta")
    parameters = built.parameters()
    for name, count in parameters.items():
        published = k22.PUBLISHED_PARAMETERS[name]
        emit(
            {
                "case": "meta",
                "component": name,
                "parameters": count,
                "published": published,
                "ratio": round(count / published, 4),
            }
        )
    emit({"case": "meta", "batch": batch, "shapes": k22.meta_shapes(built, batch, latent_side=64)})


def frames(count: int, side: int = 256) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(count)
    ]


def timed(device: torch.device, work) -> tuple[float, float, int, object]:
    """(wall s, CPU s of this process, peak bytes, result) of ``work()``."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
    return wall, cpu, peak, result


def describe(result: object) -> dict:
    """Shapes of what a call returned, and whether its numbers are finite."""
    if isinstance(result, torch.Tensor):
        return {"shape": list(result.shape), "finite": bool(torch.isfinite(result).all())}
    if isinstance(result, list):  # decoded pictures
        return {"pictures": len(result), "size": list(result[0].size)}
    fields = {
        name: getattr(result, name) for name in ("text_embed", "hidden_states", "prior_embed")
    }
    return {name: describe(value) for name, value in fields.items()}


@app.command()
def main(
    meta_only: Annotated[bool, typer.Option(help="only parameter counts and meta shapes")] = False,
    device: Annotated[str, typer.Option(help="cuda, cpu or auto")] = "auto",
    embed_batch: Annotated[list[int] | None, typer.Option(help="frames per call")] = None,
    text_batch: Annotated[list[int] | None, typer.Option(help="captions per call")] = None,
    decode_batch: Annotated[list[int] | None, typer.Option(help="pictures per call")] = None,
    prior_steps: Annotated[int, typer.Option(help="prior diffusion steps")] = 0,
    decode_steps: Annotated[int, typer.Option(help="decoder diffusion steps")] = 0,
    size: Annotated[int, typer.Option(help="decoded side in px (latents: size / 8)")] = 0,
) -> None:
    meta_case(batch=2)
    if meta_only:
        return
    run_device = resolve_device(device)
    cuda = run_device.type == "cuda"
    dtype = torch.float16 if cuda else torch.bfloat16
    # Defaults: a sweep on a GPU; one frame, one caption, two steps on the CPU.
    embed_batch = embed_batch or ([1, 8, 32, 128] if cuda else [1])
    text_batch = text_batch or ([1, 8, 32] if cuda else [1])
    decode_batch = decode_batch or ([1, 2, 4, 8] if cuda else [1])
    prior_steps = prior_steps or (25 if cuda else 2)
    decode_steps = decode_steps or (10 if cuda else 2)
    size = size or (512 if cuda else 256)
    common = {"device": str(run_device), "dtype": str(dtype).removeprefix("torch.")}
    if cuda:
        common["gpu"] = torch.cuda.get_device_name(run_device)
    else:
        common["threads"] = torch.get_num_threads()

    built: list = []
    wall, cpu, peak, _ = timed(
        run_device,
        lambda: built.append(
            k22.real_size_backbone(str(run_device), dtype, prior_steps=prior_steps)
        ),
    )
    backbone = built[0]
    emit(
        {
            "case": "build_prior",
            **common,
            "seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2),
            "peak_bytes": peak,
        }
    )

    def sweep(case: str, batches: list[int], work, extra: dict) -> None:
        for batch in batches:
            if cuda:
                work(batch)  # warm-up: kernels, allocator, cuDNN choices
            wall, cpu, peak, result = timed(run_device, lambda batch=batch: work(batch))
            emit(
                {
                    "case": case,
                    **common,
                    **extra,
                    "batch": batch,
                    "per_s": round(batch / wall, 4),
                    "seconds": round(wall, 3),
                    "cpu_seconds": round(cpu, 3),
                    "peak_bytes": peak,
                    "output": describe(result),
                }
            )

    pictures = frames(max(embed_batch))
    sweep("embed", embed_batch, lambda b: backbone.encode_images(pictures[:b]), {})
    captions = [f"a red circle moves to the left, take {index}" for index in range(256)]
    sweep(
        "texts",
        text_batch,
        lambda b: backbone.encode_texts(captions[:b]),
        {"prior_steps": prior_steps},
    )
    wall, cpu, peak, _ = timed(run_device, lambda: backbone.decoder)
    emit(
        {
            "case": "build_decoder",
            **common,
            "seconds": round(wall, 2),
            "cpu_seconds": round(cpu, 2),
            "peak_bytes": peak,
        }
    )
    embeds = torch.randn(max(decode_batch), k22.DIM, generator=torch.Generator().manual_seed(0))
    sweep(
        "decode",
        decode_batch,
        lambda b: backbone.decode(embeds[:b], size=size, steps=decode_steps, guidance=4.0, seed=0),
        {"steps": decode_steps, "size": size},
    )


if __name__ == "__main__":
    app()
