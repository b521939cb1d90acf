"""``nextframe sample``: a video for any caption from the trained models, outside the pipeline.

The caption is encoded by the backbone in ``params.backbone``, rolled out from its prior
embedding by one method (chain by default: each frame from the last), decoded, and written
as GIF or MP4 (by the suffix of ``out``). The retrieval decoder reads the training split's
frames from the pipeline's outputs (manifest, image embeddings, frames table).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nextframe.config import Params
from nextframe.data.video import write_video
from nextframe.decode import Decoder, DiffusionDecoder, RetrievalDecoder
from nextframe.errors import UserError
from nextframe.generate import rollout
from nextframe.generate_stage import check_backbone, prompt_batch, select_predictors, usable_clips
from nextframe.model import load_predictors
from nextframe.model.training import resolve_device
from nextframe.store import read_frames, read_image_embeddings, read_manifest, read_text_embeddings

VIDEO_SUFFIXES = (".gif", ".mp4")


@dataclass(frozen=True)
class PipelineOutputs:
    """Where the pipeline left what the retrieval decoder needs."""

    manifest: Path = Path("data/raw/manifest.parquet")
    embeddings: Path = Path("data/embeddings")
    frames: Path = Path("data/frames/frames.parquet")


def retrieval_decoder(outputs: PipelineOutputs, backbone, size: int) -> RetrievalDecoder:
    images = read_image_embeddings(outputs.embeddings / "images.parquet")
    check_backbone(backbone, images.info)
    texts = read_text_embeddings(outputs.embeddings / "texts.parquet")
    train_ids = usable_clips(read_manifest(outputs.manifest), images, texts, "train")
    frames = read_frames(outputs.frames)
    return RetrievalDecoder.from_tables(images, frames, outputs.frames.parent, train_ids, size)


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
    from nextframe.backbones import load_backbone

    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise UserError(f"--out must end in .gif or .mp4, got {out.name!r}")
    if n_frames < 2:
        raise UserError(f"--frames must be at least 2, got {n_frames}")
    settings = params.generate
    predictor = select_predictors(
        load_predictors(models_dir, resolve_device(params.train.device)), [method], "--method"
    )[method]
    backbone = load_backbone(params.backbone)
    clips = prompt_batch(backbone, [caption.strip() or caption], n_frames)
    embeddings = rollout(
        predictor, clips.cond, kind, n_frames, params.train.blend_q, settings.anchor
    )[0]
    decoder: Decoder
    if decoder_name == "retrieval":
        decoder = retrieval_decoder(outputs or PipelineOutputs(), backbone, settings.size)
    elif decoder_name == "diffusion":
        decoder = DiffusionDecoder(
            backbone,
            settings.size,
            settings.steps,
            settings.guidance,
            settings.seed,
            params.backbone.batch_size,
        )
    else:
        raise UserError(f"--decoder must be retrieval or diffusion, got {decoder_name!r}")
    write_video(out, decoder.decode(embeddings), settings.fps)  # [n, D] -> [n, S, S, 3]
    return out
