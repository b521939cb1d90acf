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
- the privileged ``class_regression`` and ``replay_change_attrs`` are in ``privileged.py``.

Replays are functions of the absolute rise, so their chain rollout equals
their step rollout. A start is "the prior" where it equals the caption's prior embedding.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F

from nextframe.config import Params
from nextframe.methods.base import FitData, PredictorMethod, Rolled, RolloutContext
from nextframe.methods.baselines import interpolate_frames, valid_frames
from nextframe.methods.files import load_method_files, save_method_files
from nextframe.model.clips import ClipSet
from nextframe.model.rollout import Conditioning, Rollout
from nextframe.model.rotation import rotate_fraction
from nextframe.model.splitter import rise_polynomial

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
    return rise_polynomial(text.double(), start.double(), rise.double(), with_constant)


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


def fit_change_regression(train: ClipSet, val: ClipSet) -> Tensor:
    """One ridge regression [3 (2D + 1), D] of the change on every row from a frame and from
    the prior together (features with constant): the splitter's linear path has one matrix
    for both, so this is where ``train.splitter.linear_init: ridge`` starts it."""
    rows = [torch.cat(parts) for parts in zip(frame_rows(train), prior_rows(train), strict=True)]
    val_rows = [torch.cat(parts) for parts in zip(frame_rows(val), prior_rows(val), strict=True)]
    weights, _ = fit_ridge(tuple(rows), tuple(val_rows), True)
    return weights


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
