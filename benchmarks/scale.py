"""Memory and speed of the train stage's data path as the tables grow to TGIF size.

For each ``--sizes`` value (clips), synthesises embedding tables at real dimensions
(T = 77, D = 1280, ``--frames`` frames a clip, one distinct caption a clip, 10% of the
clips in val) with the project's own writer, then, in a fresh process, runs the train
stage's data path on them: ``load_dataset`` (the split indexed, vectors left in the
tables), an epoch's ``plan_rows``, and ``--steps`` training steps of ``--batch`` rows
(``batch`` reads the rows' clips from the tables, ``make_inputs``, the splitter's forward
and backward, AdamW), as ``train_splitter`` does them. One JSON line per size:

- ``table_bytes``: images.parquet + texts.parquet on disk;
- ``peak_rss_mb``: the measuring process's peak resident memory (``VmHWM``: imports,
  model, index, batches; the tables' pages are read through short-lived maps and stay in
  the page cache, outside it), ``rss_loaded_mb`` after ``load_dataset``;
- ``samples_per_s`` over the steps after ``--warmup`` (wall clock, a shared machine:
  see ``cpu_s``), ``assemble_per_s`` for batch assembly alone (reads and float32).

The last line fits ``peak_rss_mb = base + slope * clips`` (least squares) and gives the
growth per 10k clips and the extrapolation to 126k captions (TGIF).

``--max-rss-mb`` turns the run into a check: it exits 1 if any size peaks above it, e.g.
``python benchmarks/scale.py --sizes 2000 --max-rss-mb 1500`` (the bound the README states
for a 2k-clip real-dimension table).

    python benchmarks/scale.py --sizes 5000 --sizes 20000 --sizes 50000
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow as pa
import typer

from nextframe import store

app = typer.Typer(add_completion=False)
TEXT_LENGTH, DIM = 77, 1280
TGIF_CAPTIONS = 126_000


def synthesise(root: Path, clips: int, frames: int, seed: int = 0) -> int:
    """manifest.parquet and embeddings/{images,texts}.parquet of ``clips`` clips, written
    row group by row group (never whole in memory); returns the tables' bytes."""
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal(2**22).astype(np.float32)  # rows are windows of one pool
    clip_ids = [f"clip{index:07d}" for index in range(clips)]
    captions = [f"synthetic caption number {index}" for index in range(clips)]
    manifest = pd.DataFrame(
        {
            "clip_id": clip_ids,
            "source": "scale",
            "caption": captions,
            "label": "",
            "split": np.where(np.arange(clips) % 10 == 0, "val", "train"),
            "path": "",
            "url": "",
            "status": "ok",
        }
    )
    store.write_dataframe(manifest, store.MANIFEST_SCHEMA, root / "manifest.parquet")
    info = store.EmbeddingInfo(backbone="scale", model_ids={}, dim=DIM)
    embeddings = root / "embeddings"

    def windows(count: int, size: int) -> np.ndarray:
        starts = rng.integers(0, len(pool) - size, count)
        return np.stack([pool[start : start + size] for start in starts])

    schema = store.image_embeddings_schema(info)
    group = store.group_rows(schema) // frames * frames
    with store.table_writer(embeddings / "images.parquet", schema) as writer:
        for first in range(0, clips, group // frames):
            ids = clip_ids[first : first + group // frames]
            rows = pa.Table.from_arrays(
                [
                    pa.array(np.repeat(ids, frames), pa.string()),
                    pa.array(np.tile(np.arange(frames, dtype=np.int32), len(ids))),
                    pa.array(np.tile(np.linspace(0.0, 2.0, frames), len(ids))),
                    store.vectors_to_arrow(windows(len(ids) * frames, DIM), store.FLOAT32),
                ],
                schema=schema,
            )
            writer.write_table(rows, row_group_size=len(rows))
    schema = store.text_embeddings_schema(info, TEXT_LENGTH)
    order = sorted(captions, key=store.caption_id)
    group = store.group_rows(schema)
    with store.table_writer(embeddings / "texts.parquet", schema) as writer:
        for first in range(0, clips, group):
            chunk = order[first : first + group]
            hidden = windows(len(chunk), TEXT_LENGTH * DIM).reshape(-1, TEXT_LENGTH, DIM)
            text, prior = windows(len(chunk), DIM), windows(len(chunk), DIM)
            rows = store.text_rows(chunk, text, prior, hidden, schema)
            writer.write_table(rows, row_group_size=len(rows))
    return sum(path.stat().st_size for path in embeddings.iterdir())


def proc_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(root: Path, steps: int, warmup: int, batch: int, threads: int) -> dict:
    """The train stage's data path on the tables under ``root`` (run in a fresh process)."""
    import torch

    from nextframe.config import TrainParams
    from nextframe.model.losses import change_loss, probe_vector
    from nextframe.model.rows import MODES, make_inputs, plan_rows
    from nextframe.model.splitter import Splitter, SplitterConfig
    from nextframe.pipeline.train import load_dataset

    torch.set_num_threads(threads)
    rss_start = proc_mb("VmRSS")
    started = time.perf_counter()
    dataset = load_dataset(root / "manifest.parquet", root / "embeddings")
    load_s = time.perf_counter() - started
    rss_loaded = proc_mb("VmRSS")
    params = TrainParams(batch_size=batch, device="cpu")
    torch.manual_seed(0)
    train_set = dataset.train
    model = Splitter(SplitterConfig.from_params(params.splitter, DIM, TEXT_LENGTH))
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr)
    probe = probe_vector(DIM)
    generator = torch.Generator().manual_seed(0)
    plan = plan_rows(train_set, MODES, params.max_frames_per_clip, generator)
    order = torch.randperm(len(plan), generator=generator)[: (steps + warmup) * batch]
    assemble_s = train_s = cpu_s = 0.0
    for step, index in enumerate(order.split(batch)):
        wall, cpu = time.perf_counter(), time.process_time()
        clips, rows = train_set.batch(plan.subset(index))
        inputs = make_inputs(clips, rows, model, params.blend_q)
        assembled = time.perf_counter()
        prediction = model(inputs.hidden_states, inputs.start, inputs.rise)
        loss = change_loss(inputs.start, prediction, inputs.target, params.loss, probe)
        optimizer.zero_grad(set_to_none=True)
        loss.total.backward()
        optimizer.step()
        if step >= warmup:
            assemble_s += assembled - wall
            train_s += time.perf_counter() - wall
            cpu_s += time.process_time() - cpu
    return {
        "train_clips": len(train_set),
        "plan_rows": len(plan),
        "load_s": round(load_s, 2),
        "rss_start_mb": round(rss_start, 1),
        "rss_loaded_mb": round(rss_loaded, 1),
        "peak_rss_mb": round(proc_mb("VmHWM"), 1),
        "rss_file_mb": round(proc_mb("RssFile"), 1),
        "samples_per_s": round(steps * batch / train_s, 1),
        "assemble_per_s": round(steps * batch / assemble_s, 1),
        "cpu_s": round(cpu_s, 2),
        "wall_s": round(train_s, 2),
    }


@app.command()
def main(
    sizes: Annotated[list[int] | None, typer.Option(help="clips per table")] = None,
    frames: Annotated[int, typer.Option(help="frames per clip")] = 8,
    steps: Annotated[int, typer.Option(help="timed training steps per size")] = 40,
    warmup: Annotated[int, typer.Option(help="untimed steps first")] = 5,
    batch: Annotated[int, typer.Option(help="rows per step (train.batch_size)")] = 64,
    threads: Annotated[int, typer.Option(help="torch CPU threads")] = 2,
    workdir: Annotated[Path | None, typer.Option(help="where the tables go (temp)")] = None,
    max_rss_mb: Annotated[float, typer.Option(help="fail if a size peaks above (0: no)")] = 0,
    measure_only: Annotated[Path | None, typer.Option(hidden=True)] = None,
) -> None:
    if measure_only is not None:  # the fresh process of one size
        typer.echo(json.dumps(measure(measure_only, steps, warmup, batch, threads)))
        return
    results = []
    for clips in sizes or [5000, 20000, 50000]:
        root = Path(tempfile.mkdtemp(prefix=f"nextframe-scale-{clips}-", dir=workdir))
        try:
            started = time.perf_counter()
            table_bytes = synthesise(root, clips, frames)
            write_s = time.perf_counter() - started
            command = [sys.executable, __file__, "--measure-only", str(root)]
            command += ["--steps", str(steps), "--warmup", str(warmup), "--batch", str(batch)]
            command += ["--threads", str(threads)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            record = {
                "clips": clips,
                "frames": clips * frames,
                "table_bytes": table_bytes,
                "write_s": round(write_s, 1),
                "load_avg": round(os.getloadavg()[0], 2),
                **json.loads(output.strip().splitlines()[-1]),
            }
        finally:
            shutil.rmtree(root, ignore_errors=True)
        results.append(record)
        typer.echo(json.dumps(record, sort_keys=True))
    if len(results) > 1:
        clips = np.array([r["clips"] for r in results], dtype=np.float64)
        peaks = np.array([r["peak_rss_mb"] for r in results])
        slope, base = np.polyfit(clips, peaks, 1)
        speed = [r["samples_per_s"] for r in results]
        fit = {
            "fit": "peak_rss_mb = base_mb + per_10k_clips_mb * clips / 1e4",
            "base_mb": round(base, 1),
            "per_10k_clips_mb": round(slope * 1e4, 2),
            "at_126k_captions_mb": round(base + slope * TGIF_CAPTIONS, 1),
            "samples_per_s_largest_vs_smallest": round(speed[-1] / speed[0], 3),
        }
        typer.echo(json.dumps(fit, sort_keys=True))
    too_big = [r for r in results if max_rss_mb and r["peak_rss_mb"] > max_rss_mb]
    if too_big:
        typer.echo(f"peak RSS above {max_rss_mb} MB: {too_big}", err=True)
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
