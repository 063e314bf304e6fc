"""Extreme conditioning sweeps (issue 8 §4): λ_min/λ_max from 1 down to below eps, float32 and
float64, every matrix function of the registry.

For each spectrum ``geomspace(1, ratio, 5)``, on a diagonal matrix (exact eigenpairs) and on
a rotated one ``Q diag(λ) Qᵀ``:

- functions needing a definite matrix (log, inverse square root, negative powers) either
  compute, or, where ``λ_min`` is within rounding of zero (``<= 4 n eps max|λ|``), raise the
  documented ValueError;
- the forward matches SciPy, the gradient the Daleckii–Krein formula evaluated with 50-digit
  divided differences at the known eigenpairs, each to a tolerance derived from the condition
  of the problem (the eigenvalues of the rounded matrix are only known to ``~n eps max|λ|``);
- ``sqrtm`` / ``powm(p > 0)`` evaluate numerical zeros as 0 (the documented subgradient: 0 on
  the null-null block where ``f′(0)`` is infinite).
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
import torch

from .. import builders as B
from .. import references as ref
from .registry import IDS, REGISTRY

F64, F32 = torch.float64, torch.float32
N = 5
# ratios away from the singularity threshold 4 n eps (f64: 4.4e-15, f32: 2.4e-6) by >= 2x
RATIOS = {
    F64: [1.0, 1e-2, 1e-4, 1e-8, 1e-12, 1e-14, 1e-17, 1e-20],
    F32: [1.0, 1e-2, 1e-4, 1e-5, 1e-8, 1e-12],
}
# Multiple of the first-order error bound allowed (constants of LAPACK and of the products).
SAFETY = 64.0


def _threshold(dtype) -> float:
    return 4 * N * float(torch.finfo(dtype).eps)


def _derivatives(entry, lam):
    """``max|f|, max|f′|, max|f″|`` over the non-zero eigenvalues, at 50 digits."""
    f, df, d2f = ref.scalar(entry.ref_name, entry.ref_p)
    values = [v for v in lam if v != 0]
    with mp.workdps(ref.DIGITS):
        return tuple(max(abs(float(g(mp.mpf(v)))) for v in values) for g in (f, df, d2f))


def _snapped(entry, lam, dtype):
    """The spectrum as the library evaluates it: numerical zeros of PSD functions are 0."""
    if entry.domain != "psd":
        return list(lam)
    tol = _threshold(dtype) * max(abs(v) for v in lam)
    return [0.0 if abs(v) <= tol else v for v in lam]


def _reference_gradient(entry, Q, lam, G):
    """Daleckii–Krein with 50-digit P; pairs of exact zeros take the documented value f′(0)
    where it is finite (p > 1) and 0 where it is infinite (sqrt, p < 1)."""
    positive = [v if v != 0 else 1e-300 for v in lam]
    P = ref.divided_difference_matrix(entry.ref_name, positive, entry.ref_p)
    zero = np.array([v == 0 for v in lam])
    at_zero = 0.0 if entry.ref_p is None or entry.ref_p < 1 else (1.0 if entry.ref_p == 1 else 0.0)
    P[np.ix_(zero, zero)] = at_zero
    P = torch.from_numpy(P)
    Gs = 0.5 * (G + G.mT)
    return Q @ (P * (Q.mT @ Gs @ Q)) @ Q.mT


def _cases():
    for dtype, ratios in RATIOS.items():
        for ratio in ratios:
            for rotated in (False, True):
                yield dtype, ratio, rotated


CASES = list(_cases())
CASE_IDS = [
    f"{'f64' if d == F64 else 'f32'}-{r:g}-{'rot' if rot else 'diag'}" for d, r, rot in CASES
]


@pytest.mark.parametrize("entry", REGISTRY, ids=IDS)
@pytest.mark.parametrize(("dtype", "ratio", "rotated"), CASES, ids=CASE_IDS)
def test_conditioning_sweep(entry, dtype, ratio, rotated):
    lam = np.geomspace(1.0, ratio, N).tolist() if ratio < 1 else [1.0] * N
    eps = float(torch.finfo(dtype).eps)
    Q = B.random_orthogonal(N, seed=3) if rotated else torch.eye(N, dtype=F64)
    A64 = (Q * torch.tensor(lam, dtype=F64)) @ Q.mT
    A64 = 0.5 * (A64 + A64.mT)
    A = A64.to(dtype).requires_grad_()
    G = B.random_symmetric(N, seed=4)
    singular = min(lam) <= _threshold(dtype) * max(lam) / 2
    if entry.domain == "pd" and singular:
        with pytest.raises(ValueError, match="positive definite.*rounding level"):
            entry.fn(A)
        return
    out = entry.fn(A)
    (out * G.to(dtype)).sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(A.grad).all()

    evaluated = _snapped(entry, lam, dtype)
    fmax, dfmax, d2fmax = _derivatives(entry, evaluated)
    scale = max(lam)
    # eigenvalues of the rounded input are known to ~n eps max|λ| (0 for the diagonal input
    # in float64, where LAPACK returns them exactly; float32 rounds the input itself)
    delta = N * eps * scale if (rotated or dtype == F32) else 0.0
    # forward: |f′| δ from the eigenvalues, n eps |f| from the products; numerical zeros of a
    # PSD function move f by at most |f(tol)| (tol the rounding level)
    zero_term = 0.0
    if entry.domain == "psd" and 0.0 in evaluated:
        zero_term = float(ref.scalar(entry.ref_name, entry.ref_p)[0](mp.mpf(_threshold(dtype))))
    fwd_tol = SAFETY * (dfmax * (delta + N * eps * scale) + N * eps * fmax) + 4 * zero_term
    fwd_tol = min(fwd_tol, 0.25 * (fmax + dfmax * scale))  # right to 25% when ill-conditioned
    expected = torch.from_numpy(np.real(entry.scipy_ref(A.detach().double().numpy())))
    torch.testing.assert_close(out.double(), expected, atol=fwd_tol, rtol=0)

    grad = _reference_gradient(entry, Q, evaluated, G)
    P_max = float(grad.abs().max())
    # The Fréchet derivative is Lipschitz in A with the second divided differences, at most
    # max|f″| on the spectrum's hull (however close the eigenvalues: no 1/gap term): an input
    # error δ moves the gradient by ~|f″| δ; rounding of the products adds n eps |P|.
    grad_tol = SAFETY * (d2fmax * delta + N * eps * P_max)
    # Near the singularity threshold (rotated input) that bound exceeds the gradient itself:
    # the problem is ill-conditioned there, and the gradient must still be right to 25%.
    grad_tol = min(grad_tol, 0.25 * P_max)
    torch.testing.assert_close(A.grad.double(), grad, atol=grad_tol, rtol=0)
