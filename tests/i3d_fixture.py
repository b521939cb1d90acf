"""A random-weight stand-in for ``i3d_torchscript.pt``: the same call, saved the same way.

``detector(videos [B, 3, T, H, W] float 0..255, rescale, resize, return_features)``:
rescale maps 0..255 to -1..1, resize brings the frames to 224 px, and the features are the
[B, F] vector before the softmax, as in the StyleGAN-V file. A small 3-D convolution and
a linear layer instead of I3D, so it runs on a CPU in milliseconds; its features mean
nothing, but loading, calling and the shapes are exercised end to end.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class TinyI3D(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, kernel_size=3, stride=(1, 4, 4), padding=1)
        self.head = nn.Linear(8 * 2, features)

    def forward(
        self,
        videos: Tensor,
        rescale: bool = False,
        resize: bool = False,
        return_features: bool = False,
    ) -> Tensor:
        if rescale:
            videos = videos / 127.5 - 1
        if resize:
            batch, channels, frames, height, width = videos.shape
            flat = videos.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, height, width)
            flat = F.interpolate(flat, size=(224, 224), mode="bilinear", align_corners=False)
            videos = flat.reshape(batch, frames, channels, 224, 224).permute(0, 2, 1, 3, 4)
        hidden = torch.relu(self.conv(videos))  # [B, 8, T, 56, 56]
        pooled = torch.cat([hidden.mean(dim=(2, 3, 4)), hidden.amax(dim=(2, 3, 4))], dim=1)
        logits = self.head(pooled)  # [B, F]
        return logits if return_features else torch.softmax(logits, dim=1)


def save_tiny_i3d(path: Path, features: int = 6, seed: int = 0) -> Path:
    """Script a seeded TinyI3D and save it at ``path`` (TorchScript, like the real file)."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # torch 2.13 deprecates scripting; the real file is one
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(TinyI3D(features).eval()).save(str(path))
    return path
