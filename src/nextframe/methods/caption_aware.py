"""Baselines that read the caption: the ones a reviewer asks the splitter to beat.

- ``ridge``: a ridge regression of the change ``e_target - start`` on the splitter's own
  inputs (text embedding t, start s, rise r): features ``[1, t, s]`` times ``[r, r^2]``
  (from a frame: no change at r = 0), or times ``[1, r, r^2]`` from the prior (it may jump
  to the first frame). Fitted from the normal equations accumulated over batches of rows,
  so memory is O(P^2) with P = 3 (2D + 1) features (O(D^2); the rows are streamed); one
  eigendecomposition gives the solution for every regularisation of the grid, the one
  with the lowest change error on val is kept.
- ``replay_change``: the change of the training clip with the nearest caption (cosine of
  text embeddings), replayed on the start at the same rises: ``start + e'(r) - e'(0)``
  from a frame, ``start + e'(r) - p'`` from the prior (its own prior, so the jump to the
  first frame is replayed too).
- ``text_direction``: rotate the start toward the caption's text embedding by the fraction
  ``r`` of the angle between them (no fitting: anyone can check it by hand).
- ``class_regression`` and ``replay_change_attrs`` are **privileged**: they read the
  synthetic generator's (motion, speed, size) labels from the caption
  (``data.synthetic.caption_attributes``). ``class_regression`` fits, per label triple,
  the change as ``a r + b r^2`` (plus a constant from the prior) by least squares;
  ``replay_change_attrs`` is ``replay_change`` among training clips with the same labels.

Replays and class fits are functions of the absolute rise, so their chain rollout equals
their step rollout. A start is "the prior" where it equals the caption's prior embedding.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F

from nextframe.config import Params
from nextframe.data.synthetic import caption_attributes
from nextframe.errors import UserError
from nextframe.methods.base import FitData, PredictorMethod, Rolled, RolloutContext
from nextframe.methods.baselines import interpolate_frames, valid_frames
from nextframe.methods.files import load_method_files, save_method_files
from nextframe.model.rollout import Conditioning, Rollout
from nextframe.model.rotation import rotate_fraction
from nextframe.model.training import ClipSet

RIDGE_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # lambda / rows (features scaled to RMS 1)
ROW_BATCH = 4096  # rows per accumulation of the normal equations


def from_prior(cond: Conditioning) -> Tensor:
    """[B] True where the rollout starts at the caption's prior embedding."""
    return (cond.start == cond.prior_embed).all(dim=-1)


# ---------------------------------------------------------------------------- rows


def frame_rows(clips: ClipSet) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every pair of frames j < k of every clip: (text [N, D], start e_j, rise r_k - r_j [N],
    target e_k), the rows a step from a frame (and every chain step) sees."""
    first, second = torch.triu_indices(clips.frames.shape[1], clips.frames.shape[1], offset=1)
    clip = torch.arange(len(clips)).repeat_interleave(len(first))  # [C * pairs]
    j, k = first.repeat(len(clips)), second.repeat(len(clips))
    keep = k < clips.n_frames[clip]
    clip, j, k = clip[keep], j[keep], k[keep]
    rise = clips.rises[clip, k] - clips.rises[clip, j]
    return clips.text_embed[clip], clips.frames[clip, j], rise, clips.frames[clip, k]


def prior_rows(clips: ClipSet) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Every frame k >= 1 from the clip's prior: (text, start p, rise r_k, target e_k)."""
    width = clips.frames.shape[1]
    valid = valid_frames(clips.n_frames, width)
    valid[:, 0] = False
    clip, k = valid.nonzero(as_tuple=True)
    return (
        clips.text_embed[clip],
        clips.prior_embed[clip],
        clips.rises[clip, k],
        clips.frames[clip, k],
    )


# ---------------------------------------------------------------------------- ridge


def ridge_features(text: Tensor, start: Tensor, rise: Tensor, with_constant: bool) -> Tensor:
    """[N, D] x2 and [N] -> [N, P]: ``[1, t, s]`` times ``[1,] r, r^2``, float64."""
    inputs = torch.cat([torch.ones_like(rise).unsqueeze(1), text, start], dim=1).double()
    rise = rise.double().unsqueeze(1)  # [N, 1]
    powers = [rise, rise**2]
    if with_constant:
        powers.insert(0, torch.ones_like(rise))
    return torch.cat([inputs * power for power in powers], dim=1)  # [N, (2D + 1) * powers]


def normal_equations(
    rows: tuple[Tensor, Tensor, Tensor, Tensor], with_constant: bool
) -> tuple[Tensor, Tensor, int]:
    """Phi^T Phi [P, P] and Phi^T Y [P, D] over the rows, ``ROW_BATCH`` at a time."""
    text, start, rise, target = rows
    gram, moment = None, None
    for index in torch.arange(len(rise)).split(ROW_BATCH):
        phi = ridge_features(text[index], start[index], rise[index], with_constant)  # [n, P]
        change = (target[index] - start[index]).double()  # [n, D]
        gram = phi.T @ phi if gram is None else gram + phi.T @ phi
        moment = phi.T @ change if moment is None else moment + phi.T @ change
    return gram, moment, len(rise)


def fit_ridge(
    train_rows: tuple[Tensor, ...], val_rows: tuple[Tensor, ...], with_constant: bool
) -> tuple[Tensor, float]:
    """Weights [P, D] (on unscaled features) and the chosen lambda / rows."""
    gram, moment, count = normal_equations(train_rows, with_constant)
    scale = (gram.diagonal() / count).sqrt().clamp(min=1e-12)  # [P] RMS of each feature
    gram = gram / scale.unsqueeze(0) / scale.unsqueeze(1)
    moment = moment / scale.unsqueeze(1)
    eigenvalues, vectors = torch.linalg.eigh(gram)  # gram = V diag(e) V^T
    projected = vectors.T @ moment  # [P, D]
    text, start, rise, target = val_rows
    val_phi = ridge_features(text, start, rise, with_constant) / scale  # [Nv, P]
    val_change = (target - start).double()
    val_basis = val_phi @ vectors  # [Nv, P]
    best = None
    for ratio in RIDGE_GRID:
        shrink = 1.0 / (eigenvalues.clamp(min=0) + ratio * count)  # [P]
        error = ((val_basis @ (shrink.unsqueeze(1) * projected) - val_change) ** 2).mean()
        if best is None or error < best[0]:
            best = (float(error), ratio, shrink)
    _, ratio, shrink = best
    weights = vectors @ (shrink.unsqueeze(1) * projected) / scale.unsqueeze(1)  # [P, D]
    return weights.float(), ratio


class Ridge:
    name: ClassVar[str] = "ridge"

    def __init__(
        self, prior_weights: Tensor, frame_weights: Tensor, ratios: tuple[float, float]
    ) -> None:
        self.prior_weights = prior_weights  # [3 (2D + 1), D]
        self.frame_weights = frame_weights  # [2 (2D + 1), D]
        self.ratios = ratios  # the chosen lambda / rows of each

    def predict(self, text: Tensor, start: Tensor, rise: Tensor, prior: Tensor) -> Tensor:
        """[B, D] at ``rise`` [B]; ``prior`` [B] bool: the start is the caption's prior."""
        out = start.clone()
        for is_prior, weights in ((True, self.prior_weights), (False, self.frame_weights)):
            rows = prior == is_prior
            if rows.any():
                phi = ridge_features(text[rows], start[rows], rise[rows], is_prior).float()
                out[rows] = start[rows] + phi @ weights.to(phi.device)
        return out

    def rollout(self, cond: Conditioning, kind: Rollout, context: RolloutContext) -> Rolled:
        text, prior = cond.text_embed.float(), from_prior(cond)
        frames = [cond.start.float()]
        for index in range(1, cond.rises.shape[1]):
            if kind == "step":
                frames.append(self.predict(text, frames[0], cond.rises[:, index], prior))
            else:  # from the previous prediction, which is a frame from step 2 on
                rise = cond.rises[:, index] - cond.rises[:, index - 1]
                frames.append(self.predict(text, frames[-1], rise, prior & (index == 1)))
        return Rolled(embeddings=torch.stack(frames, dim=1))  # [B, n, D]

    @classmethod
    def fit(cls, data: FitData, params: Params) -> Ridge:
        train, val = data.in_memory("train"), data.in_memory("val")
        prior_weights, prior_ratio = fit_ridge(prior_rows(train), prior_rows(val), True)
        frame_weights, frame_ratio = fit_ridge(frame_rows(train), frame_rows(val), False)
        return cls(prior_weights, frame_weights, (prior_ratio, frame_ratio))

    def save(self, directory: Path) -> None:
        tensors = {"prior_weights": self.prior_weights, "frame_weights": self.frame_weights}
        description = {
            "method": self.name,
            "lambda_per_row": {"prior": self.ratios[0], "frame": self.ratios[1]},
        }
        save_method_files(directory, tensors, description)

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> Ridge:
        tensors, description = load_method_files(directory, device)
        ratios = description["lambda_per_row"]
        return cls(
            tensors["prior_weights"], tensors["frame_weights"], (ratios["prior"], ratios["frame"])
        )


# ---------------------------------------------------------------------------- replays


class ReplayChange:
    """Replay a training clip's change; the clip is the nearest caption among ``candidates``
    (every training clip, or those with the caption's labels)."""

    name: ClassVar[str] = "replay_change"

    def __init__(
        self,
        captions: Tensor,
        frames: Tensor,
        rises: Tensor,
        priors: Tensor,
        labels: list[tuple[str, str, str] | None] | None = None,
    ) -> None:
        self.captions = captions  # [N, D] unit text embeddings of the training clips
        self.frames = frames  # [N, F, D] padded (padding rises are 1: the last frame holds)
        self.rises = rises  # [N, F]
        self.priors = priors  # [N, D] each clip's prior embedding
        self.labels = labels  # per clip (motion, speed, scale): only the privileged variant

    def neighbours(self, cond: Conditioning, context: RolloutContext) -> Tensor:
        """[B] the training clip whose change each caption replays."""
        similarity = F.normalize(cond.text_embed.float(), dim=-1) @ self.captions.T  # [B, N]
        return similarity.argmax(1)

    def rollout(self, cond: Conditioning, kind: Rollout, context: RolloutContext) -> Rolled:
        clip = self.neighbours(cond, context)
        frames, rises = self.frames[clip], self.rises[clip]  # [B, F, D], [B, F]
        reference = torch.where(from_prior(cond).unsqueeze(1), self.priors[clip], frames[:, 0])
        steps = [
            cond.start + interpolate_frames(frames, rises, cond.rises[:, index]) - reference
            for index in range(1, cond.rises.shape[1])
        ]
        return Rolled(embeddings=torch.stack([cond.start.float(), *steps], dim=1))

    @classmethod
    def fit(cls, data: FitData, params: Params) -> ReplayChange:
        train = data.in_memory("train")
        return cls(*replay_tensors(train))

    def save(self, directory: Path) -> None:
        tensors = {
            "captions": self.captions,
            "frames": self.frames,
            "rises": self.rises,
            "priors": self.priors,
        }
        save_method_files(directory, tensors, {"method": self.name, "labels": self.labels})

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> ReplayChange:
        tensors, description = load_method_files(directory, device)
        labels = description.get("labels")
        labels = None if labels is None else [tuple(x) if x else None for x in labels]
        return cls(
            tensors["captions"], tensors["frames"], tensors["rises"], tensors["priors"], labels
        )


def replay_tensors(train: ClipSet) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A replay's tensors from the training clips: padding rises set to 1 so that past a
    clip's last frame its last frame holds."""
    valid = valid_frames(train.n_frames, train.frames.shape[1])
    rises = torch.where(valid, train.rises.float(), torch.ones_like(train.rises.float()))
    frames = train.frames.float().clone()
    last = frames[torch.arange(len(train)), train.n_frames - 1]  # [C, D]
    frames[~valid] = last.unsqueeze(1).expand_as(frames)[~valid]
    return F.normalize(train.text_embed.float(), dim=-1), frames, rises, train.prior_embed.float()


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


# ---------------------------------------------------------------------------- text direction


class TextDirection(PredictorMethod):
    name: ClassVar[str] = "text_direction"

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        """The start rotated toward the text embedding by ``rise`` of the angle between them."""
        return rotate_fraction(start, start, text_embed.to(start.dtype), rise)

    @classmethod
    def fit(cls, data: FitData, params: Params) -> TextDirection:
        return cls()

    def save(self, directory: Path) -> None:
        save_method_files(directory, {}, {"method": self.name})

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> TextDirection:
        load_method_files(directory, device)
        return cls()


# ---------------------------------------------------------------------------- class regression


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
