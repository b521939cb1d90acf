"""The evaluate stage writes the flow and FVD keys into evaluate_full.json (a random I3D)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from fixtures.i3d import save_tiny_i3d
from fixtures.project import PARAMS, FakeBackbone, build_project, evaluate, generate

from nextframe.config import parse_params


def test_evaluate_writes_flow_and_fvd_keys(tmp_path: Path, fake_backbone: FakeBackbone) -> None:
    paths = build_project(tmp_path, fake_backbone, {"train": 6, "val": 1, "test": 4})
    weights = save_tiny_i3d(tmp_path / "i3d_torchscript.pt", features=2)
    fvd = {"enabled": True, "weights": str(weights), "clip_length": 4, "size": 16}
    params = parse_params({**PARAMS, "evaluate": {**PARAMS["evaluate"], "fvd": fvd}})
    out = tmp_path / "generated"
    generate(paths, out, params)
    evaluate(paths, out, tmp_path / "metrics", params)
    written = json.loads((tmp_path / "metrics" / "evaluate_full.json").read_text())
    for name in ("flow_mag", "dynamic", "warp_err", "flicker"):
        assert math.isfinite(written[f"real.{name}"]) and written[f"real.{name}.n"] == 3
        for key in ("splitter.step.backbone", "copy_start.chain.retrieval", "truth.step.backbone"):
            assert math.isfinite(written[f"{key}.{name}"])
        assert f"splitter-copy_start.step.backbone.{name}.ci_low" in written
    for key in ("splitter.step.backbone", "slerp.chain.retrieval", "truth.step.backbone"):
        assert written[f"{key}.fvd"] >= 0 and written[f"{key}.fvd.n"] == 3
