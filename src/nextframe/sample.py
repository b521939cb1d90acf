"""``nextframe sample``: a video for any caption from the trained models, outside the pipeline.

The caption is encoded by the backbone in ``params.backbone``, rolled out from its prior
embedding by one method (step by default: every frame from the start), decoded, and written
as GIF or MP4 (by the suffix of ``out``). It goes through the same functions as the
generate stage (``prompt_batch``, the method's ``rollout``, ``build_decoder``); the retrieval
decoder reads the training split's frames from the pipeline's outputs.

Everything a person can type is checked before any model loads, with an error naming the
argument: ``--out`` (suffix, a folder that can be made and written), ``--frames``, the
decoder, the retrieval decoder's inputs and an empty caption. A caption the backbone will
misread (words it never learned, more tokens than its text tower takes) is drawn anyway,
with a warning saying what was ignored (``backbones.captions``).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nextframe.backbones import check_compatible, load_backbone
from nextframe.backbones.captions import caption_warnings
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
MAX_FRAMES = 1000  # beyond it a video is minutes of frames of one clip's motion
DECODERS = ("retrieval", "backbone")


@dataclass(frozen=True)
class PipelineOutputs:
    """Where the pipeline left what the retrieval decoder needs."""

    manifest: Path = Path("data/raw/manifest.parquet")
    embeddings: Path = Path("data/embeddings")
    frames: Path = Path("data/frames/frames.parquet")


def check_out(out: Path) -> None:
    """Fail now, naming ``--out``, where the video could not be written (before any work).

    Makes ``out``'s folder and a throwaway file in it: the one check that holds for every
    reason a write can fail (a file where a folder should be, permissions, a read-only
    file system), for root as for anyone.
    """
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--out must end in .gif or .mp4, got {out.name!r}")
    if out.is_dir():
        raise UserError(f"--out: {out} is a folder; name the video file, e.g. {out / 'sample.gif'}")
    blocking = next((parent for parent in out.parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise UserError(f"--out: {blocking} is a file, so it cannot hold the folder of {out}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out.parent).close()
    except OSError as exc:
        raise UserError(f"--out: cannot write into {out.parent}: {exc.strerror}") from None


def check_retrieval_inputs(outputs: PipelineOutputs) -> None:
    """The retrieval decoder's inputs exist, or an error naming the option to fix."""
    needed = (
        ("--manifest", outputs.manifest),
        ("--embeddings", outputs.embeddings / "images.parquet"),
        ("--embeddings", outputs.embeddings / "texts.parquet"),
        ("--frames-table", outputs.frames),
    )
    for option, path in needed:
        if not path.is_file():
            raise UserError(
                f"{option}: {path} not found (the retrieval decoder needs the pipeline's "
                "outputs: run dvc repro, or use --decoder backbone)"
            )


def warn_on_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def sample_video(
    caption: str,
    out: Path,
    params: Params,
    models_dir: Path,
    n_frames: int,
    method: str = "splitter",
    kind: str = "step",
    decoder_name: str = "backbone",
    outputs: PipelineOutputs | None = None,
    warn: Callable[[str], None] = warn_on_stderr,
) -> Path:
    """Write a video of ``n_frames`` frames for ``caption`` to ``out`` and return it; the
    frames spread evenly over one clip's span (more frames: the same motion, smoother)."""
    caption = caption.strip()
    if not caption:
        raise UserError(
            "CAPTION is empty: say what the video shows, "
            "e.g. 'a red circle grows on a blue background'"
        )
    if not 2 <= n_frames <= MAX_FRAMES:
        raise UserError(f"--frames must be from 2 to {MAX_FRAMES}, got {n_frames}")
    if decoder_name not in DECODERS:
        raise UserError(f"--decoder must be retrieval or backbone, got {decoder_name!r}")
    outputs = outputs or PipelineOutputs()
    if decoder_name == "retrieval":
        check_retrieval_inputs(outputs)
    check_out(out)
    if not models_dir.is_dir():
        raise UserError(f"--models: {models_dir} is not a folder (the train stage writes it)")
    settings = params.generate
    chosen = load_methods(models_dir, [method], resolve_device(params.train.device), "--method")
    backbone = load_backbone(params.backbone)
    for message in caption_warnings(backbone, caption):
        warn(message)
    clips = prompt_batch(backbone, [caption], n_frames)
    context = RolloutContext(
        blend_q=params.train.blend_q,
        anchor=settings.anchor,
        start_pictures=lambda: start_pictures(backbone, clips.cond, params),
        captions=clips.captions,
    )
    made = chosen[method].rollout(clips.cond, kind, context)
    if made.frames is not None:  # a method that draws its own pictures
        return write(out, made.frames[0], settings.fps)
    embeddings = made.embeddings[0]  # [n, D]
    retrieval = None
    if decoder_name == "retrieval":
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
    return write(out, decoder.decode(embeddings), settings.fps)  # [n, D] -> [n, S, S, 3]


def write(out: Path, frames, fps: float) -> Path:
    """``write_video``, with a failure (disk full, the folder gone) an error naming --out."""
    try:
        write_video(out, frames, fps)
    except OSError as exc:
        raise UserError(f"--out: cannot write {out}: {exc.strerror or exc}") from None
    return out
