"""Train the toy backbone from its recipe and write its weights file.

Two phases, the way LiT (locked-image text tuning) trains a CLIP:

1. Image towers. Corpus frames, as the pipeline would read them, go through the encoder,
   which is taught the frame's code (``features.py``: what the frame shows, as a vector
   whose cosines are a similarity of colours, shape, position, size and orientation).
   The decoder learns to redraw the clean frame (pixel MSE, plus cross-entropy of its
   mask against the object's true coverage, and a direct fit of what it reads from the
   embedding to the truth: colours, shape, centre, size, orientation) from the encoder's
   embedding for half of the batch and from the noisy target code for the other half,
   so it draws well from the start and from embeddings near, not only on, the encoder's
   outputs (a prior's or a splitter's).
2. Text tower. The image encoder is frozen and the corpus embedded once; the text tower
   learns (a) CLIP's contrastive loss between the caption and one frame of its clip,
   drawn at random each step (a caption describes every frame of its clip, as an image's
   caption describes the image), (b) the prior: the embedding of the caption's first
   frame, as unCLIP's prior maps a caption to its image's embedding. No term maps a
   caption to a later frame (the last frame, or a change): the text tower knows of
   motion only what a CLIP could, and the splitter must learn the rest.

Determinism: every random draw comes from generators seeded by the recipe, kernels are
deterministic (``torch.use_deterministic_algorithms``) and run on a fixed number of
threads (``recipe.threads``: float sums depend on how work is split between threads).
The same recipe with the same torch build on the same kind of CPU gives the same bytes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from nextframe.backbones.toy.corpus import Corpus, make_corpus
from nextframe.backbones.toy.features import frame_code, rotation, without_angle
from nextframe.backbones.toy.model import Drawing, ToyModel
from nextframe.backbones.toy.recipe import Recipe
from nextframe.backbones.vocabulary import build_tokenizer
from nextframe.data.synthetic import SHAPES
from nextframe.device import set_threads
from nextframe.progress import progress_bar

LogMetrics = Callable[[dict[str, float], int], None]
LOG_EVERY = 50  # steps between logged losses
EMBED_BATCH = 512


@contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Deterministic kernels on ``threads`` threads, with the caller's settings restored."""
    previous_threads = torch.get_num_threads()
    previous_mode = torch.are_deterministic_algorithms_enabled()
    set_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.use_deterministic_algorithms(previous_mode)
        set_threads(previous_threads)


def object_coverage(clean: Tensor, palette: Tensor) -> Tensor:
    """[B, 1, S, S]: how much of each pixel the object covers, from a clean frame [B, 3, S, S]
    in [0, 1] and its (background, object) colours ``palette`` [B, 2, 3] in [0, 1]."""
    background, color = palette[:, 0, :, None, None], palette[:, 1, :, None, None]
    direction = color - background  # [B, 3, 1, 1]
    along = ((clean - background) * direction).sum(1, keepdim=True)
    return (along / direction.square().sum(1, keepdim=True)).clamp(0, 1)


def schedule(step: int, steps: int, warmup: int = 50) -> float:
    """Learning-rate factor: linear warm-up, then cosine decay to 5%."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))


def to_unit_range(pixels: Tensor) -> Tensor:
    return pixels.float() / 255.0


def psnr(pictures: Tensor, targets: Tensor) -> float:
    mse = F.mse_loss(pictures, targets).item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def drawing_loss(
    drawing: Drawing, corpus: Corpus, rows: Tensor, columns: Tensor, turned: Tensor, size: int
) -> Tensor:
    """How far the decoder's reading of the object is from the truth about the frame
    (corpus clip ``rows`` [B], frame ``columns`` [B]): the colours, the shape (cross-entropy),
    the centre, the log radius and, where the embedding says (``turned`` [B]) and the shape
    has one, the orientation. The pixels alone teach these slowly: the object is small."""
    poses = corpus.poses[rows, columns]  # [B, 4]: centre x, y, radius (px), angle
    half = size / 2
    shape = corpus.attributes["shape"][rows]  # [B]
    order = corpus.symmetry[rows]  # [B]: 4 square, 3 triangle, 0 circle
    true_turn = torch.stack([torch.cos(order * poses[:, 3]), torch.sin(order * poses[:, 3])], -1)
    slot = torch.where(shape == SHAPES.index("square"), 0, 2)  # [B]: the shape's turn slot
    turn = drawing.turns.view(-1, 2, 2)[torch.arange(len(rows)), slot // 2]  # [B, 2]
    has_turn = turned & (order > 0)
    turn_error = (turn - true_turn).square().sum(-1)  # [B]
    return (
        F.mse_loss(drawing.colors, corpus.palette[rows].flatten(1))
        + F.cross_entropy(drawing.shape_logits, shape)
        + F.mse_loss(drawing.centre, poses[:, :2] / half - 1)
        + F.mse_loss(drawing.log_radius, (poses[:, 2] / half).log())
        + (turn_error * has_turn).sum() / has_turn.sum().clamp(min=1)
    )


def train_image_towers(
    model: ToyModel, corpus: Corpus, recipe: Recipe, log: LogMetrics, progress: bool
) -> None:
    generator = torch.Generator().manual_seed(recipe.seed)
    turn = rotation(recipe)  # [M, D]
    parameters = [*model.encoder.parameters(), *model.decoder.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=recipe.image_lr, weight_decay=1e-4)
    clips_per_batch, frames_per_clip = recipe.image_clips_per_batch, recipe.image_frames_per_clip
    batch = clips_per_batch * frames_per_clip
    n_clips, n_frames = corpus.seen.shape[:2]
    from_code = torch.arange(batch) < batch // 2  # rows the decoder draws from the target code
    unturned = torch.arange(batch) < batch // 4  # ... and from it without the orientation
    model.encoder.train(), model.decoder.train()
    for step in progress_bar(
        range(recipe.image_steps), desc="toy image towers", disable=not progress
    ):
        for group in optimizer.param_groups:
            group["lr"] = recipe.image_lr * schedule(step, recipe.image_steps)
        clips = torch.randint(n_clips, (clips_per_batch,), generator=generator)
        frames = torch.randint(n_frames, (clips_per_batch, frames_per_clip), generator=generator)
        rows = clips[:, None].expand(-1, frames_per_clip).reshape(-1)  # [B]
        columns = frames.reshape(-1)  # [B]
        seen = to_unit_range(corpus.seen[rows, columns])  # [B, 3, S, S]
        clean = to_unit_range(corpus.clean[rows, columns])
        codes = frame_code(
            corpus.poses[rows, columns],
            {name: values[rows] for name, values in corpus.attributes.items()},
            corpus.symmetry[rows],
            recipe,
        )  # [B, M]
        target = codes @ turn  # [B, D] unit
        embeds = model.encoder(seen)  # [B, D] unit
        code_loss = (embeds - target).square().sum(-1).mean()  # 2 - 2 cos
        # The decoder draws half the batch from codes: noisy ones, and for a quarter of the
        # batch ones without the orientation, as a prior's embedding is (it cannot know it)
        teacher = torch.where(unturned[:, None], without_angle(codes), codes) @ turn
        noise = recipe.decoder_noise * torch.randn(embeds.shape, generator=generator)
        # the encoder learns the code alone: the decoder's losses, large while it learns to
        # read the object, would otherwise pull the embedding off the code
        drawn = torch.where(from_code[:, None], teacher + noise, embeds.detach())
        drawing = model.decoder.describe(drawn)
        background, color, shapes, coverages = model.decoder.layers(drawing)
        mask = (shapes * coverages).sum(1, keepdim=True).clamp(1e-6, 1 - 1e-6)  # [B, 1, S, S]
        pictures = background + (color - background) * mask  # [B, 3, S, S]
        reconstruction_loss = F.mse_loss(pictures, clean)
        coverage = object_coverage(clean, corpus.palette[rows])  # [B, 1, S, S]
        mask_loss = F.binary_cross_entropy(mask, coverage)
        parameter_loss = drawing_loss(
            drawing, corpus, rows, columns, turned=~unturned, size=recipe.size
        )
        loss = (
            recipe.code_loss * code_loss
            + recipe.reconstruction_loss * reconstruction_loss
            + recipe.mask_loss * mask_loss
            + recipe.parameter_loss * parameter_loss
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # atan2 of a near-zero turn vector (an embedding that does not say which way the
        # shape is turned) has steep gradients: keep one such batch from throwing it off
        torch.nn.utils.clip_grad_norm_(parameters, recipe.clip_norm)
        optimizer.step()
        if step % LOG_EVERY == 0 or step == recipe.image_steps - 1:
            log(
                {
                    "image.code_cos": 1 - code_loss.item() / 2,
                    "image.reconstruction_loss": reconstruction_loss.item(),
                    "image.mask_loss": mask_loss.item(),
                    "image.parameter_loss": parameter_loss.item(),
                    "image.psnr_from_image": psnr(pictures[~from_code].detach(), clean[~from_code]),
                },
                step,
            )
    model.encoder.eval(), model.decoder.eval()


@torch.inference_mode()
def embed_corpus(model: ToyModel, corpus: Corpus) -> Tensor:
    """[N, F, D] unit embeddings of every corpus frame as the pipeline would read it."""
    frames = corpus.seen.flatten(0, 1)  # [N * F, 3, S, S]
    embeds = [
        model.encoder(to_unit_range(batch)) for batch in frames.split(EMBED_BATCH)
    ]  # N*F/B x [B, D]
    return torch.cat(embeds).view(*corpus.seen.shape[:2], -1)


def train_text_tower(
    model: ToyModel,
    corpus: Corpus,
    frame_embeds: Tensor,
    recipe: Recipe,
    log: LogMetrics,
    progress: bool,
) -> None:
    generator = torch.Generator().manual_seed(recipe.seed + 1)
    tokenizer = build_tokenizer(recipe.text_length)
    tokens = tokenizer(
        corpus.captions,
        padding="max_length",
        max_length=recipe.text_length,
        truncation=True,
        return_tensors="pt",
    )
    caption_ids = torch.unique(tokens.input_ids, dim=0, return_inverse=True)[1]  # [N]
    n_clips, n_frames = frame_embeds.shape[:2]
    first = frame_embeds[:, 0]  # [N, D]
    optimizer = torch.optim.AdamW(model.text.parameters(), lr=recipe.text_lr, weight_decay=1e-4)
    model.text.train()
    for step in progress_bar(range(recipe.text_steps), desc="toy text tower", disable=not progress):
        for group in optimizer.param_groups:
            group["lr"] = recipe.text_lr * schedule(step, recipe.text_steps)
        rows = torch.randint(n_clips, (recipe.text_batch,), generator=generator)
        frames = torch.randint(n_frames, (recipe.text_batch,), generator=generator)
        _, pooled = model.text(tokens.input_ids[rows], tokens.attention_mask[rows])
        text_embeds = F.normalize(model.text.projection(pooled), dim=-1)  # [B, D]
        images = frame_embeds[rows, frames]  # [B, D]: one frame of each caption's clip
        logits = text_embeds @ images.T / recipe.temperature  # [B, B]
        positives = (caption_ids[rows][:, None] == caption_ids[rows][None, :]).float()
        labels = positives / positives.sum(dim=1, keepdim=True)  # the same caption twice: both
        contrastive_loss = 0.5 * (
            F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)
        )
        prior = F.normalize(model.text.prior(pooled), dim=-1)
        prior_loss = (1 - (prior * first[rows]).sum(-1)).mean()
        loss = contrastive_loss + recipe.prior_loss * prior_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % LOG_EVERY == 0 or step == recipe.text_steps - 1:
            log(
                {
                    "text.contrastive_loss": contrastive_loss.item(),
                    "text.prior_cos": 1 - prior_loss.item(),
                },
                step,
            )
    model.text.eval()


def train(recipe: Recipe, log: LogMetrics | None = None, progress: bool = True) -> ToyModel:
    """The toy model trained from ``recipe`` (deterministic; see the module doc)."""
    log = log or (lambda metrics, step: None)
    with deterministic(recipe.threads):
        started = time.perf_counter()
        corpus = make_corpus(recipe, progress)
        log({"build.corpus_seconds": time.perf_counter() - started}, 0)
        torch.manual_seed(recipe.seed)
        model = ToyModel(recipe, vocab_size=len(build_tokenizer(recipe.text_length)))
        phase = time.perf_counter()
        train_image_towers(model, corpus, recipe, log, progress)
        log({"build.image_seconds": time.perf_counter() - phase}, 0)
        frame_embeds = embed_corpus(model, corpus)
        phase = time.perf_counter()
        train_text_tower(model, corpus, frame_embeds, recipe, log, progress)
        log({"build.text_seconds": time.perf_counter() - phase}, 0)
        log({"build.seconds": time.perf_counter() - started}, 0)
    return model


def build_weights(
    recipe: Recipe, out: Path, log: LogMetrics | None = None, progress: bool = True
) -> Path:
    """Train from ``recipe`` and write the weights file to ``out``; returns ``out``."""
    from nextframe.backbones.toy.backbone import write_weights

    write_weights(train(recipe, log, progress), recipe, out)
    return out
