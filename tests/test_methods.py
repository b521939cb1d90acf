"""The method interface is all a new method needs: two methods that only the tests
register (one predicts embeddings, one draws pictures) go through train-style fitting,
generate and evaluate without a line of the stages knowing them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from fixtures.methods import TEST_METHODS, clip_set, fit_data
from fixtures.project import PARAMS, FakeBackbone, build_project, evaluate, generate

from nextframe import store
from nextframe.config import parse_params
from nextframe.methods import REGISTRY
from nextframe.methods.loading import fit_methods, method_dir
from nextframe.methods.registry import applicable


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for info in TEST_METHODS:
        monkeypatch.setitem(REGISTRY, info.name, info)
    return [info.name for info in TEST_METHODS]


def test_a_method_registered_outside_the_package_runs_through_generate_and_evaluate(
    tmp_path: Path, fake_backbone: FakeBackbone, registered: list[str]
) -> None:
    paths = build_project(tmp_path, fake_backbone, {"train": 6, "val": 1, "test": 3})
    train = clip_set(
        torch.randn(2, 3, 16), torch.tensor([3, 3]), torch.rand(2, 3), torch.randn(2, 16)
    )
    for name, method in fit_methods(registered, fit_data(train), parse_params({})).items():
        method.save(method_dir(paths["models"], name))
    raw = json.loads(json.dumps(PARAMS))
    raw["generate"]["methods"] = ["splitter", "copy_start", *registered]
    params = parse_params(raw)
    generate(paths, tmp_path / "generated", params)
    table = pq.read_table(tmp_path / "generated" / "predictions.parquet").to_pandas()
    assert set(table["method"]) == {"splitter", "copy_start", *registered}
    vectors = store.arrow_to_vectors(
        pq.read_table(tmp_path / "generated" / "predictions.parquet").column("embedding")
    )
    halfway = vectors[(table["method"] == "halfway").to_numpy()]
    assert halfway.shape[0] == 4 * 2 * 5  # (3 clips + 1 prompt) x rollouts x steps
    # the picture method's frames were re-encoded by the backbone and decoded as they are
    strip = tmp_path / "generated" / "frames"
    assert any(strip.rglob("still_pictures_step_backbone.png"))
    evaluate(paths, tmp_path / "generated", tmp_path / "metrics", params)
    full = json.loads((tmp_path / "metrics" / "evaluate_full.json").read_text())
    for name in registered:
        assert f"{name}.step.cos_mean" in full
        assert f"splitter-{name}.step.cos_mean" in full
    assert "still_pictures.step.backbone.psnr" in full


def test_an_unregistered_method_is_a_params_error() -> None:
    with pytest.raises(ValueError, match=r"generate.methods: .*unknown method\(s\) \['halfway'\]"):
        parse_params({"generate": {"methods": ["splitter", "halfway"]}})


def test_privileged_methods_run_for_the_synthetic_source_only() -> None:
    wanted = ["splitter", "class_regression", "ridge", "replay_change_attrs"]
    assert applicable(wanted, "synthetic") == wanted
    assert applicable(wanted, "tgif") == ["splitter", "ridge"]
    assert {name for name, info in REGISTRY.items() if info.privileged} == {
        "class_regression",
        "replay_change_attrs",
    }
