"""The trajectory GAN as a method: a learned competitor that draws whole motions, with noise.

``model/trajectory_gan.py`` is the network and its training; this module fits it on the
training clips (the val clips only pick the epoch kept: the best val cosine of the first
sample from the prior), rolls it out and measures how diverse its samples are.

Rollouts are sample 0: the noise of sample s is row s of ``N(0, I)`` drawn from
``train.trajectory_gan.sample_seed``, the same z for every caption, so a rollout does not
depend on which captions share its batch, and reruns give the same videos. The generator
makes the whole trajectory at once from the start, so its ``chain`` rollout is its ``step``
rollout. It reads the caption's pooled text embedding, not its hidden states (the fitting
data of every closed-form method, ``FitData.in_memory``, leaves them out; T x D per caption).

The fit report in ``method.json`` (no timings: the models folder is a DVC output that a
rerun reproduces byte for byte) holds the training history, the chosen epoch and the
diversity figure: over the val captions, the mean pairwise distance between ``samples``
samples of the same caption (cosine distance of the embeddings, and L2 distance of the
changes from the start), beside the truth's spread: the mean pairwise L2 distance of the
changes of training clips whose captions state the same (motion, speed, size)
(``data.synthetic.caption_attributes``; absent for other sources). All at evenly spaced
rises; the truth's changes are from the first frame, beside the samples' from it.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F

from nextframe.config import Params
from nextframe.data.synthetic_captions import caption_attributes
from nextframe.device import resolve_device
from nextframe.methods.base import FitData, Rolled, RolloutContext
from nextframe.methods.baselines import interpolate_frames
from nextframe.methods.caption_aware import from_prior, replay_tensors
from nextframe.methods.files import load_method_files, save_method_files
from nextframe.model.clips import ClipSet
from nextframe.model.rollout import Conditioning, Rollout, even_rises
from nextframe.model.trajectory_gan import (
    GanConfig,
    Generator,
    change_scale,
    clip_rows,
    condition_inputs,
    train_gan,
)


def sample_noise(seed: int, samples: int, noise_dim: int) -> Tensor:
    """[S, Z]: the noise of samples 0 .. S-1, the same for every caption. Drawn one row at a
    time, so sample s is the same however many are drawn (one draw of [S, Z] is not: torch
    fills large tensors by another algorithm)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randn(noise_dim, generator=generator) for _ in range(samples)])


def clip_conditioning(clips: ClipSet, start: Tensor, rises: Tensor) -> Conditioning:
    """The conditioning of ``clips`` rolled out from ``start`` [C, D] at ``rises`` [C, n]."""
    return Conditioning(
        hidden_states=torch.zeros(len(clips), 0, clips.dim),
        prior_embed=clips.prior_embed.float().cpu(),
        text_embed=clips.text_embed.float().cpu(),
        start=start.float().cpu(),
        rises=rises.float().cpu(),
    )


class TrajectoryGan:
    name: ClassVar[str] = "trajectory_gan"

    def __init__(self, generator: Generator, scale: float, sample_seed: int, report: dict) -> None:
        self.generator = generator.eval()
        self.scale = scale  # the RMS entry of the training changes: G's unit
        self.sample_seed = sample_seed
        self.report = report  # the fit report written to method.json
        self.device = next(generator.parameters()).device

    def samples(self, cond: Conditioning, count: int) -> Tensor:
        """[S, B, n, D]: samples 0 .. S-1 of every caption's trajectory; step 0 is the start."""
        noise = sample_noise(self.sample_seed, count, self.generator.config.noise_dim)
        start = cond.start.float()
        condition = condition_inputs(cond.text_embed, start, from_prior(cond).float())
        condition, rises = condition.to(self.device), cond.rises[:, 1:].to(self.device)
        drawn = []
        with torch.no_grad():
            for z in noise.to(self.device):
                changes = self.generator(condition, z.expand(len(cond), -1), rises)  # [B, n-1, D]
                steps = start.unsqueeze(1) + self.scale * changes.cpu()
                drawn.append(torch.cat([start.unsqueeze(1), steps], dim=1))
        return torch.stack(drawn)

    def rollout(self, cond: Conditioning, kind: Rollout, context: RolloutContext) -> Rolled:
        return Rolled(embeddings=self.samples(cond, 1)[0])  # [B, n, D]

    @classmethod
    def fit(cls, data: FitData, params: Params) -> TrajectoryGan:
        settings = params.train.trajectory_gan
        train, val = data.in_memory("train"), data.in_memory("val")
        scale = change_scale(train)
        val_cond = clip_conditioning(val, val.prior_embed, val.rises)

        def score(generator: Generator) -> float:
            return first_sample_cosine(
                cls(generator, scale, settings.sample_seed, {}), val, val_cond
            )

        result = train_gan(
            clip_rows(train, scale), score, settings, train.dim, resolve_device(params.train.device)
        )
        method = cls(result.generator, scale, settings.sample_seed, {})
        captions = [data.captions[clip] for clip in train.clip_ids]
        method.report = {
            "settings": settings.model_dump(),
            "best_epoch": result.best_epoch,
            "val_cos_mean": result.history[result.best_epoch - 1]["val"],
            "diversity": diversity(method, val, train, captions, settings.samples),
            "history": result.history,
        }
        return method

    def save(self, directory: Path) -> None:
        tensors = {f"generator.{k}": v for k, v in self.generator.state_dict().items()}
        description = {
            "method": self.name,
            "config": self.generator.config.as_dict(),
            "scale": self.scale,
            "sample_seed": self.sample_seed,
            **self.report,
        }
        save_method_files(directory, tensors, description)

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> TrajectoryGan:
        tensors, description = load_method_files(directory, device)
        generator = Generator(GanConfig(**description["config"])).to(device)
        prefix = "generator."
        generator.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items()})
        kept = ("method", "config", "scale", "sample_seed")
        report = {k: v for k, v in description.items() if k not in kept}
        return cls(generator, description["scale"], description["sample_seed"], report)


def first_sample_cosine(method: TrajectoryGan, clips: ClipSet, cond: Conditioning) -> float:
    """Mean cos(sample 0, true frame) over the clips' frames 1 .. n-1 (evaluate's cos_mean)."""
    made = method.samples(cond, 1)[0][:, 1:]  # [C, F-1, D]
    truth = clips.frames.float().cpu()[:, 1:]
    valid = torch.arange(1, clips.frames.shape[1]) < clips.n_frames.cpu().unsqueeze(1)
    return float(F.cosine_similarity(made, truth, dim=-1)[valid].mean())


def pairwise_spread(trajectories: Tensor) -> tuple[float, float]:
    """[S, n, D] trajectories sharing step 0 (their start) -> the mean over pairs and steps
    1 .. n-1 of (1 - cosine of the embeddings, L2 distance of the changes)."""
    cosine, change = [], []
    for a, b in combinations(range(trajectories.shape[0]), 2):
        first, second = trajectories[a, 1:], trajectories[b, 1:]
        cosine.append(1 - F.cosine_similarity(first, second, dim=-1).mean())
        change.append((first - second).norm(dim=-1).mean())  # the shared start cancels
    return float(torch.stack(cosine).mean()), float(torch.stack(change).mean())


def truth_spread(clips: ClipSet, captions: list[str], rises: Tensor) -> dict | None:
    """The mean pairwise L2 distance of the true changes ``e(r) - e_0`` at ``rises`` [n]
    between clips whose captions state the same (motion, speed, size); None when no two do."""
    frames, padded_rises = replay_tensors(clips)[1:3]  # padded: past the end the last frame
    groups: dict[tuple[str, str, str], list[int]] = {}
    for index, caption in enumerate(captions):
        attributes = caption_attributes(caption)
        if attributes is not None:
            groups.setdefault(attributes, []).append(index)
    distances, used, kept = [], 0, 0
    for members in groups.values():
        if len(members) < 2:
            continue
        kept += 1
        clip = torch.tensor(members)
        at = [
            interpolate_frames(frames[clip], padded_rises[clip], r.expand(len(clip))) for r in rises
        ]
        changes = torch.stack(at, dim=1) - frames[clip, :1]  # [m, n, D]
        distances.extend(
            float((changes[a, 1:] - changes[b, 1:]).norm(dim=-1).mean())
            for a, b in combinations(range(len(clip)), 2)
        )
        used += len(clip)
    if not distances:
        return None
    return {"change_distance": sum(distances) / len(distances), "groups": kept, "clips": used}


def diversity(
    method: TrajectoryGan, val: ClipSet, train: ClipSet, train_captions: list[str], samples: int
) -> dict:
    """The diversity figure of the fit report (module doc): per val caption, ``samples``
    samples from its prior and from its first frame, beside the truth's spread over the
    training clips, all at evenly spaced rises."""
    rises = even_rises(len(val), val.frames.shape[1])
    spreads = {}
    for name, cond in (
        ("from_prior", clip_conditioning(val, val.prior_embed, rises)),
        ("from_first_frame", clip_conditioning(val, val.frames[:, 0], rises)),
    ):
        drawn = method.samples(cond, samples)  # [S, C, n, D]
        per_clip = [pairwise_spread(drawn[:, clip]) for clip in range(len(val))]
        spreads[name] = {
            "cosine_distance": sum(c for c, _ in per_clip) / len(per_clip),
            "change_distance": sum(d for _, d in per_clip) / len(per_clip),
        }
    return {
        "samples": samples,
        "val_captions": len(val),
        **spreads,
        "truth_same_attributes": truth_spread(train, train_captions, rises[0]),
    }
