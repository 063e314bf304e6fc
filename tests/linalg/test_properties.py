"""Property tests (hypothesis): identities of matrix functions and finite gradients on spectra
with forced repeats and wide exponent ranges."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from matbackprop.linalg import eigh, expm, invsqrtm, logm, sqrtm, svd

from .. import builders as B

F64 = torch.float64
EPS = float(torch.finfo(F64).eps)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def spectra(draw, min_exp: float, max_exp: float, signed: bool = False):
    """A spectrum of size 1..6 built from 1..4 levels, each repeated 1..3 times (forced ties)."""
    levels = draw(
        st.lists(st.floats(min_exp, max_exp, allow_nan=False), min_size=1, max_size=4, unique=True)
    )
    values = []
    for e in levels:
        sign = -1.0 if signed and draw(st.booleans()) else 1.0
        values += [sign * 10.0**e] * draw(st.integers(1, 3))
    values = values[:6]
    seed = draw(st.integers(0, 2**16))
    return torch.tensor(values, dtype=F64), seed


@SETTINGS
@given(spectra(-1.3, 1.3, signed=True))
def test_logm_of_expm_is_identity(spec):
    lam, seed = spec  # |λ| <= 20: exp stays well inside float64
    # beyond a spread of ~33, expm(S) is numerically singular at its own scale
    # (cond = exp(spread) > 1/(4 n eps)) and logm rejects it by design (test_zero_eigenvalues)
    assume(float(lam.max() - lam.min()) < 30.0)
    S = B.with_spectrum(lam, seed=seed)
    # rounding in expm(S) is relative to its largest eigenvalue; logm divides it by the
    # smallest: the error scales with cond(expm(S)) = exp(λmax − λmin)
    cond = float(torch.exp(lam.max() - lam.min()))
    tol = 64 * len(lam) * EPS * float(lam.abs().max() + 1) * cond
    torch.testing.assert_close(logm(expm(S)), S, atol=tol, rtol=0)


@SETTINGS
@given(spectra(-6, 6))
def test_sqrtm_squared_is_identity(spec):
    lam, seed = spec
    A = B.with_spectrum(lam, seed=seed)
    R = sqrtm(A)
    tol = 64 * len(lam) * EPS * float(lam.max())
    torch.testing.assert_close(R @ R, A, atol=tol, rtol=0)


@SETTINGS
@given(spectra(-4, 4))
def test_invsqrtm_whitens(spec):
    lam, seed = spec
    A = B.with_spectrum(lam, seed=seed)
    Z = invsqrtm(A)
    cond = float(lam.max() / lam.min())
    tol = 64 * len(lam) * EPS * cond
    torch.testing.assert_close(Z @ A @ Z, torch.eye(len(lam), dtype=F64), atol=tol, rtol=0)


@SETTINGS
@given(spectra(-6, 6), st.sampled_from([logm, sqrtm, invsqrtm]))
def test_matrix_function_gradients_finite(spec, fn):
    lam, seed = spec
    A = B.with_spectrum(lam, seed=seed).requires_grad_()
    G = B.random_symmetric(len(lam), seed=seed + 1)
    (fn(A) * G).sum().backward()
    assert torch.isfinite(A.grad).all()


@SETTINGS
@given(spectra(-6, 6, signed=True))
def test_eigh_gradients_finite_under_gauge_invariant_loss(spec):
    lam, seed = spec
    A = B.with_spectrum(lam, seed=seed).requires_grad_()
    values, U = eigh(A)
    # projector onto the top eigenvector cluster (a gauge-invariant block) and eigenvalue sums
    top = values >= values[-1] - 1e-9 * values.abs().max()
    V = U[:, top]
    G = B.random_symmetric(len(lam), seed=seed + 1)
    ((V @ V.mT * G).sum() + values.sum()).backward()
    assert torch.isfinite(A.grad).all()


@SETTINGS
@given(spectra(-6, 6), st.integers(0, 3))
def test_svd_gradients_finite_with_repeated_and_zero_singular_values(spec, extra_rows):
    s, seed = spec
    n = len(s)
    s = torch.cat([s[: max(n - 1, 1)], torch.zeros(n - max(n - 1, 1), dtype=F64)])  # one zero
    m = n + extra_rows
    U = B.random_orthogonal(m, seed=seed)[:, :n]
    V = B.random_orthogonal(n, seed=seed + 1)
    M = ((U * s) @ V.mT).requires_grad_()
    Uo, S, Vh = svd(M)
    G = torch.randn(m, m, dtype=F64, generator=torch.Generator().manual_seed(seed))
    ((Uo[:, :1] @ Uo[:, :1].mT * G).sum() + S.sum()).backward()
    assert torch.isfinite(M.grad).all()
