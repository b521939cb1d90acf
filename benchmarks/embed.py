"""Frames per second of the embed stage: prefetching batches vs loading them in line.

Writes ``--frames`` random PNGs (``--clips`` clips, ``--size`` px) and a manifest into a
temporary folder and times ``embed`` with ``--backbone`` (the default ``toy``, or
``kandinsky22-fixture``: the kandinsky22 code path on random toy-size components), once
per (batch size, prefetch depth) pair, each on a fresh output folder (so nothing is
resumed). Reports the best of ``--repeats`` runs: frames/s counts only image encoding
(PNG loading and preprocessing included), captions/s only the caption side (text tower
and prior). "outside" is the share of the image side's wall time spent outside the
model's forward pass (``encode_pixels`` calls timed against the whole image side):
loading, decoding, preprocessing, digests and writing, as far as prefetching does not
hide them.

    python benchmarks/embed.py --frames 512 --size 64 --batch-sizes 1 --batch-sizes 32
"""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import torch
import typer
from PIL import Image

from nextframe.backbones import kandinsky_fixture
from nextframe.backbones.toy import ToyBackbone
from nextframe.backbones.unclip import UnclipBackbone
from nextframe.config import BackboneParams, Params
from nextframe.pipeline import embed
from nextframe.store import FRAMES_SCHEMA, MANIFEST_SCHEMA, write_dataframe

app = typer.Typer(add_completion=False)
BATCH_SIZES = [1, 8, 32, 128]  # backbone.batch_size values timed by default


def make_inputs(root: Path, frames: int, clips: int, size: int) -> tuple[Path, Path]:
    """(manifest, frames.parquet) over random PNGs, frames spread evenly over clips."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(frames):
        clip_id, k = f"clip{index % clips:04d}", index // clips
        path = Path(clip_id) / f"{k}.png"
        (root / "frames" / clip_id).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "frames" / path)
        rows.append(
            {"clip_id": clip_id, "k": k, "frame_index": k, "t_seconds": k / 8.0, "score": 0.0,
             "path": str(path)}
        )  # fmt: skip
    frames_parquet = root / "frames" / "frames.parquet"
    write_dataframe(pd.DataFrame(rows, columns=FRAMES_SCHEMA.names), FRAMES_SCHEMA, frames_parquet)
    manifest = pd.DataFrame(
        {
            "clip_id": [f"clip{index:04d}" for index in range(clips)],
            "source": "benchmark",
            "caption": [f"a red circle moves {index}" for index in range(clips)],
            "label": "",
            "split": "train",
            "path": "",
            "url": "",
            "status": "ok",
        }
    )
    manifest_path = root / "manifest.parquet"
    write_dataframe(manifest[MANIFEST_SCHEMA.names], MANIFEST_SCHEMA, manifest_path)
    return manifest_path, frames_parquet


@contextmanager
def forward_timer():
    """Yield a list that collects the wall seconds of every ``encode_pixels`` call."""
    seconds: list[float] = []
    originals = {cls: cls.encode_pixels for cls in (ToyBackbone, UnclipBackbone)}

    def timer(original):
        def timed(self, pixels):
            started = time.perf_counter()
            embeddings = original(self, pixels)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # .cpu() syncs already; to be sure
            seconds.append(time.perf_counter() - started)
            return embeddings

        return timed

    for cls, original in originals.items():
        cls.encode_pixels = timer(original)
    try:
        yield seconds
    finally:
        for cls, original in originals.items():
            cls.encode_pixels = original


@app.command()
def main(
    frames: Annotated[int, typer.Option(help="frames to embed")] = 512,
    clips: Annotated[int, typer.Option(help="clips (captions) they belong to")] = 64,
    size: Annotated[int, typer.Option(help="side of the PNGs in px")] = 64,
    batch_sizes: Annotated[
        list[int], typer.Option(help="backbone.batch_size values")
    ] = BATCH_SIZES,
    prefetch: Annotated[list[int], typer.Option(help="prefetch depths (0: none)")] = [0, 2],  # noqa: B006
    device: Annotated[str, typer.Option(help="backbone.device")] = "auto",
    repeats: Annotated[int, typer.Option(help="runs per setting (best is kept)")] = 3,
    backbone: Annotated[str, typer.Option(help="toy or kandinsky22-fixture")] = "toy",
) -> None:
    if backbone not in ("toy", "kandinsky22-fixture"):
        raise typer.BadParameter(f"--backbone must be toy or kandinsky22-fixture, got {backbone!r}")
    base = BackboneParams() if backbone == "toy" else kandinsky_fixture.backbone_params()
    with tempfile.TemporaryDirectory(prefix="nextframe-bench-") as tmp:
        root = Path(tmp)
        manifest, frames_parquet = make_inputs(root, frames, clips, size)
        typer.echo(f"{frames} frames of {size}x{size} px, {clips} captions, {backbone} backbone")
        typer.echo(
            f"{'batch':>5} {'prefetch':>8} {'frames/s':>9} {'captions/s':>10} "
            f"{'forward s':>9} {'image s':>7} {'outside':>7}"
        )
        for batch_size in batch_sizes:
            params = base.model_copy(update={"device": device, "batch_size": batch_size})
            for depth in prefetch:
                best_frames, best_captions, best = 0.0, 0.0, (0.0, float("inf"))
                for repeat in range(repeats):
                    out_dir = root / f"out-{batch_size}-{depth}-{repeat}"
                    with forward_timer() as forward:
                        summary = embed.run(
                            manifest,
                            frames_parquet,
                            out_dir,
                            Params(backbone=params),
                            prefetch=depth,
                            progress=False,
                        )
                    metrics = summary.metrics()
                    best_frames = max(best_frames, metrics["frames_per_s"])
                    best_captions = max(best_captions, metrics["texts_per_s"])
                    if summary.image_seconds < best[1]:  # outside share of the fastest run
                        best = (sum(forward), summary.image_seconds)
                forward_s, image_s = best
                typer.echo(
                    f"{batch_size:>5} {depth:>8} {best_frames:>9.1f} {best_captions:>10.1f} "
                    f"{forward_s:>9.3f} {image_s:>7.3f} {1 - forward_s / image_s:>7.1%}"
                )


if __name__ == "__main__":
    app()
