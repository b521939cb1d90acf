"""Embedding across processes: the stage under a real launcher (torchrun, gloo, 2 CPU
processes) writes the very tables one process writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from stage_scripts import STAGES_DIR
from test_embed import corrupt, write_frames, write_manifest

from nextframe.distributed import LAUNCHER_ENV, World, rank_device, shard
from nextframe.pipeline.embed import IMAGES_TABLE, SHARDS_DIR, TEXTS_TABLE

CLIPS = {"clip_a": 4, "clip_b": 5, "clip_c": 3, "clip_d": 2, "clip_e": 4}
CAPTIONS = {
    "clip_a": "a red circle moves from left to right",
    "clip_b": "a blue square grows",
    "clip_c": "a green triangle rotates",
    "clip_d": "a yellow star shrinks",
    "clip_e": "a red circle moves from left to right",  # clip_a's: one row for both
}
LAUNCHER = f"{sys.executable} -m torch.distributed.run --standalone --nproc-per-node 2"


def test_shards_are_contiguous_balanced_and_cover_everything() -> None:
    weights = np.array([4, 5, 3, 2, 4, 1, 1])
    slices = [shard(weights, World(rank, 3, 0)) for rank in range(3)]
    assert [(s.start, s.stop) for s in slices] == [(0, 2), (2, 4), (4, 7)]
    assert [shard(np.ones(1), World(rank, 2, 0)) for rank in range(2)] == [
        slice(0, 1),
        slice(1, 1),  # more ranks than items: an empty shard
    ]
    assert rank_device("cpu", World(1, 2, 1)) == "cpu"
    assert rank_device("cuda:3", World(1, 2, 1)) == "cuda:3"
    assert rank_device("auto", World(0, 1, 0)) == "auto"


def _embed(tmp_path: Path, out_dir: Path, launcher: str | None) -> str:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'runs.db'}"}
    env.pop(LAUNCHER_ENV, None)
    if launcher:
        env[LAUNCHER_ENV] = launcher
    manifest, frames = tmp_path / "raw" / "manifest.parquet", tmp_path / "frames" / "frames.parquet"
    args = [str(STAGES_DIR / "embed.py"), str(manifest), str(frames), str(out_dir)]
    result = subprocess.run(
        [sys.executable, *args, "--params", str(tmp_path / "params.yaml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _stage_runs(tmp_path: Path) -> int:
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs.db'}")
    experiment = client.get_experiment_by_name("nextframe")
    return len(client.search_runs([experiment.experiment_id], "tags.`nextframe.role` = 'stage'"))


@pytest.mark.parametrize("batch_size", [1])
def test_two_processes_write_the_tables_one_process_writes(tmp_path: Path, batch_size) -> None:
    """Byte for byte, at batch size 1 (every frame encoded alone, as the shards' batches
    cannot line up with one process's: at larger batches the image embeddings differ by
    float32 rounding of differently shaped matmuls, see test_embed). clip_c has an
    unreadable frame (its record in the footer comes from one rank), clip_e shares
    clip_a's caption (one texts row, whichever rank encodes it)."""
    frames_parquet = write_frames(tmp_path, CLIPS)
    write_manifest(tmp_path, CAPTIONS)
    corrupt(frames_parquet.parent / "clip_c" / "1.png", "garbage")
    settings = {
        "backbone": {"device": "cpu", "batch_size": batch_size, "prior_steps": 2},
        "runtime": {"threads": 1},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings))
    one, two = tmp_path / "one", tmp_path / "two"
    _embed(tmp_path, one, launcher=None)
    output = _embed(tmp_path, two, launcher=LAUNCHER)
    assert "15 frames of 4 clips; encoded 15 frames" in output
    assert "and 3 captions" in output and "unreadable_frame: 1" in output
    for table in (IMAGES_TABLE, TEXTS_TABLE):
        assert (one / table).read_bytes() == (two / table).read_bytes(), table
    assert sorted(path.name for path in two.iterdir()) == [IMAGES_TABLE, TEXTS_TABLE]
    assert _stage_runs(tmp_path) == 2  # rank 1 tracks nothing

    again = _embed(tmp_path, two, launcher=LAUNCHER)  # resumed: nothing to encode
    assert "encoded 0 frames" in again and "and 0 captions" in again
    for table in (IMAGES_TABLE, TEXTS_TABLE):
        assert (one / table).read_bytes() == (two / table).read_bytes(), table
    assert not (two / SHARDS_DIR).exists()
