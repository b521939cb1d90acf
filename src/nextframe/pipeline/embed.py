"""The embed stage: every selected frame and every distinct caption through the backbone.

Writes two tables (DESIGN.md, "Data contracts"):

- ``images.parquet``: clip_id, k, t_seconds, embedding [D] float32 (raw CLIP image embeds),
  sorted by clip_id, k;
- ``texts.parquet``: one row per distinct caption of the embedded clips: caption_id (a
  digest of the text), caption, text_embed [D], prior_embed [D], hidden_states [T, D]
  float16, sorted by caption_id. A clip finds its row through its manifest caption.

Frames are encoded in batches of ``backbone.batch_size`` while a thread pool loads and
preprocesses the next batches (PNG decoding and CLIP preprocessing are CPU work that would
otherwise leave the accelerator idle). Rows are streamed into the table, so memory stays
flat however many frames there are, and the table appears only once it is complete.

Resume: each table's schema metadata records how its rows were made (the backbone's
``EmbeddingInfo``, dtype and, for texts, the prior's settings) and, for images, a digest of
each clip's frames (their rows in frames.parquet and the PNG bytes). A rerun reuses the rows
of every clip whose digest is unchanged (images) and every caption still wanted (texts),
made the same way, streaming them from the previous table; it encodes only the rest, and
rewrites nothing at all when nothing changed. A texts table of the older one-row-per-clip
layout is rebuilt.

Bad frames: a clip with a missing frame file (found up front) or an unreadable one (found
when loading) is skipped whole, counted and reported by path; its frames and caption get
no rows, since a clip's frames are all or nothing. Only when no clip is left is that an
error. Unreadable clips are recorded in the images table's footer with their digest, so a
rerun skips them again without reading them and still rewrites nothing.

Across processes (``nextframe.distributed``: the stage started under ``torchrun`` or
``accelerate launch``): every rank embeds a contiguous range of clips (then of distinct
captions) into its own shard under ``.shards/``, written atomically and reused by a rerun
with the same number of ranks; rank 0 merges the shards into the two tables, in the row
groups and with the metadata a single process writes, and removes the shards.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch import Tensor

from nextframe import distributed
from nextframe.backbones import Backbone, load_backbone
from nextframe.config import Params
from nextframe.errors import UserError
from nextframe.progress import progress_bar
from nextframe.store import (
    FLOAT32,
    SortedTableWriter,
    VectorColumn,
    caption_id,
    clip_captions,
    image_embeddings_schema,
    merge_sorted_tables,
    read_frames,
    read_manifest,
    stream_rows,
    table_writer,
    text_embeddings_schema,
    text_rows,
    vectors_to_arrow,
)

PARAMS = ("backbone", "runtime")
IMAGES_TABLE = "images.parquet"
TEXTS_TABLE = "texts.parquet"
SHARDS_DIR = ".shards"  # the ranks' parts while several processes embed
RESUME_KEY = b"nextframe.embed"  # schema metadata: how rows were made, per-clip digests
FAILED_KEY = "nextframe.embed.failed"  # footer metadata: unreadable clips, by digest
MISSING_FRAME, UNREADABLE_FRAME = "missing_frame", "unreadable_frame"  # why a clip is skipped
SKIP_REASONS = (MISSING_FRAME, UNREADABLE_FRAME)
SHOWN_SKIPS = 3  # skipped paths named in the summary line
# What decoding a bad PNG raises (truncated, garbage, bad chunk, unreadable, too large).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
PREFETCH = 2  # batches loaded and preprocessed ahead of the one being encoded

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class SkippedClip:
    """A clip left out of both tables, and the first frame file that made it so."""

    clip_id: str
    reason: str  # MISSING_FRAME or UNREADABLE_FRAME
    path: Path
    error: str = ""


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
    skipped: list[SkippedClip] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        counts = Counter(skip.reason for skip in self.skipped)
        return {
            "frames": self.frames,
            "clips": self.clips,
            "frames_encoded": self.frames_encoded,
            "texts_encoded": self.texts_encoded,
            "seconds": self.seconds,
            "frames_per_s": _rate(self.frames_encoded, self.image_seconds),
            "texts_per_s": _rate(self.texts_encoded, self.text_seconds),
            "dim": self.dim,
            **{f"skipped.{reason}": counts[reason] for reason in SKIP_REASONS},
        }

    def describe(self) -> str:
        metrics = self.metrics()
        return (
            f"embed ({self.backbone}, D={self.dim}): {self.frames} frames of {self.clips} clips; "
            f"encoded {self.frames_encoded} frames ({metrics['frames_per_s']:.1f}/s) and "
            f"{self.texts_encoded} captions ({metrics['texts_per_s']:.1f}/s), the rest reused; "
            f"{self.seconds:.1f}s{describe_skipped(self.skipped)}"
        )


def describe_skipped(skipped: list[SkippedClip]) -> str:
    """``"; skipped 2 clips (missing_frame: 1, ...): PATH (why), ..."`` or ``""``."""
    if not skipped:
        return ""
    counts = Counter(skip.reason for skip in skipped)
    shown = ", ".join(
        f"{skip.path} ({skip.reason}{': ' + skip.error if skip.error else ''})"
        for skip in skipped[:SHOWN_SKIPS]
    )
    more = f" and {len(skipped) - SHOWN_SKIPS} more" if len(skipped) > SHOWN_SKIPS else ""
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(counts.items()))
    return f"; skipped {len(skipped)} clips ({reasons}): {shown}{more}"


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


def load_image(path: Path) -> Image.Image:
    """Decode a PNG fully (so no file handle outlives the call), as RGB."""
    with Image.open(path) as image:
        return image.convert("RGB")


@dataclass
class LoadedBatch:
    """A batch's decoded frames: ``pixels`` holds the rows at ``positions`` of the batch, the
    frames of every clip that had no unreadable frame in it; ``failed`` the others."""

    positions: list[int]
    pixels: Tensor | None
    failed: dict[str, SkippedClip]


def load_batch(backbone: Backbone, batch: pd.DataFrame, root: Path) -> LoadedBatch:
    """Decode and preprocess ``batch``; a frame that cannot be decoded fails its clip."""
    images: dict[int, Image.Image] = {}
    failed: dict[str, SkippedClip] = {}
    for position, (clip_id, path) in enumerate(zip(batch["clip_id"], batch["path"], strict=True)):
        if clip_id in failed:
            continue
        try:
            images[position] = load_image(root / path)
        except DECODE_ERRORS as exc:
            failed[clip_id] = SkippedClip(
                clip_id, UNREADABLE_FRAME, root / path, f"{type(exc).__name__}: {exc}"
            )
    clip_ids = batch["clip_id"].tolist()
    positions = [position for position in images if clip_ids[position] not in failed]
    pixels = backbone.preprocess([images[p] for p in positions]) if positions else None
    return LoadedBatch(positions, pixels, failed)


def clip_digests(frames: pd.DataFrame, root: Path) -> tuple[dict[str, str], list[SkippedClip]]:
    """clip_id -> digest of its frames' rows and PNG bytes: what decides its embeddings;
    and the clips with a frame file that is missing or cannot be read at all."""
    digests: dict[str, str] = {}
    skipped: list[SkippedClip] = []
    for clip_id, rows in frames.groupby("clip_id", sort=True):
        digest = hashlib.sha256()
        for row in rows.itertuples(index=False):
            digest.update(f"{row.k}\0{row.frame_index}\0{row.t_seconds!r}\0{row.path}\0".encode())
            path = root / row.path
            try:
                digest.update(path.read_bytes())
            except OSError as exc:
                reason = MISSING_FRAME if not path.exists() else UNREADABLE_FRAME
                error = "" if reason == MISSING_FRAME else f"{type(exc).__name__}: {exc}"
                skipped.append(SkippedClip(str(clip_id), reason, path, error))
                break
        else:
            digests[str(clip_id)] = digest.hexdigest()
    return digests, skipped


def _previous(path: Path, schema: pa.Schema) -> dict | None:
    """The resume record of the table at ``path``, if it was made the way ``schema`` says
    (footer only: no row is read); its ``failed`` holds the footer's unreadable clips."""
    if not path.exists():
        return None
    try:
        names = pq.read_schema(path).names
        record = json.loads(pq.read_schema(path).metadata[RESUME_KEY])
        expected = json.loads(schema.metadata[RESUME_KEY])
        footer = pq.read_metadata(path).metadata or {}
        record["failed"] = json.loads(footer.get(FAILED_KEY.encode(), b"{}"))
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException):
        return None  # unreadable or written by something else: encode everything again
    if record["made_by"] != expected["made_by"] or names != schema.names:
        return None
    return record


def _readable_in_place(path: Path, schema: pa.Schema) -> bool:
    """Whether the vector columns of ``path`` can be read in place (a table from an older
    version cannot: a rerun rewrites it from its own rows, encoding nothing)."""
    try:
        metadata = pq.read_metadata(path)
        for column in schema:
            if pa.types.is_fixed_size_list(column.type):
                VectorColumn.locate(path, column.name, metadata)
    except (OSError, ValueError):
        return False
    return True


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


@dataclass
class ImagesResult:
    """What ``embed_images`` did: frames encoded, clips with rows, clips skipped."""

    frames_encoded: int
    clip_ids: list[str]
    skipped: list[SkippedClip]


def embed_images(
    backbone: Backbone,
    frames: pd.DataFrame,
    root: Path,
    out_path: Path,
    batch_size: int,
    prefetch: int = PREFETCH,
    progress: bool = True,
    *,
    previous: Path | None = None,
    require_rows: bool = True,
) -> ImagesResult:
    """Write ``out_path`` for ``frames`` (sorted by clip_id, k), skipping every clip with a
    missing or unreadable frame; raises UserError (and writes nothing) if none is left,
    unless not ``require_rows`` (a shard may be empty). Rows are reused from ``previous``
    (default: ``out_path`` itself)."""
    digests, skipped = clip_digests(frames, root)
    made_by = {"info": _info_record(backbone), "dtype": str(backbone.dtype)}
    schema = _with_record(
        image_embeddings_schema(backbone.info), {"made_by": made_by, "clips": digests}
    )
    source = previous or out_path
    reused: set[str] = set()
    failed: dict[str, SkippedClip] = {}  # unreadable clips, this run's and known ones
    record = _previous(source, schema)
    if record is not None:
        reused = {
            clip_id
            for clip_id, digest in record["clips"].items()
            if digests.get(clip_id) == digest and clip_id not in record["failed"]
        }
        failed = {
            clip_id: SkippedClip(clip_id, UNREADABLE_FRAME, Path(known["path"]), known["error"])
            for clip_id, known in record["failed"].items()
            if clip_id in digests and known["digest"] == digests[clip_id]
        }
        unchanged = reused | set(failed) == set(digests) == set(record["clips"])
        if reused and unchanged and source == out_path and _readable_in_place(out_path, schema):
            # the table is already exactly what this run would write
            return ImagesResult(0, sorted(reused), _by_clip([*skipped, *failed.values()]))
    todo = frames[frames["clip_id"].isin(digests) & ~frames["clip_id"].isin([*reused, *failed])]
    todo = todo.reset_index(drop=True)
    batches = [todo.iloc[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    encoded: Counter[str] = Counter()
    reused_rows = stream_rows(source, "clip_id", reused.__contains__) if reused else ()

    with (
        table_writer(out_path, schema) as writer,
        closing(prefetched(batches, lambda b: load_batch(backbone, b, root), prefetch)) as loaded,
        progress_bar(
            total=len(todo), desc="embed frames", unit="frame", disable=not progress
        ) as bar,
    ):
        sorted_writer = SortedTableWriter(writer, schema, reused_rows)
        for batch, result in zip(batches, loaded, strict=True):
            for clip_id, skip in result.failed.items():
                failed.setdefault(clip_id, skip)
                sorted_writer.drop(clip_id)  # its rows of earlier batches, still pending
            rows = batch.iloc[result.positions]
            keep = ~rows["clip_id"].isin(failed).to_numpy()
            if keep.any():
                embeddings = backbone.encode_pixels(result.pixels[torch.from_numpy(keep)])
                sorted_writer.write(_image_rows(rows[keep], embeddings, schema))
                encoded.update(rows["clip_id"][keep])
            bar.update(len(batch))
        sorted_writer.close()
        skipped = _by_clip([*skipped, *failed.values()])
        if sorted_writer.rows == 0 and require_rows:
            raise UserError(_nothing_left(root, skipped))  # the table is never written
        writer.add_key_value_metadata({FAILED_KEY: _failed_record(failed, digests)})
    clip_ids = sorted(reused | (set(encoded) - set(failed)))
    return ImagesResult(sum(encoded[c] for c in clip_ids), clip_ids, skipped)


def _by_clip(skipped: Iterable[SkippedClip]) -> list[SkippedClip]:
    return sorted(skipped, key=lambda skip: skip.clip_id)


def _failed_record(failed: dict[str, SkippedClip], digests: dict[str, str]) -> str:
    return json.dumps(
        {
            clip_id: {"digest": digests[clip_id], "path": str(skip.path), "error": skip.error}
            for clip_id, skip in sorted(failed.items())
        },
        sort_keys=True,
    )


def _nothing_left(root: Path, skipped: list[SkippedClip]) -> str:
    return (
        f"{root}: no clip has all its frame files readable{describe_skipped(skipped)}; "
        "expected PNGs relative to frames.parquet's folder: rerun select_frames "
        "(dvc repro select_frames)"
    )


def distinct_captions(captions: Iterable[str]) -> dict[str, str]:
    """caption_id -> caption of every distinct caption, sorted by caption_id."""
    return dict(sorted({caption_id(caption): caption for caption in captions}.items()))


def embed_texts(
    backbone: Backbone,
    captions: Iterable[str],
    out_path: Path,
    batch_size: int,
    progress: bool = True,
    *,
    previous: Path | None = None,
) -> int:
    """Write ``out_path``: one row per distinct caption of ``captions``, sorted by
    caption_id, reusing the rows of ``previous`` (default: ``out_path``); returns the
    captions encoded."""
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
    wanted = distinct_captions(captions)
    source = previous or out_path
    reused: set[str] = set()
    if _previous(source, schema) is not None:
        old_ids = set(pq.read_table(source, columns=["caption_id"]).column(0).to_pylist())
        reused = old_ids & set(wanted)
        unchanged = reused == set(wanted) == old_ids
        if unchanged and source == out_path and _readable_in_place(out_path, schema):
            return 0
    todo = [(key, caption) for key, caption in wanted.items() if key not in reused]
    reused_rows = stream_rows(source, "caption_id", reused.__contains__) if reused else ()
    with (
        table_writer(out_path, schema) as writer,
        progress_bar(
            total=len(todo), desc="embed captions", unit="caption", disable=not progress
        ) as bar,
    ):
        sorted_writer = SortedTableWriter(writer, schema, reused_rows, key="caption_id")
        for start in range(0, len(todo), batch_size):
            texts = [caption for _, caption in todo[start : start + batch_size]]
            encoding = backbone.encode_texts(texts)
            sorted_writer.write(
                text_rows(
                    texts,
                    encoding.text_embed,  # [B, D]
                    encoding.prior_embed,  # [B, D]
                    encoding.hidden_states,  # [B, T, D]
                    schema,
                )
            )
            bar.update(len(texts))
        sorted_writer.close()
    return len(todo)


def _info_record(backbone: Backbone) -> dict:
    info = backbone.info
    return {"backbone": info.backbone, "model_ids": dict(info.model_ids), "dim": info.dim}


def _captions(frames: pd.DataFrame, manifest: pd.DataFrame, manifest_path: Path) -> pd.DataFrame:
    """clip_id, caption of every clip that has frames, sorted by clip_id."""
    clip_ids = sorted(frames["clip_id"].unique())
    by_clip = clip_captions(manifest)
    missing = [clip_id for clip_id in clip_ids if clip_id not in by_clip.index]
    if missing:
        raise UserError(
            f"{manifest_path}: {len(missing)} clips of frames.parquet have no manifest row "
            f"(first: {missing[0]!r}); frames.parquet must come from this manifest: rerun "
            "select_frames on it"
        )
    return pd.DataFrame({"clip_id": clip_ids, "caption": by_clip.loc[clip_ids].to_numpy()})


def _checked_frames(frames_parquet: Path) -> pd.DataFrame:
    frames = read_frames(frames_parquet)
    if frames.empty:
        raise UserError(f"{frames_parquet}: no frames; rerun select_frames (dvc repro)")
    return frames.sort_values(["clip_id", "k"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------- across processes


def shard_path(out_dir: Path, table: str, world: distributed.World) -> Path:
    """Where rank ``world.rank`` writes its part of ``table`` (names carry the world size,
    so a rerun with as many ranks resumes from them and another count starts afresh)."""
    stem = Path(table).stem
    return out_dir / SHARDS_DIR / f"{stem}-{world.rank:05d}-of-{world.size:05d}.parquet"


def merge_shards(
    out_dir: Path, table: str, world: distributed.World, schema: pa.Schema, key: str
) -> None:
    """Rank 0: the ranks' shards of ``table`` (``schema`` without the resume record) into
    ``out_dir/table``, as one process writes it (rows, row groups, record and footer)."""
    shards = [
        shard_path(out_dir, table, distributed.World(rank, world.size, 0))
        for rank in range(world.size)
    ]
    absent = [shard for shard in shards if not shard.exists()]
    if absent:
        raise UserError(
            f"{absent[0]} (written by another rank) is not visible here; with several "
            f"nodes, {out_dir} must be on a file system every node shares"
        )
    records = [json.loads(pq.read_schema(shard).metadata[RESUME_KEY]) for shard in shards]
    record = {"made_by": records[0]["made_by"]}
    if "clips" in records[0]:
        record["clips"] = {c: d for part in records for c, d in part["clips"].items()}
    footers = [pq.read_metadata(shard).metadata or {} for shard in shards]
    footer = {}
    if any(FAILED_KEY.encode() in part for part in footers):
        failed = {}
        for part in footers:
            failed.update(json.loads(part.get(FAILED_KEY.encode(), b"{}")))
        footer[FAILED_KEY] = json.dumps(dict(sorted(failed.items())), sort_keys=True)
    merge_sorted_tables(shards, out_dir / table, _with_record(schema, record), key, footer)


def _gather_images(world: distributed.World, mine: ImagesResult) -> ImagesResult:
    parts = distributed.all_gather(world, mine)
    return ImagesResult(
        frames_encoded=sum(part.frames_encoded for part in parts),
        clip_ids=sorted(clip_id for part in parts for clip_id in part.clip_ids),
        skipped=_by_clip(skip for part in parts for skip in part.skipped),
    )


def run(
    manifest_path: Path,
    frames_parquet: Path,
    out_dir: Path,
    params: Params,
    *,
    prefetch: int | None = None,
    progress: bool = True,
) -> EmbedSummary:
    """Write ``out_dir/images.parquet`` and ``out_dir/texts.parquet``; see the module doc.

    ``prefetch`` defaults to ``PREFETCH`` batches on a GPU and none on the CPU, where the
    loader threads only take cores from the forward pass (benchmarks/embed.py: 915 vs 718
    frames/s at batch 32 on 2 cores).
    """
    started = time.perf_counter()
    world = distributed.World.from_env()
    root = frames_parquet.parent
    frames = _checked_frames(frames_parquet)
    captions = _captions(frames, read_manifest(manifest_path), manifest_path)
    if world.size == 1:
        missing = [path for path in frames["path"] if not (root / path).is_file()]
        if len(set(frames["clip_id"][frames["path"].isin(missing)])) == len(captions):
            _, skipped = clip_digests(frames, root)  # every clip lacks a frame: fail early
            raise UserError(_nothing_left(root, skipped))
    settings = params.backbone.model_copy(
        update={"device": distributed.rank_device(params.backbone.device, world)}
    )
    backbone = load_backbone(settings)
    if prefetch is None:
        prefetch = PREFETCH if backbone.device.type == "cuda" else 0
    summary = EmbedSummary(backbone=backbone.name, dim=backbone.dim)
    out_dir.mkdir(parents=True, exist_ok=True)
    images_path, texts_path = out_dir / IMAGES_TABLE, out_dir / TEXTS_TABLE
    with distributed.process_group(world):
        image_started = time.perf_counter()
        if world.size == 1:
            images = embed_images(
                backbone, frames, root, images_path, settings.batch_size, prefetch, progress
            )
        else:
            clip_ids = sorted(frames["clip_id"].unique())
            counts = frames.groupby("clip_id").size().loc[clip_ids].to_numpy()
            mine = clip_ids[distributed.shard(counts, world)]  # contiguous, by frame count
            shard = shard_path(out_dir, IMAGES_TABLE, world)
            images = _gather_images(
                world,
                embed_images(
                    backbone,
                    frames[frames["clip_id"].isin(mine)].reset_index(drop=True),
                    root,
                    shard,
                    settings.batch_size,
                    prefetch,
                    progress and world.rank == 0,
                    previous=shard if shard.exists() else images_path,
                    require_rows=False,
                ),
            )
            if not images.clip_ids:
                raise UserError(_nothing_left(root, images.skipped))
            if world.rank == 0:
                schema = image_embeddings_schema(backbone.info)
                merge_shards(out_dir, IMAGES_TABLE, world, schema, "clip_id")
        summary.image_seconds = time.perf_counter() - image_started
        summary.frames_encoded, summary.skipped = images.frames_encoded, images.skipped
        summary.frames = int(frames["clip_id"].isin(images.clip_ids).sum())
        summary.clips = len(images.clip_ids)
        kept = captions[captions["clip_id"].isin(images.clip_ids)]["caption"]

        text_started = time.perf_counter()
        if world.size == 1:
            summary.texts_encoded = embed_texts(
                backbone, kept, texts_path, settings.batch_size, progress=progress
            )
        else:
            wanted = list(distinct_captions(kept).values())  # in caption_id order
            shard = shard_path(out_dir, TEXTS_TABLE, world)
            encoded = embed_texts(
                backbone,
                wanted[distributed.shard(np.ones(len(wanted)), world)],
                shard,
                settings.batch_size,
                progress=progress and world.rank == 0,
                previous=shard if shard.exists() else texts_path,
            )
            summary.texts_encoded = sum(distributed.all_gather(world, encoded))
            if world.rank == 0:
                schema = text_embeddings_schema(backbone.info, backbone.text_length)
                merge_shards(out_dir, TEXTS_TABLE, world, schema, "caption_id")
                shutil.rmtree(out_dir / SHARDS_DIR)
            distributed.barrier(world)  # every rank returns with the tables in place
        summary.text_seconds = time.perf_counter() - text_started
    summary.seconds = time.perf_counter() - started
    return summary
