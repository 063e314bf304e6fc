"""svd: the paper's backward for tall, wide, square, full and rank-deficient matrices."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from matbackprop.linalg import DegeneracyPolicy, svd

from .. import builders as B

F64 = torch.float64


def _rand(*shape, seed=0):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def with_singular_values(s, m, n, seed=0):
    s = torch.as_tensor(s, dtype=F64)
    k = s.shape[-1]
    U = B.random_orthogonal(m, seed=seed)[:, :k]
    V = B.random_orthogonal(n, seed=seed + 1)[:, :k]
    return (U * s) @ V.mT


def gauge_invariant(M, k):
    """Functions of the SVD that stay invariant to the gauge near a tie: projectors onto the
    top-k left/right singular subspaces, the polar factor ``U_k V_kᵀ`` of the top block (invariant
    to *joint* rotations of tied singular vectors), and symmetric functions of the singular values
    (valid when σ_k > σ_{k+1}). Not in this class: ``U_k Σ_k V_kᵀ`` at a tie inside the block,
    whose gradient needs the divided differences of Σ (as ``U f(Σ) Uᵀ`` for eigh)."""
    U, S, Vh = svd(M, check=False)
    Uk, Vk = U[..., :k], Vh[..., :k, :].mT
    return Uk @ Uk.mT, Vk @ Vk.mT, Uk @ Vk.mT, (S**2).sum(-1), S[..., :k].sum(-1)


SHAPES = [(6, 4), (4, 6), (5, 5), (2, 6, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_gradcheck_random(shape):
    M = _rand(*shape, seed=1).requires_grad_()

    def fn(M):
        U, S, Vh = svd(M, check=False)
        sign = torch.sign(U[..., :1, :])
        return U * sign, S, Vh * sign.mT

    assert gradcheck(fn, (M,))


CASES = {
    "repeated_top_tall": (lambda: with_singular_values([2.0, 2.0, 1.0, 0.5], 6, 4, seed=2), 2),
    "repeated_bottom_wide": (lambda: with_singular_values([3.0, 1.0, 1.0, 1.0], 4, 6, seed=3), 1),
    "rank_deficient_tall": (lambda: with_singular_values([2.0, 1.0, 0.0, 0.0], 6, 4, seed=4), 2),
    "rank_deficient_wide": (lambda: with_singular_values([2.0, 1.5, 0.0], 3, 5, seed=5), 2),
    "zero_matrix_square": (lambda: torch.zeros(3, 3, dtype=F64), 0),
    "near_degenerate_1e-8": (
        lambda: with_singular_values([2.0, 1.0 + 1e-8, 1.0, 0.5], 5, 4, seed=6),
        1,
    ),
    "tiny_scale": (lambda: 1e-6 * _rand(5, 3, seed=7), 2),
    "huge_scale": (lambda: 1e6 * _rand(3, 5, seed=8), 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gradcheck_degenerate_gauge_invariant(case):
    build, k = CASES[case]
    A = build()
    scale = float(A.abs().max()) or 1.0

    def fn(X):
        if k == 0:
            U, S, Vh = svd(scale * X, check=False)
            return ((S / scale) ** 2).sum(-1)
        P_U, P_V, polar, s2, top = gauge_invariant(scale * X, k)
        return P_U, P_V, polar, s2 / scale**2, top / scale

    X = (A / scale).clone().requires_grad_()
    if k == 0:
        # ‖A‖_F² has gradient 2A, also at A = 0, where the SVD is maximally degenerate
        X.requires_grad_()
        fn(X).backward()
        assert torch.isfinite(X.grad).all()
        torch.testing.assert_close(X.grad, 2 * X.detach())
        return
    assert gradcheck(fn, (X,))


@pytest.mark.parametrize("shape", [(6, 4), (4, 6)], ids=str)
def test_full_matrices_complement_gradient(shape):
    """Complement columns enter through gauge-invariant functions (their projector)."""
    M = _rand(*shape, seed=9).requires_grad_()

    def fn(M):
        U, S, Vh = svd(M, full_matrices=True, check=False)
        k = min(M.shape[-2:])
        U2, V2 = U[..., :, k:], Vh[..., k:, :].mT
        return U2 @ U2.mT, V2 @ V2.mT, (U[..., :, :k] * S.unsqueeze(-2)) @ Vh[..., :k, :]

    assert gradcheck(fn, (M,))


def test_matches_torch_autograd_on_separated_spectrum():
    A = _rand(6, 4, seed=10)
    gU, gS, gV = _rand(6, 4, seed=11), _rand(4, seed=12), _rand(4, 4, seed=13)
    grads = []
    for fn in (lambda X: svd(X), lambda X: torch.linalg.svd(X, full_matrices=False)):
        X = A.clone().requires_grad_()
        U, S, Vh = fn(X)
        sign = torch.sign(U[:1])
        ((U * sign * gU).sum() + (S * gS).sum() + (Vh * sign.mT * gV).sum()).backward()
        grads.append(X.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-10, rtol=1e-8)


def test_exact_tie_finite_and_correct_where_torch_is_nan():
    """Exactly repeated singular values (a diagonal input): the polar factor of the top block
    has a finite gradient; torch's svd backward divides 0 by 0. Reference: the limit of
    torch's (correct) gradient as a split tie closes."""
    G = _rand(4, 3, seed=15)

    def grad(fn, A):
        X = A.clone().requires_grad_()
        U, S, Vh = fn(X)
        ((U[:, :2] @ Vh[:2]) * G).sum().add(S.sum()).backward()
        return X.grad

    tied = torch.zeros(4, 3, dtype=F64)
    tied[0, 0], tied[1, 1], tied[2, 2] = 1.0, 1.0, 0.5
    ours = grad(svd, tied)
    assert torch.isfinite(ours).all()
    assert not torch.isfinite(grad(lambda X: torch.linalg.svd(X, full_matrices=False), tied)).all()
    split = tied.clone()
    split[1, 1] = 1.0 - 1e-7
    limit = grad(lambda X: torch.linalg.svd(X, full_matrices=False), split)
    torch.testing.assert_close(ours, limit, atol=1e-6, rtol=0)


def test_adjoint_dot_product():
    A = _rand(5, 3, seed=16)
    dA = _rand(5, 3, seed=17)
    g = (_rand(5, 3, seed=18), _rand(3, seed=19), _rand(3, 3, seed=20))
    tangents = torch.func.jvp(lambda X: svd(X, check=False), (A,), (dA,))[1]
    out, vjp = torch.func.vjp(lambda X: svd(X, check=False), A)
    (gA,) = vjp(type(out)(*g))  # cotangents in the output's structure (as torch.linalg)
    lhs = sum((t * c).sum() for t, c in zip(tangents, g, strict=True))
    torch.testing.assert_close(lhs, (dA * gA).sum())


def test_lorentzian_policy_is_finite_on_ties():
    A = with_singular_values([2.0, 1.0, 1.0], 4, 3, seed=21).requires_grad_()
    U, S, Vh = svd(A, policy=DegeneracyPolicy("lorentzian", broadening=1e-3))
    (U * torch.sign(U[:1])).sum().backward()
    assert torch.isfinite(A.grad).all()


@pytest.mark.parametrize(
    "A, pattern",
    [
        (torch.ones(3, dtype=F64), "shape"),
        (torch.ones(0, 3, dtype=F64), "non-empty"),
        (torch.ones(2, 3, dtype=torch.int32), "dtype"),
        (torch.tensor([[float("inf"), 0.0]], dtype=F64), "finite"),
    ],
)
def test_invalid_input(A, pattern):
    with pytest.raises(ValueError, match=pattern):
        svd(A)


def test_full_matrices_must_be_bool():
    with pytest.raises(ValueError, match="full_matrices"):
        svd(_rand(3, 2), full_matrices="yes")


def test_forward_matches_torch_and_float32():
    A = _rand(4, 7, 5, seed=22).float()
    U, S, Vh = svd(A)
    assert U.dtype == torch.float32 and U.shape == (4, 7, 5) and Vh.shape == (4, 5, 5)
    torch.testing.assert_close((U * S.unsqueeze(-2)) @ Vh, A, atol=1e-5, rtol=0)
    torch.testing.assert_close(S, torch.linalg.svdvals(A))
