"""params.yaml validation: the shipped file is valid, and bad values name their dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nextframe.config import Params, ParamsError, load_params, parse_params

REPO = Path(__file__).resolve().parents[1]


def test_shipped_params_file_is_valid_and_complete() -> None:
    params = load_params(REPO / "params.yaml")
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    # every section the code knows is spelled out in the file, so users see every knob
    assert set(raw) == set(Params.model_fields)
    assert params.download.source == "synthetic"
    assert params.backbone.name == "toy"


@pytest.mark.parametrize(
    ("raw", "dotted", "hint"),
    [
        ({"download": {"source": "youtube"}}, "download.source", "'synthetic'"),
        ({"select_frames": {"k": 1}}, "select_frames.k", "greater than or equal to 2"),
        ({"select_frames": {"method": "random"}}, "select_frames.method", "'top_diff'"),
        ({"train": {"loss": {"mse": -1}}}, "train.loss.mse", "greater than or equal to 0"),
        ({"train": {"modes": ["sideways"]}}, "train.modes.0", "'normal'"),
        ({"train": {"splitter": {"widths": [8, 4]}}}, "train.splitter", "last width must be 1"),
        ({"download": {"split": {"val": 0.6, "test": 0.5}}}, "download.split", "below 1"),
        ({"backbone": {"nmae": "toy"}}, "backbone.nmae", "did you mean backbone.name?"),
        ({"generate": {"n_frames": "many"}}, "generate.n_frames", "valid integer"),
        (
            {"download": {"tgif": {"min_frames": 80}}},
            "download.tgif",
            "min_frames (80) must not exceed max_frames (64)",
        ),
    ],
)
def test_bad_value_names_its_dotted_key(raw: dict, dotted: str, hint: str) -> None:
    with pytest.raises(ParamsError) as caught:
        parse_params(raw)
    message = str(caught.value)
    assert f"{dotted}:" in message
    assert hint in message


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(ParamsError) as caught:
        parse_params({"select_frames": {"k": 0, "size": 1}, "evaluate": {"bootstrap": 5}})
    message = str(caught.value)
    for dotted in ("select_frames.k", "select_frames.size", "evaluate.bootstrap"):
        assert dotted in message


def test_missing_or_malformed_file_is_a_params_error(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(tmp_path / "params.yaml")


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("")
    assert load_params(tmp_path / "params.yaml") == Params()


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text().replace("  epochs: 20", "  epochs: [20")
    line = text.splitlines().index("  epochs: [20") + 1
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError) as caught:
        load_params(tmp_path / "params.yaml")
    message = str(caught.value)
    assert f"line {line}" in message and "flow sequence" in message
    assert "\n" not in message  # one line, not the parser's multi-line report


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"train": {"epoch": 20}}, "train.epoch: unknown key; did you mean train.epochs?"),
        ({"trian": {}}, "trian: unknown key; did you mean train?"),
        ({"train": {"splitter": {"zzz": 1}}}, "train.splitter.zzz: unknown key; known keys here:"),
    ],
)
def test_unknown_key_suggests_the_one_meant(raw: dict, expected: str) -> None:
    with pytest.raises(ParamsError, match=expected.replace("?", r"\?").replace(".", r"\.")):
        parse_params(raw)
