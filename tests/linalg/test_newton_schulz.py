"""Newton–Schulz (iSQRT-COV): accuracy per iteration count, exact backward of the iteration."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from matbackprop.linalg import invsqrtm, invsqrtm_newton_schulz, sqrtm, sqrtm_newton_schulz

from .. import builders as B

F64 = torch.float64


def naive_newton_schulz(A, iterations):
    """Reference: the iteration written out with plain autograd."""
    t = torch.diagonal(A, dim1=-2, dim2=-1).sum(-1)[..., None, None]
    eye = torch.eye(A.shape[-1], dtype=A.dtype).expand_as(A)
    Y, Z = A / t, eye
    for _ in range(iterations):
        T = 0.5 * (3 * eye - Z @ Y)
        Y, Z = Y @ T, T @ Z
    return torch.sqrt(t) * Y, Z / torch.sqrt(t)


# Stated accuracy: max relative error ‖NS_N(A) − A^(±½)‖_max / ‖A^(±½)‖_max for SPD A with
# spectrum in [0.5, 2.5] (condition number <= 5), n = 16, float64. Trace pre-normalisation puts
# the eigenvalues of A/tr(A) near 1/n, so the first steps are slow (linear); convergence turns
# quadratic after ~6 steps. Measured (seed 1, batch 4): N=3: 0.37, 5: 0.06, 7: 1.7e-4,
# 8: 9.3e-8, 9: 3e-14. Bounds below are those with a ~3x margin.
TOLERANCE_PER_ITERATIONS = {3: 1.0, 5: 0.2, 7: 5e-4, 8: 3e-7, 9: 1e-13}


@pytest.mark.parametrize("iterations", sorted(TOLERANCE_PER_ITERATIONS))
def test_accuracy_against_eigen_route(iterations):
    A = B.random_spd(16, seed=1, batch=(4,))
    tol = TOLERANCE_PER_ITERATIONS[iterations]
    for ns, exact in ((sqrtm_newton_schulz, sqrtm), (invsqrtm_newton_schulz, invsqrtm)):
        approx, ref = ns(A, iterations), exact(A)
        rel = float((approx - ref).abs().max() / ref.abs().max())
        assert rel < tol, f"{ns.__name__} N={iterations}: {rel:.2e} >= {tol:.0e}"


def test_error_decreases_with_iterations():
    A = B.random_spd(16, seed=2)
    ref = sqrtm(A)
    errors = [float((sqrtm_newton_schulz(A, N) - ref).abs().max()) for N in (1, 2, 4, 8)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-6


def test_matches_autograd_through_the_unrolled_iteration():
    A = B.random_spd(6, seed=3, batch=(2,))
    G1, G2 = B.random_symmetric(6, seed=4), B.random_symmetric(6, seed=5)
    X1, X2 = A.clone().requires_grad_(), A.clone().requires_grad_()
    (
        (sqrtm_newton_schulz(X1, 4) * G1).sum() + (invsqrtm_newton_schulz(X1, 4) * G2).sum()
    ).backward()
    s, z = naive_newton_schulz(X2, 4)
    ((s * G1).sum() + (z * G2).sum()).backward()
    torch.testing.assert_close(X1.grad, 0.5 * (X2.grad + X2.grad.mT), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("fn", [sqrtm_newton_schulz, invsqrtm_newton_schulz])
@pytest.mark.parametrize(
    "case",
    ["random", "identity", "repeated", "rank_deficient_eps"],
)
def test_gradcheck(fn, case):
    A = {
        "random": lambda: B.random_spd(5, seed=6),
        "identity": lambda: B.identity(5),
        "repeated": lambda: B.repeated(5, 3, seed=7),
        "rank_deficient_eps": lambda: B.rank_deficient(2, 5, 0.1, seed=8),
    }[case]()
    X = A.clone().requires_grad_()
    assert gradcheck(lambda X: fn(0.5 * (X + X.mT), 5, check=False), (X,))


def test_backward_converges_to_exact_gradient():
    """With enough iterations the NS gradient approaches the Daleckii–Krein gradient."""
    A = B.random_spd(6, seed=9)
    G = B.random_symmetric(6, seed=10)
    grads = []
    for fn in (lambda X: sqrtm_newton_schulz(X, 12), sqrtm):
        X = A.clone().requires_grad_()
        (fn(X) * G).sum().backward()
        grads.append(X.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-9, rtol=1e-8)


def test_float32_vmap_and_dtype():
    A = B.random_spd(8, seed=11, batch=(3,)).float()
    out = sqrtm_newton_schulz(A, 5)
    assert out.dtype == torch.float32
    torch.testing.assert_close(
        torch.func.vmap(lambda X: sqrtm_newton_schulz(X, 5, check=False))(A), out
    )


@pytest.mark.parametrize(
    "A, kwargs, pattern",
    [
        (torch.ones(3, dtype=F64), {}, "shape"),
        (-torch.eye(3, dtype=F64), {}, "trace"),
        (torch.eye(3, dtype=F64), {"iterations": 0}, "iterations"),
        (torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64), {}, "symmetric"),
    ],
)
def test_invalid_input(A, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        sqrtm_newton_schulz(A, **kwargs)
