"""projector: Π = A(AᵀA)⁻¹Aᵀ with dΠ = 2((I − Π) dA A⁺)_sym."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from matbackprop.linalg import projector

F64 = torch.float64


def _rand(*shape, seed=0):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def test_projector_properties():
    A = _rand(3, 7, 3, seed=1)
    P = projector(A)
    torch.testing.assert_close(P, P.mT)
    torch.testing.assert_close(P @ P, P)
    torch.testing.assert_close(P @ A, A)
    torch.testing.assert_close(
        torch.diagonal(P, dim1=-2, dim2=-1).sum(-1), torch.full((3,), 3.0, dtype=F64)
    )


def test_matches_normal_equations_formula():
    A = _rand(6, 2, seed=2)
    torch.testing.assert_close(projector(A), A @ torch.linalg.inv(A.mT @ A) @ A.mT)


def test_gradcheck_and_known_variation():
    A = _rand(6, 3, seed=3).requires_grad_()
    assert gradcheck(projector, (A,))
    # dΠ = 2((I − Π) dA A⁺)_sym
    dA = _rand(6, 3, seed=4)
    A0 = A.detach()
    P = projector(A0)
    pinv = torch.linalg.pinv(A0)
    expected = (torch.eye(6, dtype=F64) - P) @ dA @ pinv
    expected = expected + expected.mT
    _, dP = torch.func.jvp(lambda X: projector(X, check=False), (A0,), (dA,))
    torch.testing.assert_close(dP, expected)


def test_invariant_to_column_mixing():
    """Π depends only on range(A): A and AR give the same projector and consistent gradients."""
    A = _rand(6, 3, seed=5)
    R = _rand(3, 3, seed=6) + 3 * torch.eye(3, dtype=F64)
    torch.testing.assert_close(projector(A), projector(A @ R))


@pytest.mark.parametrize(
    "A, pattern",
    [
        (torch.ones(3, dtype=F64), "shape"),
        (_rand(2, 4), "rows"),
        (torch.ones(4, 2, dtype=F64), "full column rank"),
        (torch.tensor([[float("nan")], [1.0]], dtype=F64), "finite"),
        (torch.ones(3, 2, dtype=torch.int64), "dtype"),
    ],
)
def test_invalid_input(A, pattern):
    with pytest.raises(ValueError, match=pattern):
        projector(A)
