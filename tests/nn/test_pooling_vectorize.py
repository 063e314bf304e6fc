"""vectorize_symmetric / unvectorize_symmetric (the √2 isometry) and signed_power."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from matbackprop.nn.functional import (
    signed_power,
    symmetric_dim,
    unvectorize_symmetric,
    vectorize_symmetric,
)

F64 = torch.float64


def random_symmetric(n, *, seed=0, batch=()):
    X = torch.randn(*batch, n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return 0.5 * (X + X.mT)


# ----------------------------------------------------------------------------- vectorize


def test_known_answer_and_order():
    M = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [3.0, 5.0, 6.0]], dtype=F64)
    r2 = math.sqrt(2)
    expected = torch.tensor([1.0, 2 * r2, 3 * r2, 4.0, 5 * r2, 6.0], dtype=F64)
    torch.testing.assert_close(vectorize_symmetric(M), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", [1, 2, 5, 9])
def test_isometry_of_distances_and_inner_products(n):
    A = random_symmetric(n, seed=n, batch=(3,))
    B = random_symmetric(n, seed=n + 100, batch=(3,))
    va, vb = vectorize_symmetric(A), vectorize_symmetric(B)
    assert va.shape == (3, symmetric_dim(n))
    torch.testing.assert_close((va - vb).norm(dim=-1), (A - B).flatten(1).norm(dim=-1))
    torch.testing.assert_close((va * vb).sum(-1), (A * B).sum((-2, -1)))


def test_round_trips():
    M = random_symmetric(6, seed=1, batch=(2, 3))
    torch.testing.assert_close(unvectorize_symmetric(vectorize_symmetric(M)), M)
    v = torch.randn(4, 21, dtype=F64)
    torch.testing.assert_close(vectorize_symmetric(unvectorize_symmetric(v, 6)), v)
    assert unvectorize_symmetric(v).shape == (4, 6, 6)


def test_dtype_follows_input():
    M = random_symmetric(3).float()
    assert vectorize_symmetric(M).dtype == torch.float32
    assert unvectorize_symmetric(vectorize_symmetric(M)).dtype == torch.float32


def test_gradcheck_both_directions():
    M = random_symmetric(4, seed=2).requires_grad_()
    assert gradcheck(vectorize_symmetric, (M,))
    v = torch.randn(10, dtype=F64, requires_grad=True)
    assert gradcheck(unvectorize_symmetric, (v,))


@pytest.mark.parametrize(
    ("fn", "arg", "match"),
    [
        (vectorize_symmetric, [[1.0]], "`M` must be a torch.Tensor"),
        (vectorize_symmetric, torch.ones(3, dtype=F64), r"`M` must have shape \(..., n, n\)"),
        (vectorize_symmetric, torch.ones(2, 3, dtype=F64), r"`M` must have shape \(..., n, n\)"),
        (vectorize_symmetric, torch.ones(0, 0, dtype=F64), r"n >= 1"),
        (vectorize_symmetric, torch.ones(2, 2, dtype=torch.int64), "floating dtype"),
        (unvectorize_symmetric, torch.ones(5, dtype=F64), "n\\(n\\+1\\)/2"),
        (unvectorize_symmetric, torch.ones(0, dtype=F64), "n\\(n\\+1\\)/2"),
        (unvectorize_symmetric, torch.tensor(1.0, dtype=F64), "`v` must have shape"),
        (unvectorize_symmetric, torch.ones(3, dtype=torch.int64), "floating dtype"),
    ],
)
def test_invalid_inputs_raise(fn, arg, match):
    with pytest.raises(ValueError, match=match):
        fn(arg)


def test_unvectorize_n_must_match():
    with pytest.raises(ValueError, match="`n` must match"):
        unvectorize_symmetric(torch.ones(6, dtype=F64), 4)


# ----------------------------------------------------------------------------- signed power


def test_signed_power_known_values_and_identity_at_alpha_one():
    x = torch.tensor([-4.0, -0.0, 0.0, 9.0], dtype=F64)
    torch.testing.assert_close(
        signed_power(x, 0.5, delta=1e-30), torch.tensor([-2.0, 0.0, 0.0, 3.0], dtype=F64)
    )
    torch.testing.assert_close(signed_power(x, 1.0, delta=0.3), x)
    delta, alpha = 0.01, 0.5
    expected = torch.sign(x) * ((x.abs() + delta) ** alpha - delta**alpha)
    torch.testing.assert_close(signed_power(x, alpha, delta), expected)


def test_signed_power_derivative_is_finite_at_zero():
    alpha, delta = 0.5, 1e-6
    x = torch.zeros(3, dtype=F64, requires_grad=True)
    signed_power(x, alpha, delta).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), alpha * delta ** (alpha - 1), dtype=F64))
    # against the two-sided difference quotient s(h) - s(-h) / 2h for h << delta
    h = 1e-12
    quotient = (signed_power(torch.tensor(h, dtype=F64), alpha, delta) * 2) / (2 * h)
    torch.testing.assert_close(quotient, x.grad[0], rtol=1e-4, atol=0)


def test_signed_power_gradcheck_including_zeros():
    x = torch.tensor([-2.0, -0.3, 0.0, 0.0, 0.05, 1.5], dtype=F64, requires_grad=True)
    assert gradcheck(lambda x: signed_power(x, 0.75, 0.01), (x,))
    x2 = torch.tensor([-2.0, -0.3, 0.05, 1.5], dtype=F64, requires_grad=True)
    assert gradgradcheck(lambda x: signed_power(x, 0.75, 0.01), (x2,))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.ones(2, dtype=F64), 0.0), "`alpha` must be a finite number > 0"),
        ((torch.ones(2, dtype=F64), math.inf), "`alpha` must be a finite number > 0"),
        ((torch.ones(2, dtype=F64), True), "`alpha` must be a finite number > 0"),
        ((torch.ones(2, dtype=F64), 0.5, 0.0), "`delta` must be a finite number > 0"),
        ((torch.ones(2, dtype=F64), 0.5, -1.0), "`delta` must be a finite number > 0"),
        ((torch.ones(2, dtype=torch.int64), 0.5), "`x` must have a floating dtype"),
        (([1.0], 0.5), "`x` must be a torch.Tensor"),
    ],
)
def test_signed_power_invalid_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        signed_power(*args)
