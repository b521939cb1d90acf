"""Where and in what precision torch work runs: the one place that resolves ``auto``."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; anything else as torch reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto``: float16 on CUDA (the released weights' own precision), float32 elsewhere."""
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def set_threads(count: int) -> None:
    """Fix torch's CPU threads: float reductions, hence results, can depend on the count."""
    torch.set_num_threads(count)
