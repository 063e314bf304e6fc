"""Zero, rounding-positive and rounding-negative eigenvalues (issue 8 §1 and §2.2).

Definiteness is judged relative to each matrix's scale and dtype
(``tol = 4 n eps max|λ|``, :func:`matbackprop.validation.definiteness_tolerance`):

- ``logm`` / ``invsqrtm`` / ``powm(p <= 0)`` reject a numerically singular matrix whatever the
  sign or size of the rounding its zero eigenvalues came out with;
- ``sqrtm`` / ``powm(p > 0)`` evaluate those eigenvalues as exactly 0, so the result and the
  gradient are the same for 0, +1e-17 and −1e-17, finite, and equal to finite differences for
  the function of ``F`` in ``FᵀF`` (and of ``A`` itself where ``f`` is C¹, e.g. ``p = 1.5``).
"""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch.autograd import gradcheck

from matbackprop.linalg import invsqrtm, logm, powm, sqrtm

from .. import builders as B
from .. import references as ref

F64, F32 = torch.float64, torch.float32

PD = {"logm": logm, "invsqrtm": invsqrtm, "powm(-0.3)": partial(powm, p=-0.3)}
PSD = {
    "sqrtm": sqrtm,
    "powm(0.5)": partial(powm, p=0.5),
    "powm(0.7)": partial(powm, p=0.7),
    "powm(1)": partial(powm, p=1.0),
    "powm(1.5)": partial(powm, p=1.5),
    "powm(2.5)": partial(powm, p=2.5),
}


# ----------------------------------------------------------------------------- the check


@pytest.mark.parametrize("name", list(PD))
@pytest.mark.parametrize("tiny", [0.0, 1e-17, -1e-17, 3e-16])
@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_numerically_singular_matrices_are_rejected_whatever_the_rounding(name, tiny, scale):
    """§1: the zero eigenvalues of FᵀF came out as +1e-17 on one LAPACK kernel, and the absolute
    test ``λ <= 0`` let them pass. Each ``tiny`` is below 4·n·eps at every scale."""
    A = scale * torch.diag(torch.tensor([tiny, 0.5, 1.0], dtype=F64))
    with pytest.raises(ValueError, match="positive definite.*rounding level"):
        PD[name](A)


@pytest.mark.parametrize("name", list(PD))
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
def test_rank_deficient_gram_matrix_is_rejected(name, seed, dtype):
    F = B.rank_deficient_factor(3, 6, seed=seed, dtype=dtype)
    with pytest.raises(ValueError, match="positive definite"):
        PD[name](F.mT @ F)
    assert torch.isfinite(PD[name](F.mT @ F, eps=1e-3)).all()


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_definiteness_is_relative_to_scale(dtype, scale):
    """The same relative spectrum is accepted (or rejected) at every scale."""
    if dtype == F32:
        scale = min(max(scale, 1e-15), 1e15)
    well = scale * torch.diag(torch.tensor([1e-3, 1.0], dtype=F64)).to(dtype)
    assert torch.isfinite(logm(well)).all()
    singular = scale * torch.diag(torch.tensor([1e-20, 1.0], dtype=F64)).to(dtype)
    with pytest.raises(ValueError, match="positive definite"):
        logm(singular)


@pytest.mark.parametrize("tiny", [-1e-17, -3e-16])
def test_psd_check_accepts_rounding_negatives_and_rejects_real_negatives(tiny):
    """One tolerance for both checks: what PD rejects as a numerical zero, PSD accepts as one."""
    A = torch.diag(torch.tensor([tiny, 0.5, 1.0], dtype=F64))
    assert torch.isfinite(sqrtm(A)).all()
    with pytest.raises(ValueError, match="positive semi-definite"):
        sqrtm(torch.diag(torch.tensor([-1e-6, 0.5, 1.0], dtype=F64)))


# ----------------------------------------------------------------------------- sqrt / pow at 0


@pytest.mark.parametrize("name", list(PSD))
def test_zero_and_rounding_eigenvalues_give_identical_results(name):
    """§2.2: results and gradients identical for 0, +1e-17 and −1e-17 (no NaN, no 1e150)."""
    fn = PSD[name]
    G = B.random_symmetric(3, seed=1)
    outs, grads = [], []
    for tiny in (0.0, 1e-17, -1e-17):
        A = torch.diag(torch.tensor([tiny, 0.5, 2.0], dtype=F64)).requires_grad_()
        Y = fn(A)
        (Y * G).sum().backward()
        outs.append(Y.detach())
        grads.append(A.grad)
    for Y, g in zip(outs[1:], grads[1:], strict=True):
        assert torch.equal(Y, outs[0])
        assert torch.equal(g, grads[0])
    assert torch.isfinite(grads[0]).all()


@pytest.mark.parametrize("name", list(PSD))
@pytest.mark.parametrize("seed", range(4))
def test_gradient_of_gram_matrix_function_matches_finite_differences(name, seed):
    """§2.2: ``sqrtm(FᵀF)`` with F 3×6 gave NaN (seed 0) or 1e138-1e153 (seeds 1-3) depending on
    LAPACK rounding; ``powm(·, 1.5)`` NaN too. As a function of F (full row rank) it is smooth."""
    fn = PSD[name]
    F = B.rank_deficient_factor(3, 6, seed=seed).requires_grad_()
    Y = fn(F.mT @ F)
    Y.square().sum().backward()
    assert torch.isfinite(F.grad).all()
    assert gradcheck(lambda F: fn(F.mT @ F, check=False), (F.detach().requires_grad_(),))


@pytest.mark.parametrize(("p", "h", "rtol"), [(1.5, 1e-10, 1e-4), (2.5, 1e-5, 1e-8)])
def test_c1_powers_match_finite_differences_in_every_direction_at_a_singular_matrix(p, h, rtol):
    """``x ↦ max(x, 0)^p`` is C¹ for p > 1: at a singular PSD A the derivative exists in every
    symmetric direction (including ones that make A indefinite), with f′(0) = 0.

    The central difference of ``max(x, 0)^p`` at 0 errs by ``h^(p−1)/2`` (the second derivative
    is infinite for p < 2), hence the small step and tolerance for p = 1.5 (error ~5e-6).
    """
    lam = torch.tensor([0.0, 0.0, 0.7, 2.0], dtype=F64)
    Q = B.random_orthogonal(4, seed=3)
    A = (Q * lam) @ Q.mT
    A = 0.5 * (A + A.mT)
    G, E = B.random_symmetric(4, seed=4), B.random_symmetric(4, seed=5)
    X = A.clone().requires_grad_()
    (powm(X, p, check=False) * G).sum().backward()

    def loss(M):
        return (powm(M, p, check=False) * G).sum()

    fd = ref.central_difference(loss, A, E, h)
    torch.testing.assert_close((X.grad * E).sum(), fd, rtol=rtol, atol=0)
    # known answer: f[0, 0] = f′(0) = 0 and f[0, b] = b^(p−1) (mpmath at 0⁺ = 1e-300)
    expected = ref.spectral_gradient("pow", Q, [1e-300, 1e-300, 0.7, 2.0], G, p=p)
    torch.testing.assert_close(X.grad, expected, rtol=1e-10, atol=1e-12)


def test_sqrtm_null_block_convention():
    """For sqrt (f′(0) = ∞) the null-null block of the gradient is 0, the pairs (0, b) take
    the exact ``1/√b``: the documented subgradient (docs/numerics.md)."""
    lam = [0.0, 0.0, 0.25, 4.0]
    A = torch.diag(torch.tensor(lam, dtype=F64)).requires_grad_()
    G = torch.ones(4, 4, dtype=F64)
    sqrtm(A).mul(G).sum().backward()
    expected = torch.tensor(
        [[0, 0, 2, 0.5], [0, 0, 2, 0.5], [2, 2, 1, 0.4], [0.5, 0.5, 0.4, 0.25]], dtype=F64
    )
    torch.testing.assert_close(A.grad, expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
def test_sqrtm_of_rank_deficient_gram_matches_scipy(dtype):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    F = B.rank_deficient_factor(3, 6, seed=0, dtype=dtype)
    A = F.mT @ F
    ours = sqrtm(A).double()
    theirs = torch.from_numpy(scipy_linalg.sqrtm(A.double().numpy()).real)
    # numerical zeros of size tol = 4 n eps max|λ| change √λ by at most sqrt(tol)
    eps = float(torch.finfo(dtype).eps)
    tol = 4 * (4 * 6 * eps * float(torch.linalg.eigvalsh(A.double()).max())) ** 0.5
    torch.testing.assert_close(ours, theirs, atol=tol, rtol=0)


def test_sqrtm_forward_mode_at_a_zero_eigenvalue_uses_the_documented_convention():
    """jvp of sqrtm at diag(0, 1, 4): the tangent of an exactly zero eigenvalue takes
    f′(0) = 0 (the documented subgradient of √ at 0); the others take f′(λ) = 1/(2√λ)."""
    import torch.func

    from matbackprop import linalg

    A = torch.diag(torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64))
    E = torch.eye(3, dtype=torch.float64)
    _, tangent = torch.func.jvp(lambda X: linalg.sqrtm(X, check=False), (A,), (E,))
    expected = torch.diag(torch.tensor([0.0, 0.5, 0.25], dtype=torch.float64))
    torch.testing.assert_close(tangent, expected, rtol=1e-12, atol=1e-12)


def _divided_difference_reference(f, df, d2f, x: list[float]) -> float:
    """``f[x₀, …, x_r]`` (r <= 2) by the recursive definition, confluent entries from the
    derivatives: an independent scalar reference for the second-order Daleckii–Krein form."""
    x = sorted(x)
    if len(x) == 1:
        return f(x[0])
    if len(x) == 2:
        a, b = x
        return df(a) if a == b else (f(b) - f(a)) / (b - a)
    a, b, c = x
    if a == c:
        return d2f(a) / 2
    return (
        _divided_difference_reference(f, df, d2f, [b, c])
        - _divided_difference_reference(f, df, d2f, [a, b])
    ) / (c - a)


def test_sqrtm_double_backward_at_an_exactly_zero_eigenvalue_uses_the_documented_convention():
    """∂/∂A ⟨H, ∂⟨G, sqrtm(A)⟩/∂A⟩ at a singular A against the triple sum
    ``U (X + Xᵀ) Uᵀ``, ``Xᵢⱼ = Σₖ f[σᵢ, σⱼ, σₖ] H̃ᵢₖ G̃ⱼₖ``, evaluated entry by entry with the
    documented values at 0: f′(0) = 0 and f″(0) = 0 (√ has infinite one-sided derivatives)."""
    import math

    sigma = [0.0, 1.0, 2.5, 4.0]
    U, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=F64))
    A = (U * torch.tensor(sigma, dtype=F64)) @ U.mT
    G = B.random_symmetric(4, seed=4, dtype=F64)
    H = B.random_symmetric(4, seed=5, dtype=F64)
    X = A.clone().requires_grad_()
    (first,) = torch.autograd.grad((sqrtm(X) * G).sum(), X, create_graph=True)
    (second,) = torch.autograd.grad((first * H).sum(), X)

    def f(x):
        return math.sqrt(x)

    def df(x):
        return 0.0 if x == 0 else 0.5 / math.sqrt(x)

    def d2f(x):
        return 0.0 if x == 0 else -0.25 * x**-1.5

    G_t, H_t = U.mT @ G @ U, U.mT @ H @ U
    Xt = torch.zeros(4, 4, dtype=F64)
    for i in range(4):
        for j in range(4):
            Xt[i, j] = sum(
                _divided_difference_reference(f, df, d2f, [sigma[i], sigma[j], sigma[k]])
                * H_t[i, k]
                * G_t[j, k]
                for k in range(4)
            )
    expected = U @ (Xt + Xt.mT) @ U.mT
    torch.testing.assert_close(second, expected, rtol=1e-9, atol=1e-10)
