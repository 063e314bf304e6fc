"""Independent references for the tests: 50-digit divided differences (mpmath), the gradient of a
spectral function built from them, and central finite differences.

Nothing here calls matbackprop: a test that compares with these compares with arithmetic that
shares no code with the implementation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import mpmath as mp
import numpy as np
import torch
from torch import Tensor

DIGITS = 50


def scalar(name: str, p: float | None = None) -> tuple[Callable, Callable, Callable]:
    """``(f, f′, f″)`` of a named matrix function as mpmath callables."""
    if name == "log":
        return mp.log, lambda x: 1 / x, lambda x: -1 / x**2
    if name == "sqrt":
        return mp.sqrt, lambda x: 1 / (2 * mp.sqrt(x)), lambda x: -1 / (4 * x * mp.sqrt(x))
    if name == "invsqrt":
        return (
            lambda x: 1 / mp.sqrt(x),
            lambda x: -1 / (2 * x * mp.sqrt(x)),
            lambda x: mp.mpf(3) / (4 * x**2 * mp.sqrt(x)),
        )
    if name == "exp":
        return mp.exp, mp.exp, mp.exp
    if name == "pow":
        q = mp.mpf(p)
        return lambda x: x**q, lambda x: q * x ** (q - 1), lambda x: q * (q - 1) * x ** (q - 2)
    if name == "atan":
        return mp.atan, lambda x: 1 / (1 + x**2), lambda x: -2 * x / (1 + x**2) ** 2
    raise KeyError(name)


def divided_difference(name: str, a: float, b: float, p: float | None = None) -> float:
    """``f[a, b]`` at 50 digits (``f′(a)`` when ``a == b``), rounded to float."""
    f, df, _ = scalar(name, p)
    with mp.workdps(DIGITS):
        x, y = mp.mpf(a), mp.mpf(b)
        return float(df(x) if x == y else (f(x) - f(y)) / (x - y))


def second_divided_difference(name: str, a: float, b: float, c: float, p=None) -> float:
    """``f[a, b, c]`` at 50 digits, confluent cases by the derivatives."""
    f, df, d2f = scalar(name, p)
    with mp.workdps(DIGITS):
        x = sorted([mp.mpf(a), mp.mpf(b), mp.mpf(c)])

        def first(u, v):
            return df(u) if u == v else (f(u) - f(v)) / (u - v)

        if x[0] == x[2]:
            return float(d2f(x[0]) / 2)
        return float((first(x[0], x[1]) - first(x[1], x[2])) / (x[0] - x[2]))


def divided_difference_matrix(name: str, lam, p: float | None = None) -> np.ndarray:
    """``Pᵢⱼ = f[λᵢ, λⱼ]`` (Daleckii–Krein) at 50 digits, as a float64 array."""
    lam = [float(v) for v in lam]
    n = len(lam)
    rows = [[divided_difference(name, lam[i], lam[j], p) for j in range(n)] for i in range(n)]
    return np.array(rows)


def spectral_gradient(name: str, Q: Tensor, lam, G: Tensor, p: float | None = None) -> Tensor:
    """``∂⟨G, f(A)⟩/∂A = Q (P ∘ Qᵀ G_sym Q) Qᵀ`` for ``A = Q diag(λ) Qᵀ`` (Daleckii–Krein).

    ``P`` from :func:`divided_difference_matrix`; ``Q``, ``λ`` are the *known* eigenpairs of the
    test matrix (not computed by the code under test).
    """
    P = torch.from_numpy(divided_difference_matrix(name, lam, p)).to(Q.dtype)
    Gs = 0.5 * (G + G.mT)
    return Q @ (P * (Q.mT @ Gs @ Q)) @ Q.mT


def central_difference(fn: Callable[[Tensor], Tensor], x: Tensor, direction: Tensor, h: float):
    """``(fn(x + h·d) − fn(x − h·d)) / 2h`` (error ``O(h²)`` plus rounding ``eps/h``)."""
    return (fn(x + h * direction) - fn(x - h * direction)) / (2 * h)


def richardson_difference(fn, x: Tensor, direction: Tensor, h: float):
    """Fourth-order central difference ``(8(f₊ − f₋)(h) − (f₊ − f₋)(2h)) / 12h``."""
    d1 = fn(x + h * direction) - fn(x - h * direction)
    d2 = fn(x + 2 * h * direction) - fn(x - 2 * h * direction)
    return (8 * d1 - d2) / (12 * h)


def scipy_logm(a: np.ndarray) -> np.ndarray:
    """``scipy.linalg.logm`` (real part), an algorithm independent of ours (inverse scaling and
    squaring on the Schur form). SciPy warns when its own error estimate exceeds ~1e-13
    ("logm result may be inaccurate"), which it does for well-defined matrices with condition
    numbers of 1e5 and more; the tests' tolerances are orders of magnitude wider, so that
    warning (only) is silenced here."""
    import scipy.linalg

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "logm result may be inaccurate", RuntimeWarning)
        return np.real(scipy.linalg.logm(a))


def scipy_sqrtm(a: np.ndarray) -> np.ndarray:
    """``scipy.linalg.sqrtm`` (real part); its "Matrix is singular" warning for singular PSD
    input (where the principal root is still defined) is silenced here, nothing else."""
    import scipy.linalg

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Matrix is singular", scipy.linalg.LinAlgWarning)
        return np.real(scipy.linalg.sqrtm(a))


def scipy_power(a: np.ndarray, t: float) -> np.ndarray:
    """``scipy.linalg.fractional_matrix_power`` (real part), warnings as :func:`scipy_sqrtm`."""
    import scipy.linalg

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Matrix is singular", scipy.linalg.LinAlgWarning)
        return np.real(scipy.linalg.fractional_matrix_power(a, t))
