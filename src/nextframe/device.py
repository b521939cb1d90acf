"""Where and in what precision torch work runs: the one place that resolves ``auto``."""

from __future__ import annotations

import logging
import os

import torch
import torch.cpu

from nextframe.errors import UserError

# What each library reads to choose its CPU kernels: ATen's own vectorised kernels, MKL's
# (matmul, and exp/tanh through its vector maths) in conditional-numerical-reproducibility
# mode, and oneDNN's (convolutions). Capping all three at AVX2 gives the same bits on an
# AVX-512 CPU as on an AVX2-only one (benchmarks/cpu_numerics.py; the README's "What reproduces").
CPU_KERNELS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "native": {},
}
log = logging.getLogger(__name__)


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


def pin_cpu_kernels(kernels: str) -> None:
    """Make torch's CPU numerics independent of the CPU: ``avx2`` caps every kernel library
    at AVX2 (see ``CPU_KERNELS``); ``native`` lets each use the best the CPU has.

    The libraries read these settings when they first run a kernel, so this must come
    before any tensor work in the process (a stage calls it right after reading params).
    """
    os.environ.update(CPU_KERNELS[kernels])
    if kernels == "native":
        return
    if not torch.cpu._is_avx2_supported():
        raise UserError(
            "runtime.cpu_kernels: avx2 needs a CPU with AVX2 and this one has none; set "
            "runtime.cpu_kernels: native (results then differ from the committed ones in "
            "the last bits: scripts/check_reproduction.py compares within tolerance)"
        )
    found = torch.backends.cpu.get_cpu_capability()
    if found != "AVX2":  # kernels already chosen in this process (an in-process caller)
        log.warning("runtime.cpu_kernels: avx2 asked, but torch already runs %s kernels", found)
