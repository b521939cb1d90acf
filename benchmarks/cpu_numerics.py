"""Which CPU settings change the stages' numbers: the toy backbone (embed, decode) and a few
splitter training steps, run under different vector ISAs and kernel libraries.

Each setting runs in a fresh process (the variables are read when torch's kernels first
dispatch) and saves its outputs; every output is compared with the ``native`` run and with
its twin (``pinned_native`` vs ``pinned_avx2_cpu``), one JSON line per setting:
``{"setting", "versus", "identical": [...], "differ": {output: max |diff|}, "seconds"}``.

An AVX2-only CPU is imitated on this one by capping every library at AVX2
(``avx2_cpu``): ATen's own kernels (ATEN_CPU_CAPABILITY), MKL's (MKL_ENABLE_INSTRUCTIONS)
and oneDNN's (ONEDNN_MAX_CPU_ISA). ``pinned_*`` add MKL's conditional numerical
reproducibility (MKL_CBWR=AVX2): whether that makes the two CPUs agree is the question.

    PYTHONPATH=src python benchmarks/cpu_numerics.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AVX2_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "ONEDNN_MAX_CPU_ISA": "AVX2"}  # fmt: skip
PIN = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
SETTINGS: dict[str, tuple[dict[str, str], bool]] = {  # name -> (environment, oneDNN on)
    "native": ({}, True),
    "aten_default": ({"ATEN_CPU_CAPABILITY": "default"}, True),
    "aten_avx2": ({"ATEN_CPU_CAPABILITY": "avx2"}, True),
    "mkldnn_off": ({}, False),
    "avx2_cpu": (AVX2_CPU, True),
    "pinned_native": (PIN, True),
    "pinned_avx2_cpu": ({**AVX2_CPU, **PIN}, True),
    "pinned_avx2_cpu_mkldnn_off": ({**AVX2_CPU, **PIN}, False),
}
TWINS = {"pinned_avx2_cpu": "pinned_native", "pinned_avx2_cpu_mkldnn_off": "pinned_native"}


def outputs(mkldnn: bool) -> dict:
    """The numbers a stage would write, on seeded synthetic inputs (child process)."""
    import torch

    from nextframe.backbones.toy.backbone import load_toy
    from nextframe.model.splitter import Splitter, SplitterConfig

    torch.backends.mkldnn.enabled = mkldnn
    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    toy = load_toy()
    pixels = torch.rand(32, 3, toy.size, toy.size, generator=generator)  # [N, 3, S, S]
    pixels = (pixels * 255).round() / 255  # as a PNG gives them
    captions = [f"a {size} {colour} circle moves {way}" for size in ("large", "small")
                for colour in ("red", "blue") for way in ("left", "up")]  # fmt: skip
    image_embeds = toy.encode_pixels(pixels)  # [N, D]
    texts = toy.encode_texts(captions)
    with torch.inference_mode():
        decoded = toy.model.decoder(image_embeds[:8])  # [8, 3, S, S]
    out = {
        "embed.images": image_embeds,
        "embed.text_embed": texts.text_embed,
        "embed.hidden_states": texts.hidden_states,
        "embed.prior_embed": texts.prior_embed,
        "decode.float": decoded.detach(),
        "decode.uint8": (decoded.clamp(0, 1) * 255).round().to(torch.uint8),
    }
    torch.manual_seed(0)
    config = SplitterConfig(
        dim=toy.dim, text_length=toy.text_length, variant="timed", output="residual",
        hidden=256, depth=2, heads=4, frequencies=6,
    )  # fmt: skip
    splitter = Splitter(config)
    optimizer = torch.optim.AdamW(splitter.parameters(), lr=1e-3)
    # inference-mode tensors cannot enter autograd: clone them
    hidden = texts.hidden_states.clone().repeat(4, 1, 1)  # [B, T, D]
    starts = texts.prior_embed.clone().repeat(4, 1)  # [B, D]
    targets = image_embeds[: len(starts)].clone()
    rises = torch.linspace(0.1, 1.0, len(starts))
    for _ in range(5):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(splitter(hidden, starts, rises), targets)
        loss.backward()
        optimizer.step()
    out["train.loss"] = loss.detach().reshape(1)
    out["train.weights"] = torch.cat([p.detach().flatten() for p in splitter.parameters()])
    with torch.no_grad():
        probe = torch.randn(64, 256, generator=generator)
        weight = torch.randn(256, 256, generator=generator)
        image = torch.randn(4, 8, 32, 32, generator=generator)
        kernel = torch.randn(16, 8, 3, 3, generator=generator)
        ops = {
            "matmul": probe @ weight,
            "conv2d": torch.nn.functional.conv2d(image, kernel, padding=1),
            "layer_norm": torch.nn.functional.layer_norm(probe, (256,)),
            "softmax": probe.softmax(-1),
            "exp": probe.exp(),
            "tanh": probe.tanh(),
            "gelu": torch.nn.functional.gelu(probe),
            "sum": probe.sum(-1),
            "normalize": torch.nn.functional.normalize(probe, dim=-1),
        }
    out.update({f"op.{name}": value for name, value in ops.items()})
    return out


def compare(mine: dict, theirs: dict) -> tuple[list[str], dict[str, float]]:
    identical, differ = [], {}
    for key, value in mine.items():
        other = theirs[key]
        if value.numpy().tobytes() == other.numpy().tobytes():
            identical.append(key)
        else:
            differ[key] = float((value.double() - other.double()).abs().max())
    return identical, differ


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        import torch

        started = time.perf_counter()
        result = outputs(mkldnn=sys.argv[2] == "on")
        result["seconds"] = torch.tensor([time.perf_counter() - started])
        torch.save(result, sys.argv[3])
        return
    import torch

    folder = Path(tempfile.mkdtemp(prefix="cpu_numerics-"))
    runs = {}
    for name, (env, mkldnn) in SETTINGS.items():
        path = folder / f"{name}.pt"
        command = [sys.executable, __file__, "--child", "on" if mkldnn else "off", str(path)]
        subprocess.run(command, env={**os.environ, **env}, check=True)
        runs[name] = torch.load(path)
    for name, run in runs.items():
        seconds = float(run.pop("seconds"))
        for versus in ("native", TWINS.get(name)):
            if versus is None or versus == name:
                continue
            identical, differ = compare(run, {k: v for k, v in runs[versus].items()})
            print(json.dumps({"setting": name, "versus": versus, "identical": identical,
                              "differ": differ, "seconds": round(seconds, 2)}))  # fmt: skip


if __name__ == "__main__":
    main()
