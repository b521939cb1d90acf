"""The splitter's composite loss against terms computed here by hand."""

from __future__ import annotations

import math

import torch

from nextframe.config import LossWeights
from nextframe.model.losses import change_cosine, change_loss


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    start, prediction, target = (torch.randn(4, 16, generator=generator) for _ in range(3))
    probe = torch.nn.functional.normalize(torch.randn(16, generator=generator), dim=0)
    return start, prediction, target, probe


def test_mse_is_relative_to_the_targets_and_cos_matches_a_loop() -> None:
    start, prediction, target, probe = _batch()
    terms = change_loss(start, prediction, target, LossWeights(mse=1.0, cos=0.0, rot=0.0), probe)
    error = sum(
        sum((float(p) - float(t)) ** 2 for p, t in zip(row_p, row_t, strict=True))
        for row_p, row_t in zip(prediction.tolist(), target.tolist(), strict=True)
    )
    energy = sum(float(v) ** 2 for row in target.tolist() for v in row)
    assert math.isclose(terms.mse.item(), error / energy, rel_tol=1e-5)
    assert math.isclose(terms.total.item(), terms.mse.item(), rel_tol=1e-6)  # cos, rot weight 0
    cosines = []
    for s, p, t in zip(start.tolist(), prediction.tolist(), target.tolist(), strict=True):
        true = [a - b for a, b in zip(s, t, strict=True)]
        guess = [a - b for a, b in zip(s, p, strict=True)]
        dot = sum(a * b for a, b in zip(true, guess, strict=True))
        cosines.append(dot / math.dist(true, [0] * 16) / math.dist(guess, [0] * 16))
    assert torch.allclose(
        change_cosine(start, prediction, target), torch.tensor(cosines), atol=1e-5
    )
    assert math.isclose(terms.cos.item(), 1 - sum(cosines) / 4, rel_tol=1e-5)


def test_a_perfect_prediction_costs_nothing_and_the_weights_add_up() -> None:
    start, prediction, target, probe = _batch()
    perfect = change_loss(start, target, target, LossWeights(), probe)
    assert perfect.mse.item() == 0 and abs(perfect.cos.item()) < 1e-6
    assert abs(perfect.rot.item()) < 1e-5
    weights = LossWeights(mse=2.0, cos=0.5, rot=0.25)
    terms = change_loss(start, prediction, target, weights, probe)
    expected = 2.0 * terms.mse + 0.5 * terms.cos + 0.25 * terms.rot
    assert torch.isclose(terms.total, expected)


def test_mse_does_not_shrink_with_the_dimension() -> None:
    """The same relative error at D = 16 and D = 1280 costs the same."""
    for dim in (16, 1280):
        target = torch.nn.functional.normalize(torch.randn(8, dim), dim=-1)
        prediction = target * 0.9  # 10% short of every target
        start = torch.zeros(8, dim)
        probe = torch.nn.functional.normalize(torch.ones(dim), dim=0)
        terms = change_loss(start, prediction, target, LossWeights(), probe)
        assert math.isclose(terms.mse.item(), 0.01, rel_tol=1e-4), dim


def test_rot_is_the_batch_mean_of_the_explicit_rotation_term() -> None:
    """Guards the rotation term: the mean over rows of |(R - I) u|^2, R = rot(d -> d')
    built as DESIGN.md's explicit matrix, d = start - target, d' = start - prediction."""
    start, prediction, target, probe = _batch()
    terms = change_loss(start, prediction, target, LossWeights(mse=0.0, cos=0.0, rot=1.0), probe)
    values = []
    for s, p, t in zip(start.double(), prediction.double(), target.double(), strict=True):
        true, guess = s - t, s - p
        n1 = true / true.norm()
        residual = guess - (n1 @ guess) * n1
        n2 = residual / residual.norm()
        angle = math.atan2(float(residual.norm()), float(n1 @ guess))
        eye = torch.eye(16, dtype=torch.float64)
        matrix = (
            eye
            + (torch.outer(n2, n1) - torch.outer(n1, n2)) * math.sin(angle)
            + (torch.outer(n1, n1) + torch.outer(n2, n2)) * (math.cos(angle) - 1)
        )
        moved = (matrix - eye) @ probe.double()
        values.append(float(moved @ moved))
    assert math.isclose(terms.rot.item(), sum(values) / 4, rel_tol=1e-4)
    assert math.isclose(terms.total.item(), terms.rot.item(), rel_tol=1e-6)


def test_row_scale_weighs_each_row_by_its_own_change_with_a_floor() -> None:
    """scale: row is the mean of |d - d'|^2 / max(|d|^2, floor * mean |d|^2), by hand."""
    start = torch.zeros(3, 2)
    target = torch.tensor([[4.0, 0.0], [0.0, 0.4], [0.0, 0.001]])  # big, small, ~no change
    prediction = torch.tensor([[3.0, 0.0], [0.0, 0.3], [0.0, 0.0]])
    probe = torch.tensor([1.0, 0.0])
    sizes = [16.0, 0.16, 1e-6]
    floor_value = 0.1 * sum(sizes) / 3
    errors = [1.0, 0.01, 1e-6]
    expected = sum(e / max(s, floor_value) for e, s in zip(errors, sizes, strict=True)) / 3
    weights = LossWeights(mse=1.0, cos=0.0, rot=0.0, scale="row", floor=0.1)
    terms = change_loss(start, prediction, target, weights, probe)
    assert math.isclose(terms.mse.item(), expected, rel_tol=1e-5)
    # batch scale: the small change's 25% error is 100x lighter than the big one's 25%
    batch = change_loss(start, prediction, target, LossWeights(mse=1.0, cos=0.0, rot=0.0), probe)
    assert math.isclose(batch.mse.item(), sum(errors) / sum(sizes), rel_tol=1e-5)
