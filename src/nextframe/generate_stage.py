"""The generate stage: held-out clips and extra prompts to embeddings, videos and contact sheets.

Held-out clips are the manifest's ``test`` split (``val`` when the test split is empty,
as with very small sources; ``clips.json`` records which), sorted by clip_id, the first
``generate.max_clips`` (0 = all). Each is rolled out by every method in
``generate.methods`` and every rollout in ``generate.rollouts`` (see ``generate.py``).
Prompts in ``generate.prompts`` are encoded by the backbone and rolled out the same way,
always from the prior embedding (they have no first frame). Rollouts are cheap, decoding
is not: only the first ``generate.decode_clips`` held-out clips (0 = all) and every prompt
are decoded by every decoder in ``generate.decoders``, and the decoded frames are
re-encoded by the backbone, so evaluate can score pictures without loading a model.

Outputs under ``out_dir``:
  predictions.parquet   store.predictions_schema: clip_id, method, rollout, step, embedding
  decoded.parquet       the same plus ``decoder``: re-encoded decoded frames (decoded clips)
  clips.json            clip_id, caption, split (test | val | prompt) and decoded (bool) of
                        every generated clip
  videos/<clip_id>/<method>_<rollout>_<decoder>.{gif,mp4}
  contact_sheets/<clip_id>_<decoder>.png  rows: truth (held-out clips), then method.rollout

The stage rewrites everything on a rerun (DVC removes its outputs before running it anyway);
with the tiny backbone it takes seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from nextframe.config import Params
from nextframe.data.video import write_video
from nextframe.decode import Decoder, DiffusionDecoder, RetrievalDecoder, contact_sheet, to_array
from nextframe.errors import UserError
from nextframe.generate import Conditioning, rollout
from nextframe.model import Predictor, load_predictors
from nextframe.model.training import resolve_device
from nextframe.store import (
    EmbeddingInfo,
    ImageEmbeddings,
    TextEmbeddings,
    atomic_path,
    predictions_schema,
    read_frames,
    read_image_embeddings,
    read_manifest,
    read_text_embeddings,
    vector_type,
    vectors_to_arrow,
    write_table,
)

ROLLOUT_BATCH = 256  # captions per predictor call
VIDEO_FORMATS = ("gif", "mp4")
PROMPT_SPLIT = "prompt"


def decoded_schema(info: EmbeddingInfo) -> pa.Schema:
    """Re-encoded decoded frames: one row per clip x method x rollout x decoder x step."""
    fields = [
        ("clip_id", pa.string()),
        ("method", pa.string()),
        ("rollout", pa.string()),
        ("decoder", pa.string()),
        ("step", pa.int32()),
        ("embedding", vector_type(info.dim)),
    ]
    return pa.schema(fields, metadata=info.to_metadata())


@dataclass(frozen=True)
class Clips:
    """The captions to generate for, with their conditioning, in one batch."""

    clip_ids: list[str]
    captions: list[str]
    split: list[str]
    cond: Conditioning


def usable_clips(
    manifest: pd.DataFrame, images: ImageEmbeddings, texts: TextEmbeddings, split: str
) -> list[str]:
    """Sorted ok clips of ``split`` with a caption encoding and at least 2 embedded frames."""
    slices, text_rows = images.clip_slices(), texts.index()
    chosen = manifest.loc[(manifest["status"] == "ok") & (manifest["split"] == split), "clip_id"]
    return sorted(
        clip_id
        for clip_id in chosen
        if clip_id in text_rows
        and clip_id in slices
        and slices[clip_id].stop - slices[clip_id].start >= 2
    )


def held_out(
    manifest: pd.DataFrame, images: ImageEmbeddings, texts: TextEmbeddings, max_clips: int
) -> tuple[str, list[str]]:
    """The test clips (val if there are none) to generate and score, first ``max_clips``."""
    for split in ("test", "val"):
        clip_ids = usable_clips(manifest, images, texts, split)
        if clip_ids:
            return split, clip_ids[: max_clips or None]
    raise UserError(
        "no held-out clips: the manifest has no ok test or val clip with embeddings and >= 2 "
        "frames; set download.split.test (or val) above 0 and rerun dvc repro"
    )


def clip_batch(
    clip_ids: list[str], split: str, images: ImageEmbeddings, texts: TextEmbeddings, start: str
) -> Clips:
    """Conditioning of held-out clips from the tables; rise_step = 1 / (frames - 1)."""
    slices, text_rows = images.clip_slices(), texts.index()
    rows = torch.tensor([text_rows[c] for c in clip_ids], dtype=torch.int64)
    prior = texts.prior_embed[rows].float()  # [C, D]
    if start == "first_frame":
        start_embed = images.embeddings[[slices[c].start for c in clip_ids]].float()
    else:
        start_embed = prior
    counts = torch.tensor([slices[c].stop - slices[c].start for c in clip_ids], dtype=torch.float32)
    cond = Conditioning(
        hidden_states=texts.hidden_states[rows].float(),
        prior_embed=prior,
        text_embed=texts.text_embed[rows].float(),
        start=start_embed,
        rise_step=1.0 / (counts - 1),
    )
    return Clips(
        list(clip_ids), [texts.captions[r] for r in rows.tolist()], [split] * len(clip_ids), cond
    )


def prompt_batch(backbone, prompts: list[str], n_frames: int) -> Clips:
    """Conditioning of free captions, encoded now; always starts from the prior embedding."""
    encoding = backbone.encode_texts(list(prompts))
    prior = encoding.prior_embed.float()
    cond = Conditioning(
        hidden_states=encoding.hidden_states.float(),
        prior_embed=prior,
        text_embed=encoding.text_embed.float(),
        start=prior,
        rise_step=torch.full((len(prompts),), 1.0 / (n_frames - 1)),
    )
    clip_ids = [f"prompt-{index:03d}" for index in range(len(prompts))]
    return Clips(clip_ids, list(prompts), [PROMPT_SPLIT] * len(prompts), cond)


def merge(first: Clips, second: Clips) -> Clips:
    cond = Conditioning(
        *(
            torch.cat([getattr(first.cond, name), getattr(second.cond, name)])
            for name in Conditioning.__dataclass_fields__
        )
    )
    return Clips(
        first.clip_ids + second.clip_ids,
        first.captions + second.captions,
        first.split + second.split,
        cond,
    )


def select_predictors(
    available: dict[str, Predictor], methods: list[str], key: str = "generate.methods"
) -> dict[str, Predictor]:
    """The predictors named in ``methods``; ``key`` names the setting in the error."""
    unknown = [name for name in methods if name not in available]
    if unknown:
        raise UserError(f"{key}: unknown {unknown}; the models folder has {sorted(available)}")
    return {name: available[name] for name in methods}


def roll_out_all(
    predictors: dict[str, Predictor],
    cond: Conditioning,
    kinds: list[str],
    n_frames: int,
    blend_q: float,
    anchor: str,
) -> dict[tuple[str, str], Tensor]:
    """(method, rollout) -> [C, n_frames, D]; one predictor call per step per batch of captions."""
    results: dict[tuple[str, str], Tensor] = {}
    for method, predictor in predictors.items():
        for kind in kinds:
            parts = [
                rollout(
                    predictor,
                    cond.subset(slice(first, first + ROLLOUT_BATCH)),
                    kind,
                    n_frames,
                    blend_q,
                    anchor,
                )
                for first in range(0, len(cond), ROLLOUT_BATCH)
            ]
            results[(method, kind)] = torch.cat(parts)
    return results


def long_table(
    clip_ids: list[str],
    embeddings: dict[tuple[str, ...], Tensor],
    keys: tuple[str, ...],
    schema: pa.Schema,
) -> pa.Table:
    """One row per clip x step for every entry of ``embeddings`` ([C, n, D] each)."""
    columns: dict[str, list] = {
        "clip_id": [],
        **{key: [] for key in keys},
        "step": [],
        "vectors": [],
    }
    for labels, values in embeddings.items():
        count, steps = values.shape[:2]
        columns["clip_id"].append(np.repeat(np.asarray(clip_ids, dtype=object), steps))
        for key, label in zip(keys, labels, strict=True):
            columns[key].append(np.full(count * steps, label, dtype=object))
        columns["step"].append(np.tile(np.arange(steps, dtype=np.int32), count))
        columns["vectors"].append(values.reshape(count * steps, -1).numpy())
    arrays = [
        pa.array(np.concatenate(columns[name]), type=schema.field(name).type)
        for name in ("clip_id", *keys, "step")
    ]
    arrays.append(vectors_to_arrow(np.concatenate(columns["vectors"]), pa.float32()))
    return pa.Table.from_arrays(arrays, schema=schema)


def truth_pictures(
    clip_ids: list[str], frames: pd.DataFrame, frames_root: Path, size: int
) -> dict[str, np.ndarray]:
    """The selected true frames of each held-out clip, [K, size, size, 3], for contact sheets."""
    pictures: dict[str, np.ndarray] = {}
    for clip_id, rows in (
        frames[frames["clip_id"].isin(clip_ids)].sort_values("k").groupby("clip_id")
    ):
        loaded = []
        for path in rows["path"]:
            with Image.open(frames_root / path) as image:
                loaded.append(to_array(image, size))
        pictures[str(clip_id)] = np.stack(loaded)
    return pictures


def encode_pictures(backbone, pictures: np.ndarray, batch_size: int) -> Tensor:
    """[N, H, W, 3] uint8 -> [N, D] backbone image embeddings, in batches."""
    parts = []
    for first in range(0, len(pictures), batch_size):
        images = [Image.fromarray(frame) for frame in pictures[first : first + batch_size]]
        parts.append(backbone.encode_images(images).float().cpu())
    return torch.cat(parts)


def rows_to_decode(splits: list[str], decode_clips: int) -> list[int]:
    """The first ``decode_clips`` held-out clips (0 = all) and every prompt, in order."""
    held_out_rows = [row for row, split in enumerate(splits) if split != PROMPT_SPLIT]
    prompt_rows = [row for row, split in enumerate(splits) if split == PROMPT_SPLIT]
    return held_out_rows[: decode_clips or None] + prompt_rows


def decode_distinct(
    decoder: Decoder,
    predicted: dict[tuple[str, str], Tensor],
    backbone,
    batch_size: int,
    progress: bool,
) -> tuple[dict[tuple[str, str], np.ndarray], dict[tuple[str, str], Tensor]]:
    """Decode and re-encode every distinct predicted embedding once.

    Many rollouts repeat each other (a baseline's chain and step rollouts are the same
    vectors, and every method starts from the same frame), and every row of one video
    is decoded from the same seed, so a row's picture depends on its embedding alone:
    decoding each distinct vector once saves about a third of the diffusion time here.
    Returns, per (method, rollout), the pictures [C, n, S, S, 3] and their re-encodings
    [C, n, D].
    """
    keys = list(predicted)
    stacked = torch.cat([predicted[key].reshape(-1, predicted[key].shape[-1]) for key in keys])
    distinct, inverse = torch.unique(stacked, dim=0, return_inverse=True)
    chunks = distinct.split(batch_size)
    decoded = np.concatenate(
        [
            decoder.decode(chunk)
            for chunk in tqdm(chunks, desc=f"decode {decoder.name}", disable=not progress)
        ]
    )  # [U, S, S, 3]
    embedded = encode_pictures(backbone, decoded, batch_size)  # [U, D]
    pictures: dict[tuple[str, str], np.ndarray] = {}
    reencoded: dict[tuple[str, str], Tensor] = {}
    offset = 0
    for key in keys:
        count, steps = predicted[key].shape[:2]
        rows = inverse[offset : offset + count * steps]
        offset += count * steps
        pictures[key] = decoded[rows.numpy()].reshape(count, steps, *decoded.shape[1:])
        reencoded[key] = embedded[rows].reshape(count, steps, -1)
    return pictures, reencoded


def write_json(payload: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


@dataclass
class GenerateSummary:
    split: str
    clips: int
    prompts: int
    decoded_clips: int = 0
    videos: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        return {
            "clips": self.clips,
            "prompts": self.prompts,
            "decoded_clips": self.decoded_clips,
            "videos": self.videos,
            **{f"seconds.{name}": value for name, value in self.seconds.items()},
        }

    def describe(self) -> str:
        timing = ", ".join(f"{name} {value:.1f}s" for name, value in self.seconds.items())
        return (
            f"generated {self.clips} held-out {self.split} clips and {self.prompts} prompts, "
            f"decoded {self.decoded_clips} of the clips and every prompt, "
            f"{self.videos} videos ({timing})"
        )


def build_decoders(
    names: list[str],
    backbone,
    images: ImageEmbeddings,
    frames: pd.DataFrame,
    frames_root: Path,
    train_ids: list[str],
    params: Params,
) -> list[Decoder]:
    decoders: list[Decoder] = []
    settings = params.generate
    for name in names:
        if name == "retrieval":
            decoders.append(
                RetrievalDecoder.from_tables(images, frames, frames_root, train_ids, settings.size)
            )
        else:
            decoders.append(
                DiffusionDecoder(
                    backbone=backbone,
                    size=settings.size,
                    steps=settings.steps,
                    guidance=settings.guidance,
                    seed=settings.seed,
                    batch_size=params.backbone.batch_size,
                )
            )
    return decoders


def check_backbone(backbone, info: EmbeddingInfo) -> None:
    if backbone.name != info.backbone or backbone.dim != info.dim:
        raise UserError(
            f"the embeddings were made by backbone {info.backbone!r} (D={info.dim}) but "
            f"backbone.name is {backbone.name!r} (D={backbone.dim}); rerun embed (dvc repro)"
        )


def run_generate(
    manifest_path: Path,
    embeddings_dir: Path,
    models_dir: Path,
    frames_path: Path,
    out_dir: Path,
    params: Params,
    progress: bool = True,
) -> GenerateSummary:
    """Roll out, decode, write videos, contact sheets and both tables (see module docstring)."""
    from nextframe.backbones import load_backbone

    settings = params.generate
    clock = time.perf_counter()
    manifest = read_manifest(manifest_path)
    images = read_image_embeddings(embeddings_dir / "images.parquet")
    texts = read_text_embeddings(embeddings_dir / "texts.parquet")
    frames = read_frames(frames_path)
    split, clip_ids = held_out(manifest, images, texts, settings.max_clips)
    backbone = load_backbone(params.backbone)
    check_backbone(backbone, images.info)
    clips = clip_batch(clip_ids, split, images, texts, settings.start)
    if settings.prompts:
        clips = merge(clips, prompt_batch(backbone, settings.prompts, settings.n_frames))
    predictors = select_predictors(
        load_predictors(models_dir, resolve_device(params.train.device)), settings.methods
    )
    summary = GenerateSummary(split=split, clips=len(clip_ids), prompts=len(settings.prompts))
    summary.seconds["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    predicted = roll_out_all(
        predictors,
        clips.cond,
        settings.rollouts,
        settings.n_frames,
        params.train.blend_q,
        settings.anchor,
    )
    write_table(
        long_table(
            clips.clip_ids, predicted, ("method", "rollout"), predictions_schema(images.info)
        ),
        out_dir / "predictions.parquet",
    )
    summary.seconds["rollout"] = time.perf_counter() - clock

    train_ids = usable_clips(manifest, images, texts, "train")
    decoders = build_decoders(
        settings.decoders, backbone, images, frames, frames_path.parent, train_ids, params
    )
    reencoded: dict[tuple[str, str, str], Tensor] = {}
    decoded_rows = rows_to_decode(clips.split, settings.decode_clips)
    decoded_ids = [clips.clip_ids[row] for row in decoded_rows]
    summary.decoded_clips = sum(clips.split[row] != PROMPT_SPLIT for row in decoded_rows)
    to_decode = {key: rolled[decoded_rows] for key, rolled in predicted.items()}
    truth = truth_pictures(
        [c for c in decoded_ids if c in clip_ids], frames, frames_path.parent, settings.size
    )
    for decoder in decoders:
        clock = time.perf_counter()
        pictures, embedded = decode_distinct(
            decoder, to_decode, backbone, params.backbone.batch_size, progress
        )
        for (method, kind), frames_embedded in embedded.items():
            reencoded[(method, kind, decoder.name)] = frames_embedded
        summary.videos += write_videos(decoded_ids, pictures, decoder.name, out_dir, settings.fps)
        write_contact_sheets(decoded_ids, pictures, truth, decoder.name, out_dir)
        summary.seconds[f"decode_{decoder.name}"] = time.perf_counter() - clock

    if reencoded:
        write_table(
            long_table(
                decoded_ids,
                reencoded,
                ("method", "rollout", "decoder"),
                decoded_schema(images.info),
            ),
            out_dir / "decoded.parquet",
        )
    write_json(
        {
            "n_frames": settings.n_frames,
            "clips": [
                {"clip_id": c, "caption": caption, "split": s, "decoded": c in decoded_ids}
                for c, caption, s in zip(clips.clip_ids, clips.captions, clips.split, strict=True)
            ],
        },
        out_dir / "clips.json",
    )
    return summary


def write_videos(
    clip_ids: list[str],
    pictures: dict[tuple[str, str], np.ndarray],
    decoder: str,
    out_dir: Path,
    fps: float,
) -> int:
    """One GIF and one MP4 per clip, method and rollout; returns the number of files written."""
    written = 0
    for (method, kind), videos in pictures.items():
        for clip_id, video in zip(clip_ids, videos, strict=True):
            for suffix in VIDEO_FORMATS:
                write_video(
                    out_dir / "videos" / clip_id / f"{method}_{kind}_{decoder}.{suffix}", video, fps
                )
                written += 1
    return written


def write_contact_sheets(
    clip_ids: list[str],
    pictures: dict[tuple[str, str], np.ndarray],
    truth: dict[str, np.ndarray],
    decoder: str,
    out_dir: Path,
) -> None:
    """Sheet per clip: the true frames (if any), then a row per method.rollout."""
    for index, clip_id in enumerate(clip_ids):
        rows = [("truth", truth[clip_id])] if clip_id in truth else []
        rows += [(f"{method}.{kind}", videos[index]) for (method, kind), videos in pictures.items()]
        with atomic_path(out_dir / "contact_sheets" / f"{clip_id}_{decoder}.png") as tmp:
            contact_sheet(rows).save(tmp, format="PNG", optimize=True)
