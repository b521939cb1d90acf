"""The embed stage: every selected frame and every clip's caption through the backbone.

Writes two tables (DESIGN.md, "Data contracts"), both sorted by clip_id (then k):

- ``images.parquet``: clip_id, k, t_seconds, embedding [D] float32 (raw CLIP image embeds),
- ``texts.parquet``: clip_id, caption, text_embed [D], prior_embed [D], hidden_states [T, D].

Frames are encoded in batches of ``backbone.batch_size`` while a thread pool loads and
preprocesses the next batches (PNG decoding and CLIP preprocessing are CPU work that would
otherwise leave the accelerator idle). Rows are streamed into the table, so memory stays
flat however many frames there are, and the table appears only once it is complete.

Resume: each table's schema metadata records how its rows were made (the backbone's
``EmbeddingInfo``, dtype and, for texts, the prior's settings) and, for images, a digest of
each clip's frames (their rows in frames.parquet and the PNG bytes). A rerun reuses the rows
of every clip whose digest (images) or caption (texts) is unchanged and made the same way,
encodes only the rest, and rewrites nothing at all when nothing changed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from nextframe.backbones import Backbone, load_backbone
from nextframe.config import BackboneParams
from nextframe.errors import UserError
from nextframe.store import (
    FLOAT32,
    image_embeddings_schema,
    read_frames,
    read_manifest,
    table_writer,
    text_embeddings_schema,
    vectors_to_arrow,
)

IMAGES_TABLE = "images.parquet"
TEXTS_TABLE = "texts.parquet"
RESUME_KEY = b"nextframe.embed"  # schema metadata: how rows were made, per-clip digests
PREFETCH = 2  # batches loaded and preprocessed ahead of the one being encoded
FLUSH_ROWS = 4096  # rows per parquet row group

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class EmbedSummary:
    """What a run did, for the log line and the MLflow metrics."""

    backbone: str
    dim: int
    frames: int = 0
    clips: int = 0
    frames_encoded: int = 0
    texts_encoded: int = 0
    image_seconds: float = 0.0
    text_seconds: float = 0.0
    seconds: float = 0.0

    def metrics(self) -> dict[str, float]:
        return {
            "frames": self.frames,
            "clips": self.clips,
            "frames_encoded": self.frames_encoded,
            "texts_encoded": self.texts_encoded,
            "seconds": self.seconds,
            "frames_per_s": _rate(self.frames_encoded, self.image_seconds),
            "texts_per_s": _rate(self.texts_encoded, self.text_seconds),
            "dim": self.dim,
        }

    def describe(self) -> str:
        metrics = self.metrics()
        return (
            f"embed ({self.backbone}, D={self.dim}): {self.frames} frames of {self.clips} clips; "
            f"encoded {self.frames_encoded} frames ({metrics['frames_per_s']:.1f}/s) and "
            f"{self.texts_encoded} captions ({metrics['texts_per_s']:.1f}/s), the rest reused; "
            f"{self.seconds:.1f}s"
        )


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def prefetched(
    items: Iterable[Item], load: Callable[[Item], Result], depth: int
) -> Iterator[Result]:
    """``load(item)`` for every item, in order, computed up to ``depth`` items ahead.

    ``depth`` 0 loads each item only when it is asked for (no background work).
    """
    if depth == 0:
        yield from map(load, items)
        return
    with ThreadPoolExecutor(max_workers=depth, thread_name_prefix="embed-load") as pool:
        pending = []
        try:
            for item in items:
                pending.append(pool.submit(load, item))
                if len(pending) > depth:
                    yield pending.pop(0).result()
            for future in pending:
                yield future.result()
        finally:
            for future in pending:
                future.cancel()


def load_images(paths: list[Path]) -> list[Image.Image]:
    """Decode PNGs fully (so no file handle outlives the call), as RGB."""
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


def clip_digests(frames: pd.DataFrame, root: Path) -> dict[str, str]:
    """clip_id -> digest of its frames' rows and PNG bytes: what decides its embeddings."""
    digests: dict[str, str] = {}
    for clip_id, rows in frames.groupby("clip_id", sort=True):
        digest = hashlib.sha256()
        for row in rows.itertuples(index=False):
            digest.update(f"{row.k}\0{row.frame_index}\0{row.t_seconds!r}\0{row.path}\0".encode())
            digest.update((root / row.path).read_bytes())
        digests[str(clip_id)] = digest.hexdigest()
    return digests


def _split_by_clip(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """(clip_id, rows) runs of a table whose rows of one clip are contiguous."""
    clip_ids = table.column("clip_id").to_numpy(zero_copy_only=False)
    if len(clip_ids) == 0:
        return
    starts = np.flatnonzero(np.concatenate([[True], clip_ids[1:] != clip_ids[:-1]]))
    ends = np.append(starts[1:], len(clip_ids))
    for start, end in zip(starts, ends, strict=True):
        yield str(clip_ids[start]), table.slice(start, end - start)


class SortedTableWriter:
    """Streams new clips' rows and reused clips' rows into one table in clip_id order.

    New rows arrive sorted; each reused clip is written just before the first new clip
    that sorts after it. Rows are buffered into row groups of about ``FLUSH_ROWS``.
    """

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema, reused: dict[str, pa.Table]):
        self._writer = writer
        self._schema = schema
        self._reused = sorted(reused.items(), reverse=True)  # pop() gives the smallest id
        self._buffer: list[pa.Table] = []
        self._buffered = 0

    def write(self, rows: pa.Table) -> None:
        for clip_id, clip_rows in _split_by_clip(rows):
            while self._reused and self._reused[-1][0] < clip_id:
                self._append(self._reused.pop()[1])
            self._append(clip_rows)

    def close(self) -> None:
        while self._reused:
            self._append(self._reused.pop()[1])
        self._flush()

    def _append(self, rows: pa.Table) -> None:
        self._buffer.append(rows.select(self._schema.names).cast(self._schema))
        self._buffered += len(rows)
        if self._buffered >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.concat_tables(self._buffer))
        self._buffer, self._buffered = [], 0


def _previous(path: Path, schema: pa.Schema) -> tuple[pa.Table, dict] | None:
    """The table at ``path`` and its resume record, if it was made the way ``schema`` says."""
    if not path.exists():
        return None
    try:
        table = pq.read_table(path, memory_map=True)
        record = json.loads(table.schema.metadata[RESUME_KEY])
        expected = json.loads(schema.metadata[RESUME_KEY])
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None  # unreadable or written by something else: encode everything again
    if record["made_by"] != expected["made_by"] or table.schema.names != schema.names:
        return None
    return table, record


def _with_record(schema: pa.Schema, record: dict) -> pa.Schema:
    metadata = dict(schema.metadata or {})
    metadata[RESUME_KEY] = json.dumps(record, sort_keys=True).encode()
    return schema.with_metadata(metadata)


def _image_rows(batch: pd.DataFrame, embeddings: Tensor, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [
            pa.array(batch["clip_id"].tolist(), pa.string()),
            pa.array(batch["k"].to_numpy(), pa.int32()),
            pa.array(batch["t_seconds"].to_numpy(), pa.float64()),
            vectors_to_arrow(embeddings, FLOAT32),  # [B, D]
        ],
        schema=schema,
    )


def embed_images(
    backbone: Backbone,
    frames: pd.DataFrame,
    root: Path,
    out_path: Path,
    batch_size: int,
    prefetch: int = PREFETCH,
    progress: bool = True,
) -> int:
    """Write ``out_path`` for ``frames`` (sorted by clip_id, k); returns frames encoded."""
    digests = clip_digests(frames, root)
    made_by = {"info": _info_record(backbone), "dtype": str(backbone.dtype)}
    schema = _with_record(
        image_embeddings_schema(backbone.info), {"made_by": made_by, "clips": digests}
    )
    reused: dict[str, pa.Table] = {}
    previous = _previous(out_path, schema)
    if previous is not None:
        table, record = previous
        reused = {
            clip_id: rows
            for clip_id, rows in _split_by_clip(
                table.sort_by([("clip_id", "ascending"), ("k", "ascending")])
            )
            if record["clips"].get(clip_id) == digests.get(clip_id)
        }
        if set(reused) == set(digests) == set(record["clips"]):
            return 0  # the table is already exactly what this run would write
    todo = frames[~frames["clip_id"].isin(reused)].reset_index(drop=True)
    batches = [todo.iloc[start : start + batch_size] for start in range(0, len(todo), batch_size)]

    def load(batch: pd.DataFrame) -> Tensor:
        return backbone.preprocess(load_images([root / path for path in batch["path"]]))

    with (
        table_writer(out_path, schema) as writer,
        closing(prefetched(batches, load, prefetch)) as loaded,
        tqdm(total=len(todo), desc="embed frames", unit="frame", disable=not progress) as bar,
    ):
        sorted_writer = SortedTableWriter(writer, schema, reused)
        for batch, pixels in zip(batches, loaded, strict=True):
            sorted_writer.write(_image_rows(batch, backbone.encode_pixels(pixels), schema))
            bar.update(len(batch))
        sorted_writer.close()
    return len(todo)


def embed_texts(
    backbone: Backbone,
    captions: pd.DataFrame,
    out_path: Path,
    batch_size: int,
    progress: bool = True,
) -> int:
    """Write ``out_path`` for ``captions`` (clip_id, caption; sorted); returns captions encoded."""
    made_by = {
        "info": _info_record(backbone),
        "dtype": str(backbone.dtype),
        "text_length": backbone.text_length,
        "prior_steps": backbone.prior_steps,
        "prior_guidance": backbone.prior_guidance,
        "seed": backbone.seed,
    }
    schema = _with_record(
        text_embeddings_schema(backbone.info, backbone.text_length), {"made_by": made_by}
    )
    wanted = dict(zip(captions["clip_id"], captions["caption"], strict=True))
    reused: dict[str, pa.Table] = {}
    previous = _previous(out_path, schema)
    if previous is not None:
        table, _ = previous
        old_captions = dict(
            zip(table["clip_id"].to_pylist(), table["caption"].to_pylist(), strict=True)
        )
        reused = {
            clip_id: rows
            for clip_id, rows in _split_by_clip(table.sort_by("clip_id"))
            if clip_id in wanted and old_captions[clip_id] == wanted[clip_id]
        }
        if set(reused) == set(wanted) == set(old_captions):
            return 0
    todo = captions[~captions["clip_id"].isin(reused)].reset_index(drop=True)
    with (
        table_writer(out_path, schema) as writer,
        tqdm(total=len(todo), desc="embed captions", unit="caption", disable=not progress) as bar,
    ):
        sorted_writer = SortedTableWriter(writer, schema, reused)
        for start in range(0, len(todo), batch_size):
            batch = todo.iloc[start : start + batch_size]
            encoding = backbone.encode_texts(batch["caption"].tolist())
            rows = pa.Table.from_arrays(
                [
                    pa.array(batch["clip_id"].tolist(), pa.string()),
                    pa.array(batch["caption"].tolist(), pa.string()),
                    vectors_to_arrow(encoding.text_embed, FLOAT32),  # [B, D]
                    vectors_to_arrow(encoding.prior_embed, FLOAT32),  # [B, D]
                    vectors_to_arrow(encoding.hidden_states, pa.float16()),  # [B, T, D]
                ],
                schema=schema,
            )
            sorted_writer.write(rows)
            bar.update(len(batch))
        sorted_writer.close()
    return len(todo)


def _info_record(backbone: Backbone) -> dict:
    info = backbone.info
    return {"backbone": info.backbone, "model_ids": dict(info.model_ids), "dim": info.dim}


def _captions(frames: pd.DataFrame, manifest: pd.DataFrame, manifest_path: Path) -> pd.DataFrame:
    """clip_id, caption of every clip that has frames, sorted by clip_id."""
    clip_ids = sorted(frames["clip_id"].unique())
    by_clip = manifest.drop_duplicates("clip_id").set_index("clip_id")["caption"]
    missing = [clip_id for clip_id in clip_ids if clip_id not in by_clip.index]
    if missing:
        raise UserError(
            f"{manifest_path}: {len(missing)} clips of frames.parquet have no manifest row "
            f"(first: {missing[0]!r}); frames.parquet must come from this manifest: rerun "
            "select_frames on it"
        )
    captions = by_clip.loc[clip_ids].fillna("").astype(str)
    return pd.DataFrame({"clip_id": clip_ids, "caption": captions.to_numpy()})


def _checked_frames(frames_parquet: Path) -> pd.DataFrame:
    frames = read_frames(frames_parquet)
    if frames.empty:
        raise UserError(f"{frames_parquet}: no frames; rerun select_frames (dvc repro)")
    missing = [path for path in frames["path"] if not (frames_parquet.parent / path).is_file()]
    if missing:
        raise UserError(
            f"{frames_parquet}: {len(missing)} frame files are missing (first: "
            f"{frames_parquet.parent / missing[0]}); expected PNGs relative to frames.parquet's "
            "folder: rerun select_frames (dvc repro select_frames)"
        )
    return frames.sort_values(["clip_id", "k"], kind="stable").reset_index(drop=True)


def embed(
    manifest_path: Path,
    frames_parquet: Path,
    out_dir: Path,
    params: BackboneParams,
    *,
    prefetch: int = PREFETCH,
    progress: bool = True,
) -> EmbedSummary:
    """Write ``out_dir/images.parquet`` and ``out_dir/texts.parquet``; see the module doc."""
    started = time.perf_counter()
    frames = _checked_frames(frames_parquet)
    captions = _captions(frames, read_manifest(manifest_path), manifest_path)
    backbone = load_backbone(params)
    summary = EmbedSummary(backbone=backbone.name, dim=backbone.dim)
    summary.frames, summary.clips = len(frames), len(captions)
    out_dir.mkdir(parents=True, exist_ok=True)

    image_started = time.perf_counter()
    summary.frames_encoded = embed_images(
        backbone,
        frames,
        frames_parquet.parent,
        out_dir / IMAGES_TABLE,
        params.batch_size,
        prefetch=prefetch,
        progress=progress,
    )
    summary.image_seconds = time.perf_counter() - image_started

    text_started = time.perf_counter()
    summary.texts_encoded = embed_texts(
        backbone, captions, out_dir / TEXTS_TABLE, params.batch_size, progress=progress
    )
    summary.text_seconds = time.perf_counter() - text_started
    summary.seconds = time.perf_counter() - started
    return summary
