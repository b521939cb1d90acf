"""The generate stage: held-out clips and extra prompts to embeddings, videos and contact sheets.

Held-out clips are the manifest's ``test`` split (never val: it chose the early-stopping
epoch; no test clip is an error saying how to get some), sorted by clip_id, the first
``generate.max_clips`` (0 = all). Their rollouts step through the true frames' times
(``n_frames`` steps; a clip with fewer frames continues at its mean frame gap). Each is
rolled out by every method in ``generate.methods`` and every rollout in
``generate.rollouts`` (``model/rollout.py``).
Prompts in ``generate.prompts`` are encoded by the backbone and rolled out the same way,
always from the prior embedding (they have no first frame). Rollouts are cheap, decoding
is not: only the first ``generate.decode_clips`` held-out clips (0 = all) and every prompt
are decoded by every decoder in ``generate.decoders``, and the decoded frames are
re-encoded by the backbone, so evaluate can score pictures without loading a model.

Outputs under ``out_dir``:
  predictions.parquet   store.predictions_schema: clip_id, method, rollout, step, embedding
  decoded.parquet       store.decoded_schema: the same plus ``decoder`` (decoded clips)
  clips.json            clip_id, caption, split (test | prompt) and decoded (bool) of
                        every generated clip
  videos/<clip_id>/<method>_<rollout>_<decoder>.{gif,mp4}
  contact_sheets/<clip_id>_<decoder>.png  rows: truth (held-out clips), then method.rollout

The stage rewrites everything on a rerun, in a folder beside ``out_dir`` that replaces it
only when complete: ``out_dir`` is a DVC ``persist`` output, kept when a run fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from torch import Tensor

from nextframe.backbones import Backbone, check_compatible, load_backbone
from nextframe.backbones.decoders import (
    BackboneDecoder,
    Decoder,
    RetrievalDecoder,
    decode_distinct,
    encode_pictures,
)
from nextframe.config import Params
from nextframe.device import resolve_device
from nextframe.methods.base import Rolled, RolloutContext
from nextframe.methods.loading import load_methods, roll_out_methods
from nextframe.methods.registry import applicable
from nextframe.model.cases import (
    Clips,
    clip_batch,
    held_out_clips,
    true_embeddings,
)
from nextframe.model.rollout import Conditioning, even_rises
from nextframe.outputs import (
    CLIPS_INDEX,
    DECODED_TABLE,
    HELD_OUT_SPLIT,
    PREDICTIONS_TABLE,
    PROMPT_SPLIT,
    SHEETS_DIR,
    STRIPS_DIR,
    VIDEOS_DIR,
)
from nextframe.render import truth_pictures, write_contact_sheets, write_strips, write_videos
from nextframe.store import (
    ImageEmbeddings,
    TextEmbeddings,
    decoded_schema,
    predictions_schema,
    read_frames,
    read_image_embeddings,
    read_manifest,
    read_text_embeddings,
    replaced_dir,
    rollouts_to_table,
    select_clips,
    write_json,
    write_table,
)

PARAMS = (
    "backbone",
    "generate",
    "train.blend_q",
    "train.device",
    "download.source",
    "runtime",
)
TRUTH_KEY = ("truth", "step")  # the held-out clip's own true embeddings, decoded: the ceiling


def prompt_batch(backbone: Backbone, prompts: list[str], n_frames: int) -> Clips:
    """Free captions, encoded now: they start from the prior embedding, and ``n_frames``
    evenly spaced frames span one training clip's worth of motion."""
    encoding = backbone.encode_texts(list(prompts))
    prior = encoding.prior_embed.float()
    cond = Conditioning(
        hidden_states=encoding.hidden_states.float(),
        prior_embed=prior,
        text_embed=encoding.text_embed.float(),
        start=prior,
        rises=even_rises(len(prior), n_frames),
    )
    clip_ids = [f"prompt-{index:03d}" for index in range(len(prompts))]
    return Clips(clip_ids, list(prompts), [PROMPT_SPLIT] * len(prompts), cond)


def rows_to_decode(splits: list[str], decode_clips: int) -> list[int]:
    """The first ``decode_clips`` held-out clips (0 = all) and every prompt, in order."""
    held_out_rows = [row for row, split in enumerate(splits) if split != PROMPT_SPLIT]
    prompt_rows = [row for row, split in enumerate(splits) if split == PROMPT_SPLIT]
    return held_out_rows[: decode_clips or None] + prompt_rows


def retrieval_decoder(
    manifest: pd.DataFrame,
    images: ImageEmbeddings,
    texts: TextEmbeddings,
    frames: pd.DataFrame,
    frames_root: Path,
    size: int,
) -> RetrievalDecoder:
    """The nearest-training-frame decoder over the pipeline's training split."""
    train_ids = select_clips(manifest, images, texts, "train").clip_ids
    return RetrievalDecoder.from_tables(images, frames, frames_root, train_ids, size)


def build_decoder(
    name: str, backbone: Backbone, params: Params, retrieval: RetrievalDecoder | None = None
) -> Decoder:
    """The decoder ``name`` (``generate.decoders``); ``retrieval`` needs the index built."""
    if name == "retrieval":
        if retrieval is None:
            raise ValueError("the retrieval decoder needs its index (retrieval_decoder)")
        return retrieval
    settings = params.generate
    return BackboneDecoder(
        backbone=backbone,
        size=settings.size,
        steps=settings.steps,
        guidance=settings.guidance,
        seed=settings.seed,
        batch_size=params.backbone.batch_size,
    )


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


@dataclass(frozen=True)
class DecodePlan:
    """Which clips are decoded, which of those get videos, and what is decoded."""

    decoded_ids: list[str]  # held-out clips to decode, then every prompt
    truth_ids: list[str]  # the held-out ones among them: their true embeddings are decoded too
    video_ids: list[str]  # the decoded clips written as videos and contact sheets
    captions: dict[str, str]

    @classmethod
    def of(cls, clips: Clips, held_out_ids: list[str], settings) -> DecodePlan:
        decoded_rows = rows_to_decode(clips.split, settings.decode_clips)
        decoded_ids = [clips.clip_ids[row] for row in decoded_rows]
        video_rows = rows_to_decode(clips.split, settings.video_clips)
        return cls(
            decoded_ids=decoded_ids,
            truth_ids=[c for c in decoded_ids if c in held_out_ids],
            video_ids=[clips.clip_ids[r] for r in video_rows if clips.clip_ids[r] in decoded_ids],
            captions=dict(zip(clips.clip_ids, clips.captions, strict=True)),
        )


def start_pictures(backbone: Backbone, cond: Conditioning, params: Params) -> np.ndarray:
    """[B, S, S, 3] the rollouts' starts as pictures (the backbone's decoding of each start
    embedding), for methods that work in pixels."""
    decoder = build_decoder("backbone", backbone, params)
    return np.concatenate(
        [decoder.decode(chunk) for chunk in cond.start.split(params.backbone.batch_size)]
    )


def embeddings_of(
    rolled: dict[tuple[str, str], Rolled], backbone: Backbone, batch_size: int
) -> dict[tuple[str, str], Tensor]:
    """(method, rollout) -> [C, n, D]: what a method predicted, or its pictures re-encoded."""
    embeddings = {}
    for key, made in rolled.items():
        if made.embeddings is not None:
            embeddings[key] = made.embeddings.float()
        else:
            count, steps = made.frames.shape[:2]
            flat = made.frames.reshape(count * steps, *made.frames.shape[2:])
            embeddings[key] = encode_pictures(backbone, flat, batch_size).reshape(count, steps, -1)
    return embeddings


def decode_all(
    decoder: Decoder,
    rolled: dict[tuple[str, str], Rolled],
    predicted: dict[tuple[str, str], Tensor],
    truth: Tensor,
    rows: list[int],
    backbone: Backbone,
    params: Params,
    progress: bool,
) -> tuple[dict[tuple[str, str], np.ndarray], dict[tuple[str, str], Tensor]]:
    """Pictures [C, n, S, S, 3] and their re-encodings [C, n, D] of every rollout's ``rows``
    and of their truth (``TRUTH_KEY``): embeddings through ``decoder``; methods that made
    pictures keep theirs (their embeddings are already those pictures re-encoded)."""
    to_decode = {k: predicted[k][rows] for k, made in rolled.items() if made.frames is None}
    to_decode[TRUTH_KEY] = truth
    pictures, embedded = decode_distinct(
        decoder, to_decode, backbone, params.backbone.batch_size, progress
    )
    for key, made in rolled.items():
        if made.frames is not None:
            pictures[key] = made.frames[rows]
            embedded[key] = predicted[key][rows]
    return pictures, embedded


def write_decoded(
    name: str,
    pictures: dict[tuple[str, str], np.ndarray],
    plan: DecodePlan,
    true_pictures: dict[str, np.ndarray],
    out_dir: Path,
    fps: float,
) -> int:
    """Strips (what evaluate scores), videos and contact sheets of decoder ``name``; returns
    the number of videos written."""
    decoded_truth = pictures.pop(TRUTH_KEY)
    write_strips(plan.decoded_ids, pictures, name, out_dir / STRIPS_DIR)
    write_strips(plan.truth_ids, {TRUTH_KEY: decoded_truth}, name, out_dir / STRIPS_DIR)
    shown = {
        key: videos[[plan.decoded_ids.index(c) for c in plan.video_ids]]
        for key, videos in pictures.items()
    }
    truth_shown = [c for c in plan.video_ids if c in plan.truth_ids]
    truth_videos = decoded_truth[[plan.truth_ids.index(c) for c in truth_shown]]
    written = write_videos(plan.video_ids, shown, name, out_dir / VIDEOS_DIR, fps)
    written += write_videos(truth_shown, {TRUTH_KEY: truth_videos}, name, out_dir / VIDEOS_DIR, fps)
    write_contact_sheets(
        plan.video_ids,
        [plan.captions[c] for c in plan.video_ids],
        shown,
        true_pictures,
        dict(zip(truth_shown, truth_videos, strict=True)),
        name,
        out_dir / SHEETS_DIR,
    )
    return len(written)


def write_decoded_table(
    reencoded: dict[tuple[str, ...], Tensor], plan: DecodePlan, info, out_dir: Path
) -> None:
    """decoded.parquet: every decoded rollout re-encoded, then the decoded truth."""
    schema = decoded_schema(info)
    methods = {key: value for key, value in reencoded.items() if key[0] != TRUTH_KEY[0]}
    truth_rows = {key: value for key, value in reencoded.items() if key[0] == TRUTH_KEY[0]}
    write_table(
        pa.concat_tables(
            [
                rollouts_to_table(plan.decoded_ids, methods, schema),
                rollouts_to_table(plan.truth_ids, truth_rows, schema),
            ]
        ),
        out_dir / DECODED_TABLE,
    )


def write_clips_index(clips: Clips, plan: DecodePlan, n_frames: int, out_dir: Path) -> None:
    rows = [
        {
            "clip_id": c,
            "caption": caption,
            "split": split,
            "decoded": c in plan.decoded_ids,
            "video": c in plan.video_ids,
        }
        for c, caption, split in zip(clips.clip_ids, clips.captions, clips.split, strict=True)
    ]
    write_json({"n_frames": n_frames, "clips": rows}, out_dir / CLIPS_INDEX)


def run(
    manifest_path: Path,
    embeddings_dir: Path,
    models_dir: Path,
    frames_path: Path,
    out_dir: Path,
    params: Params,
    progress: bool = True,
) -> GenerateSummary:
    """Roll out, decode, write videos, contact sheets and both tables (see module doc).

    ``out_dir`` is replaced as a whole when everything is written: no video, strip or
    table of an earlier run (a decoder or clip no longer there) stays beside the new ones.
    """
    with replaced_dir(out_dir) as staged:
        return _generate(
            manifest_path, embeddings_dir, models_dir, frames_path, staged, params, progress
        )


def _generate(
    manifest_path: Path,
    embeddings_dir: Path,
    models_dir: Path,
    frames_path: Path,
    out_dir: Path,
    params: Params,
    progress: bool,
) -> GenerateSummary:
    settings, clock = params.generate, time.perf_counter()
    manifest = read_manifest(manifest_path)
    images = read_image_embeddings(embeddings_dir / "images.parquet")
    texts = read_text_embeddings(embeddings_dir / "texts.parquet", manifest)
    split, clip_ids = HELD_OUT_SPLIT, held_out_clips(manifest, images, texts, settings.max_clips)
    backbone = load_backbone(params.backbone)
    check_compatible(backbone, images.info)
    clips = clip_batch(clip_ids, split, images, texts, settings.start, settings.n_frames)
    if settings.prompts:
        clips = clips + prompt_batch(backbone, settings.prompts, settings.n_frames)
    names = applicable(settings.methods, params.download.source)
    methods = load_methods(models_dir, names, resolve_device(params.train.device))
    summary = GenerateSummary(split=split, clips=len(clip_ids), prompts=len(settings.prompts))
    summary.seconds["load"], clock = time.perf_counter() - clock, time.perf_counter()

    context = RolloutContext(
        blend_q=params.train.blend_q,
        anchor=settings.anchor,
        start_pictures=lambda: start_pictures(backbone, clips.cond, params),
        captions=clips.captions,
    )
    rolled = roll_out_methods(methods, clips.cond, settings.rollouts, context)
    predicted = embeddings_of(rolled, backbone, params.backbone.batch_size)
    schema = predictions_schema(images.info)
    write_table(rollouts_to_table(clips.clip_ids, predicted, schema), out_dir / PREDICTIONS_TABLE)
    summary.seconds["rollout"] = time.perf_counter() - clock

    plan = DecodePlan.of(clips, clip_ids, settings)
    rows = [clips.clip_ids.index(c) for c in plan.decoded_ids]
    summary.decoded_clips = len(plan.truth_ids)
    truth = true_embeddings(images, plan.truth_ids, settings.n_frames)
    frames = read_frames(frames_path)
    retrieval = None
    if "retrieval" in settings.decoders:
        retrieval = retrieval_decoder(
            manifest, images, texts, frames, frames_path.parent, settings.size
        )
    true_pictures = truth_pictures(
        [c for c in plan.video_ids if c in clip_ids], frames, frames_path.parent, settings.size
    )
    reencoded: dict[tuple[str, ...], Tensor] = {}
    for name in settings.decoders:
        clock = time.perf_counter()
        decoder = build_decoder(name, backbone, params, retrieval)
        pictures, embedded = decode_all(
            decoder, rolled, predicted, truth, rows, backbone, params, progress
        )
        reencoded.update({(*key, name): value for key, value in embedded.items()})
        summary.videos += write_decoded(name, pictures, plan, true_pictures, out_dir, settings.fps)
        summary.seconds[f"decode_{name}"] = time.perf_counter() - clock
    if reencoded:
        write_decoded_table(reencoded, plan, images.info, out_dir)
    write_clips_index(clips, plan, settings.n_frames, out_dir)
    return summary
