"""Caption-blind baselines: what the splitter must beat before anything else.

None of them reads the caption's motion:

- ``copy_start``: the start embedding for every frame (stand still: the text-to-image answer).
- ``mean_frame``: the mean training frame for every frame: knows neither text nor time.
- ``nearest_clip``: replays, in time, the true frames of the training clip whose caption is
  nearest (cosine of the CLIP text embeddings): a retrieval text-to-video. It finds where
  the start sits in that clip (its nearest frame) and moves ``rise`` of the clip's span on
  from there, interpolating between the frames around that moment; so a step rollout from
  the prior replays the clip from its start, and a chain rollout keeps replaying it.
- ``linear``: ``start + rise * m``, ``m`` the mean motion per unit rise on the training
  split (the least-squares fit of ``e_k - e_0 = r_k m`` over every training frame).
- ``slerp``: rotates ``start`` by ``rise * omega`` in the plane of ``start`` and
  ``start + m`` (norm kept), ``omega`` the least-squares fit of ``angle(e_0, e_k) = r_k omega``.

Fitting needs no gradient.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F

from nextframe.config import Params
from nextframe.methods.base import FitData, PredictorMethod
from nextframe.methods.files import load_method_files, save_method_files
from nextframe.model import rotation


def valid_frames(n_frames: Tensor, width: int) -> Tensor:
    """[C, F] True where a padded clip of ``n_frames`` frames has a frame."""
    return torch.arange(width, device=n_frames.device).unsqueeze(0) < n_frames.unsqueeze(1)


class CopyStart(PredictorMethod):
    name: ClassVar[str] = "copy_start"

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        return start.clone()

    @classmethod
    def fit(cls, data: FitData, params: Params) -> CopyStart:
        return cls()

    def save(self, directory: Path) -> None:
        save_method_files(directory, {}, {"method": self.name})

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> CopyStart:
        load_method_files(directory, device)
        return cls()


class MeanFrame(PredictorMethod):
    name: ClassVar[str] = "mean_frame"

    def __init__(self, mean: Tensor) -> None:
        self.mean = mean  # [D] mean of every training frame

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        return self.mean.to(start.device, start.dtype).expand_as(start).clone()

    def to(self, device: str | torch.device) -> MeanFrame:
        return MeanFrame(self.mean.to(device))

    @classmethod
    def fit(cls, data: FitData, params: Params) -> MeanFrame:
        train = data.in_memory("train")
        return cls(train.frames[valid_frames(train.n_frames, train.frames.shape[1])].mean(dim=0))

    def save(self, directory: Path) -> None:
        save_method_files(directory, {"mean": self.mean}, {"method": self.name})

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> MeanFrame:
        return cls(load_method_files(directory, device)[0]["mean"])


class NearestClip(PredictorMethod):
    name: ClassVar[str] = "nearest_clip"

    def __init__(self, captions: Tensor, frames: Tensor, rises: Tensor, n_frames: Tensor) -> None:
        self.captions = captions  # [N, D] unit text embeddings of the training clips
        self.frames = frames  # [N, F, D] their frames, padded
        self.rises = rises  # [N, F] each frame's time as a fraction of the clip's span
        self.n_frames = n_frames  # [N] int64

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        device, dtype = start.device, start.dtype
        clip = (F.normalize(text_embed.to(device, dtype), dim=-1) @ self.captions.T).argmax(1)
        frames = self.frames[clip].to(dtype)  # [B, F, D]
        rises = self.rises[clip].to(dtype)  # [B, F]
        valid = torch.arange(frames.shape[1], device=device) < self.n_frames[clip].unsqueeze(1)
        similarity = F.normalize(frames, dim=-1) @ F.normalize(start, dim=-1).unsqueeze(-1)
        similarity = similarity.squeeze(-1).masked_fill(~valid, -2.0)  # [B, F]
        here = rises.gather(1, similarity.argmax(1, keepdim=True)).squeeze(1)  # [B]
        moment = (here + rise.to(dtype)).clamp(0.0, 1.0)  # [B]
        return interpolate_frames(frames, rises, moment)

    def to(self, device: str | torch.device) -> NearestClip:
        return NearestClip(
            self.captions.to(device),
            self.frames.to(device),
            self.rises.to(device),
            self.n_frames.to(device),
        )

    @classmethod
    def fit(cls, data: FitData, params: Params) -> NearestClip:
        train = data.in_memory("train")
        return cls(
            F.normalize(train.text_embed.float(), dim=-1),
            train.frames.float(),
            train.rises.float(),
            train.n_frames.long(),
        )

    def save(self, directory: Path) -> None:
        tensors = {
            "captions": self.captions,
            "frames": self.frames,
            "rises": self.rises,
            "n_frames": self.n_frames,
        }
        save_method_files(
            directory, tensors, {"method": self.name, "clips": int(self.frames.shape[0])}
        )

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> NearestClip:
        tensors = load_method_files(directory, device)[0]
        return cls(tensors["captions"], tensors["frames"], tensors["rises"], tensors["n_frames"])


def interpolate_frames(frames: Tensor, rises: Tensor, moment: Tensor) -> Tensor:
    """Each clip's embedding at ``moment`` [B] of its span, linear between the frames either
    side: frames [B, F, D] (padded with rises of 1), rises [B, F] -> [B, D]."""
    after = (rises < moment.unsqueeze(1)).sum(1).clamp(1, frames.shape[1] - 1)  # [B]
    before = after - 1
    r0 = rises.gather(1, before.unsqueeze(1)).squeeze(1)
    r1 = rises.gather(1, after.unsqueeze(1)).squeeze(1)
    weight = ((moment - r0) / (r1 - r0).clamp(min=1e-6)).clamp(0.0, 1.0).unsqueeze(1)
    rows = torch.arange(len(moment), device=frames.device)
    return (1 - weight) * frames[rows, before] + weight * frames[rows, after]


def fit_mean_motion(frames: Tensor, n_frames: Tensor, rises: Tensor) -> tuple[Tensor, Tensor]:
    """Least-squares mean motion ``m`` [D] and angular speed ``omega`` [] of padded clips."""
    valid = valid_frames(n_frames, frames.shape[1]).to(frames.dtype)  # [C, F]
    rise = rises.to(frames.dtype) * valid  # [C, F]
    change = frames - frames[:, :1]  # [C, F, D]
    weight = (rise**2).sum()
    if weight <= 0:
        raise ValueError("no training clip has two frames: cannot fit a mean motion")
    motion = (rise.unsqueeze(-1) * change).sum(dim=(0, 1)) / weight  # [D]
    angles = rotation.plane(frames[:, :1], frames).angle.squeeze(-1)  # [C, F]
    angular_speed = (rise * angles).sum() / weight  # []
    return motion, angular_speed


class Linear(PredictorMethod):
    name: ClassVar[str] = "linear"

    def __init__(self, motion: Tensor) -> None:
        self.motion = motion  # [D] mean change per unit rise

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        motion = self.motion.to(start.device, start.dtype)
        return start + rise.to(start.dtype).unsqueeze(-1) * motion  # [B, D]

    def to(self, device: str | torch.device) -> Linear:
        return Linear(self.motion.to(device))

    @classmethod
    def fit(cls, data: FitData, params: Params) -> Linear:
        train = data.in_memory("train")
        return cls(fit_mean_motion(train.frames, train.n_frames, train.rises)[0])

    def save(self, directory: Path) -> None:
        description = {"method": self.name, "motion_norm": float(self.motion.norm())}
        save_method_files(directory, {"motion": self.motion}, description)

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> Linear:
        return cls(load_method_files(directory, device)[0]["motion"])


class Slerp(PredictorMethod):
    name: ClassVar[str] = "slerp"

    def __init__(self, motion: Tensor, angular_speed: Tensor) -> None:
        self.motion = motion  # [D] direction of the motion (as in Linear)
        self.angular_speed = angular_speed  # [] radians per unit rise

    def predict(
        self, hidden_states: Tensor, start: Tensor, rise: Tensor, text_embed: Tensor
    ) -> Tensor:
        towards = start + self.motion.to(start.device, start.dtype)  # [B, D]
        angle = rise.to(start.dtype) * self.angular_speed.to(start.device, start.dtype)  # [B]
        return rotation.rotate_by(start, start, towards, angle)

    def to(self, device: str | torch.device) -> Slerp:
        return Slerp(self.motion.to(device), self.angular_speed.to(device))

    @classmethod
    def fit(cls, data: FitData, params: Params) -> Slerp:
        train = data.in_memory("train")
        return cls(*fit_mean_motion(train.frames, train.n_frames, train.rises))

    def save(self, directory: Path) -> None:
        tensors = {"motion": self.motion, "angular_speed": self.angular_speed.reshape(())}
        description = {"method": self.name, "angular_speed": float(self.angular_speed)}
        save_method_files(directory, tensors, description)

    @classmethod
    def load(cls, directory: Path, device: str | torch.device = "cpu") -> Slerp:
        tensors = load_method_files(directory, device)[0]
        return cls(tensors["motion"], tensors["angular_speed"])
