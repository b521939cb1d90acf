"""runtime.cpu_kernels: avx2 gives the same bits on an AVX-512 CPU as on an AVX2-only one.

An AVX2-only CPU is imitated by capping every kernel library at AVX2 through its own
variable; each case runs in a fresh process, as a stage does (the libraries read their
settings when they first run a kernel).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch.cpu

AVX2_ONLY_CPU = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
# the ops where the ISA showed (benchmarks/cpu_numerics.py): MKL matmul and exp, ATen softmax
PROBE = """
import hashlib
import sys
import torch
from nextframe.device import pin_cpu_kernels
pin_cpu_kernels(sys.argv[1])
torch.set_num_threads(2)
g = torch.Generator().manual_seed(0)
x, w = torch.randn(64, 256, generator=g), torch.randn(256, 256, generator=g)
image, kernel = torch.randn(4, 8, 32, 32, generator=g), torch.randn(16, 8, 3, 3, generator=g)
out = [x @ w, x.exp(), (x @ w).softmax(-1), torch.nn.functional.conv2d(image, kernel)]
print(torch.backends.cpu.get_cpu_capability())
print(hashlib.sha256(b"".join(t.numpy().tobytes() for t in out)).hexdigest())
"""


def probe(kernels: str, cpu: dict[str, str]) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AVX2_ONLY_CPU and k != "MKL_CBWR"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, kernels],
        env={**env, **cpu},
        capture_output=True,
        text=True,
        check=True,
    )
    capability, digest = result.stdout.split()
    return capability, digest


def test_avx2_kernels_give_the_bits_of_an_avx2_only_cpu() -> None:
    capability, here = probe("avx2", {})
    assert capability == "AVX2"
    assert probe("avx2", AVX2_ONLY_CPU)[1] == here


@pytest.mark.skipif(not torch.cpu._is_avx512_supported(), reason="needs an AVX-512 CPU")
def test_native_kernels_differ_between_the_two_cpus() -> None:
    """The control: without the cap the same ops give other bits on the two CPUs."""
    capability, here = probe("native", {})
    assert capability == "AVX512"
    assert probe("native", AVX2_ONLY_CPU)[1] != here
