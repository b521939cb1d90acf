"""The splitter network: shapes, size, outputs, and safetensors round trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from nextframe.config import SplitterParams
from nextframe.methods.splitter import SplitterMethod
from nextframe.model.splitter import (
    Splitter,
    SplitterConfig,
    count_parameters,
    rise_polynomial,
    time_features,
)


def make(
    variant: str = "seed", output: str = "velocity", dim: int = 24, text_length: int = 5
) -> Splitter:
    params = SplitterParams(variant=variant, output=output)
    torch.manual_seed(0)
    return Splitter(SplitterConfig.from_params(params, dim=dim, text_length=text_length))


def inputs(batch: int = 4, dim: int = 24, text_length: int = 5):
    generator = torch.Generator().manual_seed(1)
    return (
        torch.randn(batch, text_length, dim, generator=generator),
        torch.randn(batch, dim, generator=generator),
        torch.linspace(-1, 1, batch),
    )


@pytest.mark.parametrize("variant", ["seed", "increment"])
@pytest.mark.parametrize("output", ["target", "residual", "velocity"])
def test_shapes_and_gradients(variant: str, output: str) -> None:
    model = make(variant, output)
    hidden, start, rise = inputs()
    predicted = model(hidden, start, rise)
    assert predicted.shape == (4, 24)
    predicted.square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_seed_size_at_kandinsky_dimensions() -> None:
    """About 1.8M parameters at D = 1280, T = 77, almost all of them the start map."""
    model = make(dim=1280, text_length=77)
    total = count_parameters(model)
    assert 1_600_000 < total < 2_000_000
    assert count_parameters(model.mix) < 30_000  # the token mixer does not grow with D
    layers = [m for m in model.mix if isinstance(m, torch.nn.Linear)]
    assert [layer.out_features for layer in layers] == [128, 64, 32, 16, 8, 4, 2, 1]
    assert layers[0].in_features == 77 + 2
    norms = [m for m in model.mix if isinstance(m, torch.nn.LayerNorm)]
    assert [n.normalized_shape[0] for n in norms] == [32, 8]
    assert all(not n.elementwise_affine for n in norms)


def test_mixing_weights_are_shared_by_all_channels() -> None:
    """Permuting channels of text, start token and rise token permutes the output."""
    model = make(output="target").eval()
    hidden, start, rise = inputs()
    permutation = torch.randperm(24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        # make the start and rise maps commute with the permutation: identity / constant rows
        model.start_proj.weight.copy_(torch.eye(24))
        model.start_proj.bias.zero_()
        model.rise_proj.weight.fill_(0.7)
        model.rise_proj.bias.fill_(0.1)
        plain = model(hidden, start, rise)
        permuted = model(hidden[..., permutation], start[:, permutation], rise)
    torch.testing.assert_close(permuted, plain[:, permutation])


def test_outputs() -> None:
    hidden, start, rise = inputs()
    velocity = make(output="velocity").eval()
    with torch.no_grad():
        at_zero = velocity(hidden, start, torch.zeros(4))
        assert torch.equal(at_zero, start)  # no time, no change
        target = make(output="target").eval()(hidden, start, rise)
        residual = make(output="residual").eval()(hidden, start, rise)
        moved = velocity(hidden, start, rise)
    torch.testing.assert_close(residual - start, target)  # same weights (same seed), same mix
    torch.testing.assert_close(moved - start, rise.unsqueeze(-1) * target)


def reference_token_mix(
    model: Splitter, hidden: torch.Tensor, start: torch.Tensor, rise: torch.Tensor
) -> torch.Tensor:
    """DESIGN.md's token mixing, one row at a time: the T + 2 tokens built by hand from the
    model's own maps, each channel's column divided by its norm over the tokens (an
    explicit square root per channel), then the model's mix layers on every column."""
    batch, _, dim = hidden.shape
    mixed = torch.empty(batch, dim)
    for row in range(batch):
        r = float(rise[row])  # signed: back-mode rises are negative
        text = hidden[row]  # [T, D]
        if model.step_embed is not None:  # increment: a step embedding on every text token
            text = text + model.step_embed.weight[:, 0] * r + model.step_embed.bias
        start_token = model.start_proj.weight @ start[row] + model.start_proj.bias  # [D]
        rise_token = model.rise_proj.weight[:, 0] * r + model.rise_proj.bias  # [D]
        tokens = torch.cat([text, start_token[None], rise_token[None]])  # [T + 2, D]
        norms = torch.tensor(
            [math.sqrt(sum(float(value) ** 2 for value in tokens[:, c])) for c in range(dim)]
        )  # [D]
        columns = tokens.T / norms.unsqueeze(1)  # [D, T + 2], each a unit vector
        mixed[row] = model.mix(columns).squeeze(-1)  # the same layers on every channel
    return mixed


@pytest.mark.parametrize("variant", ["seed", "increment"])
@pytest.mark.parametrize("output", ["target", "residual", "velocity"])
def test_forward_matches_a_token_by_token_reference(variant: str, output: str) -> None:
    """Guards the token mixing (normalised over the token axis, not the channels; the signed
    rise in the rise token and the step embedding) and the three outputs built on it:
    target = mixed, residual = start + mixed, velocity = start + rise * mixed."""
    model = make(variant, output).eval()
    hidden, start, rise = inputs()  # rises from -1 to 1
    with torch.no_grad():
        mixed = reference_token_mix(model, hidden, start, rise)
        predicted = model(hidden, start, rise)
    expected = {
        "target": mixed,
        "residual": start + mixed,
        "velocity": start + rise.unsqueeze(-1) * mixed,
    }[output]
    torch.testing.assert_close(predicted, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["seed", "increment", "timed"])
def test_the_sign_of_the_rise_matters(variant: str) -> None:
    """Back-mode rises are negative: rise -r must not be read as r (e.g. through |rise|)."""
    params = SplitterParams(variant=variant, output="target", hidden=32, depth=1)
    torch.manual_seed(0)
    model = Splitter(SplitterConfig.from_params(params, dim=24, text_length=5)).eval()
    hidden, start, _ = inputs()
    rise = torch.tensor([0.25, 0.5, 0.75, 1.0])
    with torch.no_grad():
        forward, back = model(hidden, start, rise), model(hidden, start, -rise)
    assert (forward - back).abs().amax(dim=-1).min() > 1e-4  # every row


def test_time_features_by_hand() -> None:
    """[r, sin(2^k pi r), cos(2^k pi r)] for k < K, the sign of r kept."""
    rise = torch.tensor([-0.3, 0.3, 0.05], dtype=torch.float64)
    features = time_features(rise, frequencies=3)
    assert features.shape == (3, 7)
    for row, r in enumerate(rise.tolist()):
        angles = [math.pi * 2**k * r for k in range(3)]
        expected = [r, *map(math.sin, angles), *map(math.cos, angles)]
        assert features[row].tolist() == pytest.approx(expected, abs=1e-12)
    assert not torch.allclose(features[0], features[1])  # -r and r differ


def test_seed_variant_with_target_output_learns_a_small_mapping() -> None:
    """The default output (target: the mix itself is the prediction) can be trained: on 32
    fixed rows whose target moves from the start along a text token by the signed rise,
    300 Adam steps cut the error tenfold and beat standing still (predicting the start)."""
    dim, length, batch = 8, 4, 32
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(batch, length, dim, generator=generator)
    start = 3 * torch.randn(batch, dim, generator=generator)
    rise = torch.rand(batch, generator=generator) * 2 - 1
    target = start + rise.unsqueeze(-1) * 3 * hidden[:, 0]  # raw embeddings, not unit length
    torch.manual_seed(0)
    config = SplitterConfig(
        dim=dim, text_length=length, widths=[32, 16, 1], norm_after=[16], dropout=0.0
    )
    assert config.variant == "seed" and config.output == "target"  # the defaults
    model = Splitter(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def error() -> float:
        with torch.no_grad():
            return float((model(hidden, start, rise) - target).square().mean())

    initial = error()
    for _ in range(300):
        loss = (model(hidden, start, rise) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    standing_still = float((start - target).square().mean())
    assert error() < initial / 10
    assert error() < standing_still / 2


def test_increment_variant_adds_a_step_embedding_to_every_token() -> None:
    model = make("increment", "target").eval()
    hidden, start, rise = inputs()
    with torch.no_grad():
        model.step_embed.weight.zero_()
        model.step_embed.bias.zero_()
        without = model(hidden, start, rise)
        model.step_embed.bias.fill_(0.5)
        shifted = model(hidden, start, rise)
        expected = make("increment", "target").eval()
        expected.load_state_dict(model.state_dict())
        expected.step_embed.bias.zero_()
        manual = expected(hidden + 0.5, start, rise)
    assert not torch.allclose(without, shifted)
    torch.testing.assert_close(shifted, manual)


def test_eval_is_deterministic_and_train_uses_dropout() -> None:
    model = make()
    hidden, start, rise = inputs()
    model.eval()
    torch.testing.assert_close(model(hidden, start, rise), model(hidden, start, rise))
    model.train()
    assert not torch.allclose(model(hidden, start, rise), model(hidden, start, rise))


@pytest.mark.parametrize("variant", ["seed", "increment"])
def test_save_load_round_trip_without_pickle(tmp_path: Path, variant: str) -> None:
    model = make(variant).eval()
    model.save(tmp_path / "splitter")
    files = sorted(p.name for p in (tmp_path / "splitter").iterdir())
    assert files == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "splitter" / "config.json").read_text())
    assert config["dim"] == 24 and config["text_length"] == 5 and config["variant"] == variant
    # safetensors: an 8-byte little-endian header length, then a JSON header
    raw = (tmp_path / "splitter" / "model.safetensors").read_bytes()
    header = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])
    assert "start_proj.weight" in header
    loaded = Splitter.load(tmp_path / "splitter")
    assert not loaded.training
    hidden, start, rise = inputs()
    torch.testing.assert_close(loaded(hidden, start, rise), model(hidden, start, rise))
    predictor = SplitterMethod(loaded)
    assert predictor.name == "splitter"
    torch.testing.assert_close(
        predictor.predict(hidden.half(), start, rise, start),
        model(hidden.half().float(), start, rise),
    )


def test_load_missing_files_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config.json|model.safetensors"):
        Splitter.load(tmp_path / "nothing")


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="variant"):
        Splitter(SplitterConfig(dim=4, text_length=2, variant="attention"))
    with pytest.raises(ValueError, match="last width must be 1"):
        SplitterParams(widths=[8, 2])


@pytest.mark.parametrize("variant", ["seed", "increment", "timed"])
def test_pooled_reads_the_text_embedding_and_only_then(variant: str) -> None:
    """With ``pooled`` the output depends on the pooled text embedding (and it must be
    passed); without it the embedding is ignored, so old models keep their outputs."""
    hidden, start, rise = inputs()
    text, other = torch.randn(2, 4, 24, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    pooled = Splitter(
        SplitterConfig.from_params(
            SplitterParams(variant=variant, output="target", pooled=True), dim=24, text_length=5
        )
    ).eval()
    assert not torch.allclose(pooled(hidden, start, rise, text), pooled(hidden, start, rise, other))
    with pytest.raises(ValueError, match="text_embed"):
        pooled(hidden, start, rise)
    plain = make(variant, "target").eval()
    torch.testing.assert_close(plain(hidden, start, rise, text), plain(hidden, start, rise, other))
    torch.testing.assert_close(plain(hidden, start, rise, text), plain(hidden, start, rise))


def hand_features(text: torch.Tensor, start: torch.Tensor, rise: torch.Tensor) -> torch.Tensor:
    """[N, P] float64: ``[1, t, s]`` times ``[1, r, r^2]`` built row by row in Python, the
    independent reference for the linear path's features."""
    rows = []
    for row in range(len(rise)):
        base = [1.0, *text[row].double().tolist(), *start[row].double().tolist()]
        r = float(rise[row])
        rows.append([v * r**power for power in (0, 1, 2) for v in base])
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("variant", ["seed", "timed"])
@pytest.mark.parametrize("output", ["target", "residual"])
def test_linear_path_adds_ridge_features_times_its_matrix(variant: str, output: str) -> None:
    """``linear``: the output is the network's own plus [1, t, s] x [1, r, r^2] times the
    path's matrix, by a hand computation row by row; zero at initialisation, so training
    starts from the plain network's function; it needs the pooled text embedding."""
    hidden, start, rise = inputs()
    text = torch.randn(4, 24, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    params = SplitterParams(variant=variant, output=output, linear=True)
    model = Splitter(SplitterConfig.from_params(params, dim=24, text_length=5)).eval()
    assert model.linear is not None and model.linear.weight.shape == (24, 3 * 49)
    with torch.no_grad():
        at_init = model(hidden, start, rise, text)
        model.linear.weight.normal_(generator=torch.Generator().manual_seed(3))
        weights = model.linear.weight.double()  # [D, P]
        expected = at_init.double() + hand_features(text, start, rise) @ weights.T
        torch.testing.assert_close(
            model(hidden, start, rise, text).double(), expected, rtol=1e-5, atol=1e-4
        )
    mixed = model.timed(hidden, start, rise, []) if variant == "timed" else None
    if mixed is not None:
        torch.testing.assert_close(at_init, model.shape_output(mixed, start, rise))
    with pytest.raises(ValueError, match="text_embed"):
        model(hidden, start, rise)


def test_rise_polynomial_is_ridges_features() -> None:
    """One definition serves the splitter's linear path and the ridge baseline."""
    from nextframe.methods.caption_aware import ridge_features

    text, start = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(4))
    rise = torch.tensor([0.0, 0.5, -1.0])
    features = ridge_features(text, start, rise, False)
    assert features.dtype == torch.float64 and features.shape == (3, 2 * 9)
    torch.testing.assert_close(
        features[:, :9], rise_polynomial(text, start, rise, True)[:, 9:18].double()
    )
    torch.testing.assert_close(
        features[1, 9:], (0.25 * torch.cat([torch.ones(1), text[1], start[1]])).double()
    )


@pytest.mark.parametrize("variant", ["seed", "increment", "timed"])
@pytest.mark.parametrize("output", ["target", "residual", "velocity"])
def test_start_linear_at_predicts_the_regression_until_trained(variant: str, output: str) -> None:
    """``linear_init: ridge``: after ``start_linear_at(W)`` the splitter predicts
    ``start + phi(t, s, r) W`` exactly (the network's head is zero), for every output kind,
    by a hand computation of the features; without a linear path it refuses."""
    hidden, start, rise = inputs()
    text = torch.randn(4, 24, generator=torch.Generator().manual_seed(2))
    change_weights = 0.1 * torch.randn(3 * 49, 24, generator=torch.Generator().manual_seed(5))
    params = SplitterParams(variant=variant, output=output, linear=True)
    model = Splitter(SplitterConfig.from_params(params, dim=24, text_length=5)).eval()
    model.start_linear_at(change_weights)
    expected = start.double() + hand_features(text, start, rise) @ change_weights.double()
    with torch.no_grad():
        got = model(hidden, start, rise, text).double()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
    plain = make(variant, output)
    with pytest.raises(ValueError, match="linear"):
        plain.start_linear_at(change_weights)
    with pytest.raises(ValueError, match="linear_init"):
        SplitterParams(linear_init="ridge")
