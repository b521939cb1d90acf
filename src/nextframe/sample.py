"""``nextframe sample``: a video for any caption from the trained models, outside the pipeline.

The caption is encoded by the backbone in ``params.backbone``, rolled out from its prior
embedding by one method (step by default: every frame from the start), decoded, and written
as GIF or MP4 (by the suffix of ``out``). It goes through the same functions as the
generate stage (``prompt_batch``, the method's ``rollout``, ``build_decoder``); the retrieval
decoder reads the training split's frames from the pipeline's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nextframe.backbones import check_compatible, load_backbone
from nextframe.config import Params
from nextframe.data.video import write_video
from nextframe.device import resolve_device
from nextframe.errors import UserError
from nextframe.methods.base import RolloutContext
from nextframe.methods.loading import load_methods
from nextframe.pipeline.generate import (
    build_decoder,
    prompt_batch,
    retrieval_decoder,
    start_pictures,
)
from nextframe.store import read_frames, read_image_embeddings, read_manifest, read_text_embeddings

VIDEO_SUFFIXES = (".gif", ".mp4")
DECODERS = ("retrieval", "backbone")


@dataclass(frozen=True)
class PipelineOutputs:
    """Where the pipeline left what the retrieval decoder needs."""

    manifest: Path = Path("data/raw/manifest.parquet")
    embeddings: Path = Path("data/embeddings")
    frames: Path = Path("data/frames/frames.parquet")


def sample_video(
    caption: str,
    out: Path,
    params: Params,
    models_dir: Path,
    n_frames: int,
    method: str = "splitter",
    kind: str = "chain",
    decoder_name: str = "retrieval",
    outputs: PipelineOutputs | None = None,
) -> Path:
    """Write a video of ``n_frames`` frames for ``caption`` to ``out`` and return it."""
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--out must end in .gif or .mp4, got {out.name!r}")
    if n_frames < 2:
        raise UserError(f"--frames must be at least 2, got {n_frames}")
    if decoder_name not in DECODERS:
        raise UserError(f"--decoder must be retrieval or backbone, got {decoder_name!r}")
    settings = params.generate
    chosen = load_methods(models_dir, [method], resolve_device(params.train.device), "--method")
    backbone = load_backbone(params.backbone)
    clips = prompt_batch(backbone, [caption.strip() or caption], n_frames)
    context = RolloutContext(
        blend_q=params.train.blend_q,
        anchor=settings.anchor,
        start_pictures=lambda: start_pictures(backbone, clips.cond, params),
        captions=clips.captions,
    )
    made = chosen[method].rollout(clips.cond, kind, context)
    if made.frames is not None:  # a method that draws its own pictures
        write_video(out, made.frames[0], settings.fps)
        return out
    embeddings = made.embeddings[0]  # [n, D]
    retrieval = None
    if decoder_name == "retrieval":
        outputs = outputs or PipelineOutputs()
        images = read_image_embeddings(outputs.embeddings / "images.parquet")
        check_compatible(backbone, images.info)
        manifest = read_manifest(outputs.manifest)
        retrieval = retrieval_decoder(
            manifest,
            images,
            read_text_embeddings(outputs.embeddings / "texts.parquet", manifest),
            read_frames(outputs.frames),
            outputs.frames.parent,
            settings.size,
        )
    decoder = build_decoder(decoder_name, backbone, params, retrieval)
    write_video(out, decoder.decode(embeddings), settings.fps)  # [n, D] -> [n, S, S, 3]
    return out
