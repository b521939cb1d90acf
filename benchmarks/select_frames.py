"""Clips per second of the select_frames stage with 1 vs more workers.

Writes synthetic-like clips (a coloured square moving over a textured background,
alternating MP4 and GIF, made with the project's own write_video) into a temporary
folder and times ``select_frames`` end to end, decoding to PNG, on a fresh output
folder per run (so nothing is resumed). Reports the best of ``--repeats`` runs.

    python benchmarks/select_frames.py --clips 48 --size 64 --frames 24
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from nextframe.config import Params, SelectFramesParams
from nextframe.data.video import write_video
from nextframe.pipeline import select_frames
from nextframe.store import MANIFEST_SCHEMA, write_dataframe

app = typer.Typer(add_completion=False)


def make_clip(rng: np.random.Generator, n_frames: int, size: int) -> np.ndarray:
    """[N, size, size, 3] uint8: a square crossing a smooth background."""
    ramp = np.linspace(40, 200, size, dtype=np.float32)
    background = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 120.0), axis=-1)
    frames = np.repeat(background[None].astype(np.uint8), n_frames, axis=0)
    side = size // 4
    colour = rng.integers(0, 256, 3)
    for index in range(n_frames):
        left = int((size - side) * index / max(1, n_frames - 1))
        frames[index, size // 3 : size // 3 + side, left : left + side] = colour
    return frames


def make_manifest(root: Path, clips: int, n_frames: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for index in range(clips):
        name = f"clip{index:04d}.{'mp4' if index % 2 == 0 else 'gif'}"
        write_video(root / name, make_clip(rng, n_frames, size), fps=8.0)
        rows.append(
            {
                "clip_id": f"clip{index:04d}",
                "source": "benchmark",
                "caption": "a square moves",
                "label": "",
                "split": "train",
                "path": name,
                "url": "",
                "status": "ok",
            }
        )
    path = root / "manifest.parquet"
    write_dataframe(pd.DataFrame(rows)[MANIFEST_SCHEMA.names], MANIFEST_SCHEMA, path)
    return path


@app.command()
def main(
    clips: Annotated[int, typer.Option(help="clips to generate")] = 48,
    frames: Annotated[int, typer.Option(help="frames per clip")] = 24,
    size: Annotated[int, typer.Option(help="side of the generated clips in px")] = 64,
    out_size: Annotated[int, typer.Option(help="select_frames.size")] = 64,
    workers: Annotated[list[int], typer.Option(help="worker counts to compare")] = [1, 2],  # noqa: B006
    repeats: Annotated[int, typer.Option(help="runs per worker count (best is kept)")] = 3,
) -> None:
    with tempfile.TemporaryDirectory(prefix="nextframe-bench-") as tmp:
        root = Path(tmp)
        manifest = make_manifest(root / "raw", clips, frames, size)
        typer.echo(f"{clips} clips, {frames} frames of {size}x{size} px -> {out_size} px PNGs")
        for count in workers:
            params = SelectFramesParams(k=8, window_s=frames / 8.0, size=out_size, workers=count)
            best = float("inf")
            for repeat in range(repeats):
                started = time.perf_counter()
                out = root / f"out{count}_{repeat}"
                summary = select_frames.run(manifest, out, Params(select_frames=params), False)
                best = min(best, time.perf_counter() - started)
                assert summary.clips_kept == clips, summary.describe()
            typer.echo(f"workers={count}: {clips / best:7.1f} clips/s (best of {repeats})")


if __name__ == "__main__":
    app()
