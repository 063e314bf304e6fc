"""eigh: the paper's backward under gauge-invariant losses, degenerate spectra and policies."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from matbackprop.linalg import DegeneracyPolicy, eigh

from .. import builders as B

F64 = torch.float64


def _eig(X, policy=None):
    return eigh(0.5 * (X + X.mT), policy=policy, check=False)


def gauge_invariant_losses(X, k):
    """Losses invariant to rotations inside degenerate eigenspaces: the projector onto the top-k
    eigenvectors and the sum of the top-k eigenvalues (valid when σ_{n-k} < σ_{n-k+1}), and
    symmetric functions of all eigenvalues (always valid). Single eigenvalues inside a tie are
    not differentiable, so they are not used."""
    lam, U = _eig(X)
    sums = (lam.sum(-1), (lam**2).sum(-1))
    if k is None:
        return sums
    V = U[..., -k:]
    return (V @ V.mT, lam[..., -k:].sum(-1), *sums)


# name -> (matrix, k with a gap below the top-k block, or None for a fully degenerate spectrum)
CASES = {
    "random": lambda: (B.random_symmetric(5, seed=1), 2),
    "identity": lambda: (B.identity(5), None),
    "repeated_bottom": lambda: (
        B.with_spectrum(torch.tensor([1.0, 1.0, 1.0, 3.0, 5.0], dtype=F64), seed=2),
        2,
    ),
    "repeated_zero_rank_deficient": lambda: (B.rank_deficient(2, 5, 0.0, seed=3), 2),
    "repeated_top": lambda: (
        B.with_spectrum(torch.tensor([1.0, 2.0, 4.0, 4.0, 4.0], dtype=F64), seed=21),
        3,
    ),
    "near_degenerate_1e-8": lambda: (
        B.with_spectrum(torch.tensor([1.0, 1.0 + 1e-8, 2.0, 3.0, 4.0], dtype=F64), seed=4),
        3,
    ),
    "tiny_scale": lambda: (1e-6 * B.random_spd(5, seed=5), 2),
    "huge_scale": lambda: (1e6 * B.random_spd(5, seed=6), 2),
    "batch": lambda: (torch.stack([B.random_spd(5, seed=7), B.repeated(5, 3, seed=8)]), 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_gradcheck_gauge_invariant_losses(case):
    A, k = CASES[case]()
    scale = float(A.abs().max())
    powers = (0, 1, 1, 2) if k is not None else (1, 2)

    def fn(X):
        # evaluate at the original scale, undo it on the outputs so gradcheck's tolerances apply
        out = gauge_invariant_losses(scale * X, k)
        return tuple(t / scale**p for t, p in zip(out, powers, strict=True))

    X = (A / scale).clone().requires_grad_()
    assert gradcheck(fn, (X,))


def test_gradcheck_every_eigenvector_on_separated_spectrum():
    """With distinct eigenvalues each eigenvector is differentiable once its sign is fixed."""
    X = B.random_symmetric(5, seed=9).requires_grad_()

    def fn(X):
        lam, U = _eig(X)
        return lam, U * torch.sign(U[..., :1, :])

    assert gradcheck(fn, (X,))


def test_matches_torch_autograd_on_separated_spectrum():
    A = B.random_symmetric(6, seed=10)
    gU = torch.randn(6, 6, dtype=F64, generator=torch.Generator().manual_seed(0))
    gl = torch.randn(6, dtype=F64, generator=torch.Generator().manual_seed(1))
    A1, A2 = A.clone().requires_grad_(), A.clone().requires_grad_()
    lam, U = eigh(A1)
    (lam * gl).sum().add((U * torch.sign(U[:1]) * gU).sum()).backward()
    lam2, U2 = torch.linalg.eigh(A2)
    (lam2 * gl).sum().add((U2 * torch.sign(U2[:1]) * gU).sum()).backward()
    torch.testing.assert_close(A1.grad, 0.5 * (A2.grad + A2.grad.mT), atol=1e-10, rtol=1e-8)


def test_finite_where_torch_is_not():
    """Identity input: torch's eigh backward divides by zero gaps; ours is finite and exact."""
    G = B.random_symmetric(4, seed=11)
    A1 = B.identity(4).requires_grad_()
    lam, U = eigh(A1)
    ((U[:, -2:] @ U[:, -2:].mT) * G).sum().add(lam.sum()).backward()
    assert torch.isfinite(A1.grad).all()
    A2 = B.identity(4).requires_grad_()
    lam2, U2 = torch.linalg.eigh(A2)
    ((U2[:, -2:] @ U2[:, -2:].mT) * G).sum().add(lam2.sum()).backward()
    assert not torch.isfinite(A2.grad).all()


def test_known_answer_eigenvalue_gradient():
    """∂σᵢ/∂A = uᵢuᵢᵀ (Hellmann–Feynman)."""
    A = B.random_symmetric(5, seed=12).requires_grad_()
    lam, U = eigh(A)
    lam[2].backward()
    torch.testing.assert_close(A.grad, torch.outer(U[:, 2], U[:, 2]).detach())


def test_gradient_is_symmetric():
    A = (B.random_symmetric(5, seed=13) + 0.0).requires_grad_()
    lam, U = eigh(A)
    (U[:, -1:] @ U[:, -1:].mT)[0, 1].backward()
    torch.testing.assert_close(A.grad, A.grad.mT)


def test_adjoint_dot_product():
    A = B.random_symmetric(5, seed=14)
    dX = B.random_symmetric(5, seed=15)
    gl = torch.randn(5, dtype=F64, generator=torch.Generator().manual_seed(2))
    gU = torch.randn(5, 5, dtype=F64, generator=torch.Generator().manual_seed(3))
    (dl, dU) = torch.func.jvp(lambda X: eigh(X, check=False), (A,), (dX,))[1]
    out, vjp = torch.func.vjp(lambda X: eigh(X, check=False), A)
    (g,) = vjp(type(out)(gl, gU))  # cotangents in the output's structure (as torch.linalg)
    torch.testing.assert_close((dl * gl).sum() + (dU * gU).sum(), (dX * g).sum())


def test_lorentzian_is_finite_and_close_to_exact_on_separated_spectrum():
    A = B.random_symmetric(5, seed=16)
    G = torch.randn(5, 5, dtype=F64, generator=torch.Generator().manual_seed(4))

    def grad(policy, A):
        A = A.clone().requires_grad_()
        lam, U = eigh(A, policy=policy)
        (U * torch.sign(U[:1]) * G).sum().backward()
        return A.grad

    exact = grad(None, A)
    broad = grad(DegeneracyPolicy("lorentzian", broadening=1e-6), A)
    torch.testing.assert_close(broad, exact, atol=1e-8, rtol=1e-6)
    # On an exact tie the Lorentzian coupling is 0 (d = 0), and finite nearby.
    near = B.with_spectrum(torch.tensor([1.0, 1.0 + 1e-12, 2.0, 3.0, 4.0], dtype=F64), seed=17)
    g = grad(DegeneracyPolicy("lorentzian", broadening=1e-3), near)
    assert torch.isfinite(g).all() and g.abs().max() < 1e4


def test_zero_policy_tolerance_is_relative_to_scale():
    """The same relative gap is treated identically at scales 1 and 1e6 (no absolute tolerance)."""
    lam = torch.tensor([1.0, 1.0 + 1e-11, 2.0], dtype=F64)
    out = []
    for s in (1.0, 1e6):
        A = B.with_spectrum(s * lam, seed=18).requires_grad_()
        _, U = eigh(A)
        (U[:, :2] @ U[:, :2].mT).sum().backward()
        out.append(A.grad * 1.0)  # block projector: invariant to scale of A
    torch.testing.assert_close(out[0], out[1] * 1e6, atol=1e-8, rtol=1e-6)


def test_policy_validation():
    with pytest.raises(ValueError, match="`mode`"):
        DegeneracyPolicy("cutoff")
    with pytest.raises(ValueError, match="`rtol`"):
        DegeneracyPolicy(rtol=-1.0)
    with pytest.raises(ValueError, match="`policy`"):
        eigh(B.identity(2), policy="zero")


@pytest.mark.parametrize(
    "A, pattern",
    [
        (torch.ones(3, dtype=F64), r"shape"),
        (torch.ones(2, 3, dtype=F64), "square"),
        (torch.eye(2, dtype=torch.float16), "dtype"),
        (torch.tensor([[0.0, float("nan")], [float("nan"), 0.0]], dtype=F64), "finite"),
        (torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64), "symmetric"),
    ],
)
def test_invalid_input(A, pattern):
    with pytest.raises(ValueError, match=pattern):
        eigh(A)


def test_float32_and_vmap():
    A = B.random_symmetric(6, seed=19, batch=(3,)).float()
    lam, U = eigh(A)
    assert lam.dtype == U.dtype == torch.float32
    lam_v, _ = torch.func.vmap(lambda X: eigh(X, check=False))(A)
    torch.testing.assert_close(lam_v, lam)


def test_threaded_cpu_solver_matches_single_call(monkeypatch):
    """The CPU path splits big batches across threads; results equal one batched call."""
    from matbackprop.linalg._solver import symmetric_eigh

    monkeypatch.setenv("MATBACKPROP_EIGH_THREADS", "2")
    A = B.random_symmetric(128, seed=20, batch=(8,))
    lam, U = symmetric_eigh(A)
    lam2, U2 = torch.linalg.eigh(A)
    torch.testing.assert_close(lam, lam2)
    torch.testing.assert_close(U @ torch.diag_embed(lam) @ U.mT, A, atol=1e-12, rtol=0)


def test_float32_nonconvergence_falls_back_to_float64(monkeypatch):
    from matbackprop.linalg import _solver

    real = torch.linalg.eigh

    def flaky(A, *args, **kwargs):
        if A.dtype == torch.float32:
            raise torch.linalg.LinAlgError("failed to converge (simulated)")
        return real(A, *args, **kwargs)

    monkeypatch.setattr(_solver.torch.linalg, "eigh", flaky)
    A = B.random_symmetric(5, seed=22).float()
    with pytest.warns(RuntimeWarning, match="float64"):
        lam, U = eigh(A)
    assert lam.dtype == torch.float32
    torch.testing.assert_close(lam, real(A.double())[0].float())
