"""The O(D) rotations against the explicit matrix, and their behaviour at the edges."""

from __future__ import annotations

import math

import pytest
import torch

from nextframe.model import rotation


def explicit_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Reference: ``I + (n2 n1^T - n1 n2^T) sin + (n1 n1^T + n2 n2^T)(cos - 1)`` in float64."""
    a, b = a.double(), b.double()
    n1 = a / a.norm()
    residual = b - (n1 @ b) * n1
    n2 = residual / residual.norm()
    angle = torch.arccos(torch.clamp((n1 @ b) / b.norm(), -1, 1))
    eye = torch.eye(a.numel(), dtype=torch.float64)
    return (
        eye
        + (torch.outer(n2, n1) - torch.outer(n1, n2)) * torch.sin(angle)
        + (torch.outer(n1, n1) + torch.outer(n2, n2)) * (torch.cos(angle) - 1)
    )


@pytest.mark.parametrize("dim", [2, 3, 17, 768, 1280])
def test_rotate_matches_explicit_matrix(dim: int) -> None:
    generator = torch.Generator().manual_seed(dim)
    a, b, x = torch.randn(3, 4, dim, generator=generator)
    got = rotation.rotate(x, a, b)  # float32 in, float32 out
    assert got.dtype == torch.float32
    for row in range(4):
        expected = explicit_matrix(a[row], b[row]) @ x[row].double()
        torch.testing.assert_close(got[row].double(), expected, atol=1e-5, rtol=1e-5)


def test_rotate_takes_a_to_b_not_the_transpose() -> None:
    generator = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 8, 64, generator=generator, dtype=torch.float64)
    a_unit, b_unit = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(rotation.rotate(a_unit, a, b), b_unit)
    # The seed's row-vector product x @ R applies R^T, which sends b's direction back to a's.
    matrix = explicit_matrix(a[0], b[0])
    torch.testing.assert_close(b_unit[0] @ matrix, a_unit[0])
    torch.testing.assert_close(rotation.rotate(b_unit[0], a[0], b[0]), matrix @ b_unit[0])


def test_rotation_is_orthogonal() -> None:
    dim = 32
    generator = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, dim, generator=generator, dtype=torch.float64)
    columns = rotation.rotate(torch.eye(dim, dtype=torch.float64), a, b)  # row i = R e_i
    matrix = columns.T
    torch.testing.assert_close(matrix.T @ matrix, torch.eye(dim, dtype=torch.float64))
    assert torch.linalg.det(matrix).item() == pytest.approx(1.0)
    torch.testing.assert_close(matrix, explicit_matrix(a, b))


def test_rotation_loss_matches_explicit() -> None:
    dim = 48
    generator = torch.Generator().manual_seed(3)
    a, b, probe = torch.randn(3, 5, dim, generator=generator, dtype=torch.float64)
    got = rotation.rotation_loss(a, b, probe)
    for row in range(5):
        change = (explicit_matrix(a[row], b[row]) - torch.eye(dim, dtype=torch.float64)) @ probe[
            row
        ]
        assert got[row].item() == pytest.approx((change @ change).item(), rel=1e-9)
    assert rotation.rotation_loss(a, 3 * a, probe).abs().max().item() < 1e-12


def test_fraction_and_angle_compose() -> None:
    generator = torch.Generator().manual_seed(4)
    a, b, x = torch.randn(3, 6, 20, generator=generator, dtype=torch.float64)
    half = rotation.rotate_fraction(x, a, b, 0.5)
    torch.testing.assert_close(rotation.rotate_fraction(half, a, b, 0.5), rotation.rotate(x, a, b))
    torch.testing.assert_close(rotation.rotate_fraction(x, a, b, 0.0), x)
    back = rotation.rotate_fraction(rotation.rotate(x, a, b), a, b, -1.0)
    torch.testing.assert_close(back, x)
    angle = rotation.plane(a, b).angle.squeeze(-1)
    torch.testing.assert_close(rotation.rotate_by(x, a, b, angle), rotation.rotate(x, a, b))
    per_row = torch.linspace(-1, 2, 6, dtype=torch.float64)
    expected = torch.stack(
        [rotation.rotate_fraction(x[i], a[i], b[i], per_row[i].item()) for i in range(6)]
    )
    torch.testing.assert_close(rotation.rotate_fraction(x, a, b, per_row), expected)


def test_broadcasting_over_leading_dims() -> None:
    generator = torch.Generator().manual_seed(5)
    a, b = torch.randn(2, 4, 1, 16, generator=generator)
    tokens = torch.randn(4, 7, 16, generator=generator)  # e.g. text tokens sharing one rotation
    got = rotation.rotate(tokens, a, b)
    assert got.shape == (4, 7, 16)
    torch.testing.assert_close(got[2, 3], rotation.rotate(tokens[2, 3], a[2, 0], b[2, 0]))


def _assert_finite(*tensors: torch.Tensor) -> None:
    for tensor in tensors:
        assert torch.isfinite(tensor).all()


def test_zero_vectors_give_identity_with_finite_gradients() -> None:
    x = torch.randn(3, 10)
    a = torch.zeros(3, 10, requires_grad=True)
    b = torch.randn(3, 10, requires_grad=True)
    out = rotation.rotate(x, a, b)
    torch.testing.assert_close(out, x)
    out.sum().backward()
    _assert_finite(a.grad, b.grad)
    b2 = torch.zeros(3, 10)
    torch.testing.assert_close(rotation.rotate(x, b.detach(), b2), x)
    torch.testing.assert_close(rotation.rotate_by(x, b.detach(), b2, 0.7), x)
    assert rotation.cosine(a.detach(), b.detach()).abs().max() == 0


def test_parallel_is_identity() -> None:
    generator = torch.Generator().manual_seed(6)
    a, x = torch.randn(2, 5, 30, generator=generator)
    a.requires_grad_(True)
    out = rotation.rotate(x, a, 2.5 * a)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=1e-6)
    out.sum().backward()
    _assert_finite(a.grad)


def test_antiparallel_rotates_by_pi_in_a_fixed_plane() -> None:
    generator = torch.Generator().manual_seed(7)
    a, x = torch.randn(2, 5, 30, generator=generator, dtype=torch.float64)
    a.requires_grad_(True)
    out = rotation.rotate(x, a, -a)
    a_unit = a.detach() / a.detach().norm(dim=-1, keepdim=True)
    torch.testing.assert_close(rotation.rotate(a_unit, a.detach(), -a.detach()), -a_unit)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))  # still a rotation
    # Deterministic plane: n2 is the basis vector where |n1| is smallest, orthogonalised.
    n2 = rotation.plane(a.detach(), -a.detach()).n2
    index = a_unit.abs().argmin(dim=-1)
    basis = torch.nn.functional.one_hot(index, 30).double()
    expected = basis - (a_unit * basis).sum(-1, keepdim=True) * a_unit
    torch.testing.assert_close(n2, expected / expected.norm(dim=-1, keepdim=True))
    out.sum().backward()
    _assert_finite(a.grad)


def test_tiny_norms_keep_their_direction() -> None:
    generator = torch.Generator().manual_seed(8)
    a, b, x = torch.randn(3, 4, 12, generator=generator)
    expected = rotation.rotate(x, a, b)
    torch.testing.assert_close(rotation.rotate(x, a * 1e-30, b * 1e-35), expected)
    torch.testing.assert_close(rotation.cosine(a * 1e-30, b * 1e30), rotation.cosine(a, b))


def test_float16_inputs() -> None:
    generator = torch.Generator().manual_seed(9)
    a, b, x = torch.randn(3, 8, 1280, generator=generator)
    half = rotation.rotate(x.half(), a.half(), b.half())
    assert half.dtype == torch.float16
    _assert_finite(half)
    reference = rotation.rotate(x.half().float(), a.half().float(), b.half().float())
    torch.testing.assert_close(half.float(), reference, atol=2e-2, rtol=1e-2)
    _assert_finite(rotation.rotation_loss(a.half(), -a.half(), x.half()))
    _assert_finite(rotation.rotate(x.half(), torch.zeros_like(a).half(), b.half()))


def test_gradcheck() -> None:
    generator = torch.Generator().manual_seed(10)
    a, b, x, probe = (
        torch.randn(3, 6, generator=generator, dtype=torch.float64).requires_grad_(True)
        for _ in range(4)
    )
    assert torch.autograd.gradcheck(rotation.rotate, (x, a, b))
    assert torch.autograd.gradcheck(rotation.rotation_loss, (a, b, probe))
    assert torch.autograd.gradcheck(lambda x, a, b: rotation.blend(x, 0.6, a, b, 2.0), (x, a, b))
    assert torch.autograd.gradcheck(
        lambda x, a, b: rotation.rotate_fraction(x, a, b, 0.3), (x, a, b)
    )


def test_blend_interpolates_between_x_and_rotated_x() -> None:
    generator = torch.Generator().manual_seed(11)
    a, b, x = torch.randn(3, 4, 16, generator=generator, dtype=torch.float64)
    rotated = rotation.rotate(x, a, b)
    torch.testing.assert_close(rotation.blend(x, 1.0, a, b, 3.0), rotated)
    torch.testing.assert_close(rotation.blend(x, -0.4, a, b, 1.0), x)  # negative cosine: no move
    c = torch.tensor([0.0, 0.25, 0.5, 0.9], dtype=torch.float64)
    weight = (c**2).unsqueeze(-1)
    torch.testing.assert_close(rotation.blend(x, c, a, b, 2.0), (1 - weight) * x + weight * rotated)


def test_cosine_and_angle() -> None:
    a = torch.tensor([1.0, 0.0, 0.0])
    b = torch.tensor([1.0, 1.0, 0.0])
    assert rotation.cosine(a, b).item() == pytest.approx(1 / math.sqrt(2))
    assert rotation.plane(a, b).angle.item() == pytest.approx(math.pi / 4)
    assert rotation.plane(a, -a).angle.item() == pytest.approx(math.pi)


def test_one_dimension_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        rotation.rotate(torch.ones(3, 1), torch.ones(3, 1), -torch.ones(3, 1))
