"""Privileged baselines: they know the synthetic generator's (motion, speed, size) labels.

They read the labels from the captions (``data.synthetic.caption_attributes``), at fit time
and at rollout, so they exist for the synthetic source only (``nextframe.config`` refuses them for
other sources). No method that reads only what a real caption says can know these labels
exactly; the README reports them beside the honest baselines, not among them.

- ``class_regression``: per label triple, the change as ``a r + b r^2`` from a frame (plus a
  constant from the prior) by least squares over that triple's training clips; a triple
  no training clip has falls back to the fit over every clip.
- ``replay_change_attrs``: ``replay_change`` among the training clips with the same labels.

Both are functions of the absolute rise: their chain rollout equals their step rollout.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F

from nextframe.config import Params
from nextframe.data.synthetic_captions import caption_attributes
from nextframe.errors import UserError
from nextframe.methods.base import FitData, Rolled, RolloutContext
from nextframe.methods.baselines import valid_frames
from nextframe.methods.caption_aware import ReplayChange, from_prior, prior_rows, replay_tensors
from nextframe.methods.files import load_method_files, save_method_files
from nextframe.model.clips import ClipSet
from nextframe.model.rollout import Conditioning, Rollout


def labels_of(data: FitData, clip_ids: list[str], method: str) -> list[tuple[str, str, str]]:
    """The (motion, speed, scale) labels of the clips, or a UserError for other sources."""
    labels = [caption_attributes(data.captions[c]) for c in clip_ids]
    if any(label is None for label in labels):
        raise UserError(
            f"generate.methods: {method} is privileged: it reads the synthetic source's "
            "(motion, speed, size) labels from the captions, and these captions have none; "
            f"remove {method} from generate.methods for this source"
        )
    return labels


def caption_labels(context: RolloutContext, count: int, method: str) -> list:
    if context.captions is None or len(context.captions) != count:
        raise ValueError(f"{method} needs the captions of the rollout (RolloutContext.captions)")
    return [caption_attributes(caption) for caption in context.captions]


class ReplayChangeAttrs(ReplayChange):
    name: ClassVar[str] = "replay_change_attrs"

    def neighbours(self, cond: Conditioning, context: RolloutContext) -> Tensor:
        """The nearest caption among training clips with the same labels (all, if none)."""
        similarity = F.normalize(cond.text_embed.float(), dim=-1) @ self.captions.T  # [B, N]
        for row, label in enumerate(caption_labels(context, len(cond), self.name)):
            same = torch.tensor([other == label for other in self.labels])
            if same.any():
                similarity[row, ~same] = -2.0
        return similarity.argmax(1)

    @classmethod
    def fit(cls, data: FitData, params: Params) -> ReplayChangeAttrs:
        train = data.in_memory("train")
        return cls(*replay_tensors(train), labels_of(data, train.clip_ids, cls.name))


def fit_polynomial(rise: Tensor, change: Tensor, with_constant: bool) -> Tensor:
    """Least squares ``change [N, D] ~ sum_p c_p rise^p`` -> coefficients [P, D]."""
    powers = [rise, rise**2] if not with_constant else [torch.ones_like(rise), rise, rise**2]
    basis = torch.stack(powers, dim=1).double()  # [N, P]
    return torch.linalg.lstsq(basis, change.double()).solution.float()


def polynomial(coefficients: Tensor, rise: Tensor) -> Tensor:
    """[B, P, D] coefficients at rise [B] -> [B, D] (P = 2: r, r^2; P = 3: 1, r, r^2)."""
    powers = (
        [rise, rise**2] if coefficients.shape[1] == 2 else [torch.ones_like(rise), rise, rise**2]
    )
    return (torch.stack(powers, dim=1).unsqueeze(-1) * coefficients).sum(1)


class ClassRegression:
    name: ClassVar[str] = "class_regression"

    def __init__(self, labels: list[tuple[str, str, str]], prior: Tensor, frame: Tensor) -> None:
        self.labels = labels  # [G] label triples; the last entry's fit is over every clip
        self.prior = prior  # [G + 1, 3, D] change from the prior: c + a r + b r^2
        self.frame = frame  # [G + 1, 2, D] change from a frame: a r + b r^2

    def rollout(self, cond: Conditioning, kind: Rollout, context: RolloutContext) -> Rolled:
        index = {label: row for row, label in enumerate(self.labels)}
        group = torch.tensor(
            [
                index.get(label, len(self.labels))
                for label in caption_labels(context, len(cond), self.name)
            ]
        )
        prior = from_prior(cond)
        steps = [cond.start.float()]
        for column in range(1, cond.rises.shape[1]):
            rise = cond.rises[:, column].float()
            change = torch.where(
                prior.unsqueeze(1),
                polynomial(self.prior[group], rise),
                polynomial(self.frame[group], rise),
            )
            steps.append(cond.start.float() + change)
        return Rolled(embeddings=torch.stack(steps, dim=1))

    @classmethod
    def fit(cls, data: FitData, params: Params) -> ClassRegression:
        train = data.in_memory("train")
        labels = labels_of(data, train.clip_ids, cls.name)
        groups = sorted(set(labels))
        prior_fits, frame_fits = [], []
        for members in [[c for c, label in enumerate(labels) if label == g] for g in groups] + [
            list(range(len(labels)))
        ]:
            subset = subset_clips(train, members)
            _, start, rise, target = prior_rows(subset)
            prior_fits.append(fit_polynomial(rise, target - start, True))
            valid = valid_frames(subset.n_frames, subset.frames.shape[1])
            valid[:, 0] = False
            change = subset.frames - subset.frames[:, :1]
            frame_fits.append(fit_polynomial(subset.rises[valid], change[valid], False))
        return cls(groups, torch.stack(prior_fits), torch.stack(frame_fits))

    def save(self, directory: Path) -> None:
        tensors = {"prior": self.prior, "frame": self.frame}
        save_method_files(directory, tensors, {"method": self.name, "labels": self.labels})

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> ClassRegression:
        tensors, description = load_method_files(directory, device)
        labels = [tuple(label) for label in description["labels"]]
        return cls(labels, tensors["prior"], tensors["frame"])


def subset_clips(clips: ClipSet, members: list[int]) -> ClipSet:
    rows = torch.tensor(members, dtype=torch.int64)
    return ClipSet(
        clip_ids=[clips.clip_ids[m] for m in members],
        hidden_states=clips.hidden_states[rows],
        prior_embed=clips.prior_embed[rows],
        text_embed=clips.text_embed[rows],
        frames=clips.frames[rows],
        n_frames=clips.n_frames[rows],
        rises=clips.rises[rows],
    )
