"""The select_frames stage: every good clip of the manifest to PNGs and one table.

Per clip: decode only the frames the method can use, pick frames (``data/frames.py``),
resize them (``data/resize.py``) and write ``<out_dir>/<clip_id>/<k>.png``. Clips run on a thread
pool of ``workers``: decord, PyAV, numpy and Pillow's PNG encoder release the GIL, so
decoding one clip overlaps the scoring and PNG writing of another.

Paths: a manifest ``path`` is relative to the manifest's folder (or absolute); the
``path`` column of ``frames.parquet`` is relative to the folder holding
``frames.parquet`` (``<clip_id>/<k>.png``), so the frames folder can move as a whole
(``dvc pull``, a copy) and readers resolve it with ``frames_parquet.parent / path``.

Resume: each PNG is written atomically and a clip's ``selection.json`` last, recording
the selection and a fingerprint (source content hash, the params that shape the
output and a digest of the code that makes it). A rerun reuses a clip whose fingerprint
matches and whose PNGs all exist, without decoding it; anything else is redone from a
clean folder. ``frames.parquet`` is written last, atomically, so it exists only for a complete run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from nextframe.code_digest import code_digest
from nextframe.config import Params, SelectFramesParams
from nextframe.data import frames as frame_rules
from nextframe.data import resize as resizing
from nextframe.data import video as video_io
from nextframe.data.frames import frames_needed, select
from nextframe.data.resize import resize_frame
from nextframe.data.video import VideoReadError, read_video
from nextframe.errors import UserError
from nextframe.progress import progress_bar
from nextframe.store import FRAMES_SCHEMA, atomic_path, read_manifest, write_dataframe

PARAMS = ("select_frames", "download.max_pixels")
FRAMES_TABLE = "frames.parquet"
MARKER = "selection.json"
SAFE_CLIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# the modules whose code decides a clip's frames: its resume record names their digest
FRAMES_CODE = code_digest(sys.modules[__name__], frame_rules, resizing, video_io)


@dataclass
class SelectionSummary:
    """What a run did, for the log line and the MLflow metrics."""

    clips_in: int = 0
    manifest_not_ok: int = 0
    clips_kept: int = 0
    clips_resumed: int = 0
    frames_total: int = 0
    frames_written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        metrics: dict[str, float] = {
            "clips_in": self.clips_in,
            "manifest_not_ok": self.manifest_not_ok,
            "clips_kept": self.clips_kept,
            "clips_resumed": self.clips_resumed,
            "clips_skipped": sum(self.skipped.values()),
            "frames_total": self.frames_total,
            "frames_written": self.frames_written,
            "seconds": self.seconds,
            "clips_per_s": self.clips_in / self.seconds if self.seconds > 0 else 0.0,
        }
        metrics.update({f"skipped.{reason}": count for reason, count in self.skipped.items()})
        return metrics

    def describe(self) -> str:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(self.skipped.items())) or "none"
        return (
            f"select_frames: kept {self.clips_kept}/{self.clips_in} clips "
            f"({self.clips_resumed} resumed), {self.frames_total} frames "
            f"({self.frames_written} written) in {self.seconds:.1f}s; skipped: {reasons}"
        )


@dataclass(frozen=True)
class ClipResult:
    clip_id: str
    rows: list[dict] | None  # frames.parquet rows; None when the clip was skipped
    skip_reason: str | None = None
    resumed: bool = False


def fingerprint(source: Path, params: SelectFramesParams) -> dict:
    """Everything that decides a clip's PNGs: the source's content, the shaping params and
    the code that reads, scores, resizes and writes frames (a changed rule redoes clips).

    A content hash rather than a path or mtime keeps ``selection.json`` byte-identical
    across reruns and machines, so the DVC output hash changes only when frames do.
    """
    digest = hashlib.sha256()
    with source.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    shaping = params.model_dump(mode="json", exclude={"workers"})
    return {"sha256": digest.hexdigest(), **shaping, "code": FRAMES_CODE}


def _resumable_rows(clip_dir: Path, expected: dict) -> list[dict] | None:
    marker = clip_dir / MARKER
    if not marker.is_file():
        return None
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    rows = record.get("rows")
    if record.get("fingerprint") != expected or not rows:
        return None
    if not all((clip_dir.parent / row["path"]).is_file() for row in rows):
        return None
    return rows


def process_clip(
    clip_id: str,
    source: Path,
    out_dir: Path,
    params: SelectFramesParams,
    max_pixels: int | None = None,
) -> ClipResult:
    """Select, resize and write one clip's frames, or reuse a complete earlier result.

    ``max_pixels`` bounds width x height x frames decoded (``download.max_pixels``): a
    video that declares more is skipped as ``too_many_pixels`` before it fills memory."""
    if not SAFE_CLIP_ID.match(clip_id):
        return ClipResult(clip_id, None, "unsafe_clip_id")
    clip_dir = out_dir / clip_id
    if not source.is_file():
        return ClipResult(clip_id, None, "missing")
    expected = fingerprint(source, params)
    rows = _resumable_rows(clip_dir, expected)
    if rows is not None:
        return ClipResult(clip_id, rows, resumed=True)

    max_frames, max_seconds = frames_needed(params)
    try:
        video = read_video(source, max_frames, max_seconds=max_seconds, max_pixels=max_pixels)
    except VideoReadError as exc:
        return ClipResult(clip_id, None, exc.reason)
    selection = select(video.frames, video.fps, params)
    if selection.usable_frames < params.min_frames:
        return ClipResult(clip_id, None, "too_few_frames")

    shutil.rmtree(clip_dir, ignore_errors=True)  # stale PNGs of an older selection
    clip_dir.mkdir(parents=True)
    rows = []
    for k, (index, score) in enumerate(zip(selection.frame_indices, selection.scores, strict=True)):
        relative = f"{clip_id}/{k}.png"
        image = resize_frame(video.frames[index], params.size, params.resize, params.pad_color)
        with atomic_path(out_dir / relative) as tmp:
            image.save(tmp, format="PNG")
        rows.append(
            {
                "clip_id": clip_id,
                "k": k,
                "frame_index": int(index),
                "t_seconds": float(index) / video.fps,
                "score": float(score),
                "path": relative,
            }
        )
    with atomic_path(clip_dir / MARKER) as tmp:
        tmp.write_text(json.dumps({"fingerprint": expected, "rows": rows}, indent=1))
    return ClipResult(clip_id, rows)


def _good_clips(manifest: pd.DataFrame, manifest_path: Path) -> list[tuple[str, Path]]:
    duplicated = manifest["clip_id"][manifest["clip_id"].duplicated()].unique().tolist()
    if duplicated:
        raise UserError(
            f"{manifest_path}: clip_id must be unique, found duplicates {duplicated[:5]}; "
            "rerun the download stage"
        )
    ok = manifest[manifest["status"] == "ok"]
    return [(row.clip_id, manifest_path.parent / row.path) for row in ok.itertuples()]


def _prune_stale(out_dir: Path, kept: set[str]) -> None:
    """Remove what an earlier run left that this one did not write: clip folders whose clip
    is no longer selected (complete, or partial from an interrupted run) and temporary
    files. ``out_dir`` is a DVC ``persist`` output (kept when a run fails), so whatever
    stays here becomes part of the output; only files this stage writes are touched."""
    for entry in out_dir.iterdir():
        if entry.name.endswith(".tmp") and entry.name.startswith("."):
            _remove(entry)
        elif entry.is_dir() and entry.name not in kept and _written_here(entry):
            shutil.rmtree(entry)


def _written_here(clip_dir: Path) -> bool:
    """A folder holding only what ``process_clip`` writes: ``<k>.png``, the marker, temps."""
    return all(
        re.fullmatch(r"\d+\.png|\..+\.tmp", item.name) or item.name == MARKER
        for item in clip_dir.iterdir()
    )


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def _run_clips(
    clips: list[tuple[str, Path]],
    out_dir: Path,
    params: SelectFramesParams,
    max_pixels: int,
    progress: bool,
) -> list[ClipResult]:
    """Process clips on ``params.workers`` threads; on any error, queued clips are dropped."""
    pool = ThreadPoolExecutor(max_workers=params.workers)
    try:
        futures = [
            pool.submit(process_clip, cid, src, out_dir, params, max_pixels) for cid, src in clips
        ]
        done = progress_bar(
            as_completed(futures),
            total=len(futures),
            desc="select_frames",
            unit="clip",
            disable=not progress,
        )
        results = [future.result() for future in done]
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def run(
    manifest_path: Path, out_dir: Path, params: Params, progress: bool = True
) -> SelectionSummary:
    """Write selected frames of every ``ok`` clip and ``frames.parquet``; see the module doc."""
    started = time.perf_counter()
    manifest = read_manifest(manifest_path)
    clips = _good_clips(manifest, manifest_path)
    summary = SelectionSummary(clips_in=len(clips), manifest_not_ok=len(manifest) - len(clips))
    out_dir.mkdir(parents=True, exist_ok=True)

    results = _run_clips(clips, out_dir, params.select_frames, params.download.max_pixels, progress)

    rows: list[dict] = []
    for result in results:
        if result.rows is None:
            summary.skipped[result.skip_reason] += 1
            continue
        summary.clips_kept += 1
        summary.clips_resumed += result.resumed
        summary.frames_written += 0 if result.resumed else len(result.rows)
        rows.extend(result.rows)
    summary.frames_total = len(rows)
    if not rows:
        raise UserError(
            f"{manifest_path}: no clip gave frames ({summary.describe()}); expected readable "
            "videos with status ok, paths relative to the manifest's folder, and at least "
            "select_frames.min_frames usable frames each"
        )

    _prune_stale(out_dir, {result.clip_id for result in results if result.rows is not None})
    table = pd.DataFrame(rows, columns=FRAMES_SCHEMA.names)
    table = table.sort_values(["clip_id", "k"], kind="stable").reset_index(drop=True)
    write_dataframe(table, FRAMES_SCHEMA, out_dir / FRAMES_TABLE)
    summary.seconds = time.perf_counter() - started
    return summary
