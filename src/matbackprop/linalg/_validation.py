"""Input validation shared by every public ``linalg`` function.

Each check raises :class:`ValueError` whose message names the argument, what was expected and
what came. Checks run once, at the public boundary; every public function takes ``check=False``
to skip them on hot paths. Value checks (finiteness, symmetry, definiteness) need one host
synchronisation each; shape and dtype checks need none.
"""

from __future__ import annotations

import torch
from torch import Tensor

SUPPORTED_DTYPES = (torch.float32, torch.float64)


def symmetric_rtol(dtype: torch.dtype) -> float:
    """Relative asymmetry tolerated in a "symmetric" input: ``sqrt(eps)`` of ``dtype``.

    ``max|A - Aᵀ| <= sqrt(eps) * max(max|A|, tiny)``: lenient enough for Gram matrices ``FᵀF``
    computed by a BLAS ``gemm`` (rounding ``~ n eps ‖F‖²``), strict enough to catch a matrix
    that is not symmetric at all.
    """
    return float(torch.finfo(dtype).eps) ** 0.5


def require_tensor(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_float_dtype(
    x: Tensor, name: str, allowed: tuple[torch.dtype, ...] = SUPPORTED_DTYPES, hint: str = ""
) -> None:
    if x.dtype not in allowed:
        names = " or ".join(str(d).replace("torch.", "") for d in allowed)
        raise ValueError(f"`{name}` must have dtype {names}, got {x.dtype}{hint}")


def check_matrix(x: Tensor, name: str, *, square: bool) -> None:
    """``x`` has shape ``(..., m, n)`` (``m == n`` when ``square``) with ``m, n >= 1``."""
    shape = tuple(x.shape)
    if x.ndim < 2:
        want = "(..., n, n)" if square else "(..., m, n)"
        raise ValueError(f"`{name}` must have shape {want}, got {shape}")
    if square and shape[-1] != shape[-2]:
        raise ValueError(f"`{name}` must be square with shape (..., n, n), got {shape}")
    if shape[-1] == 0 or shape[-2] == 0:
        raise ValueError(f"`{name}` must have non-empty matrix dimensions, got {shape}")


def check_finite(x: Tensor, name: str) -> None:
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"`{name}` must be finite, got {bad} non-finite entries (NaN or inf)")


def check_symmetric(x: Tensor, name: str, rtol: float | None = None) -> None:
    """``max|A - Aᵀ| <= rtol * max|A|`` per matrix (``rtol`` defaults to :func:`symmetric_rtol`)."""
    if rtol is None:
        rtol = symmetric_rtol(x.dtype)
    scale = x.abs().amax(dim=(-2, -1)).clamp_min(torch.finfo(x.dtype).tiny)
    asym = (x - x.mT).abs().amax(dim=(-2, -1))
    rel = asym / scale
    worst = rel.max()
    if bool(worst > rtol):
        raise ValueError(
            f"`{name}` must be symmetric: max|A - Aᵀ| / max|A| = {float(worst):.3g} exceeds "
            f"{rtol:.3g}; symmetrize it with (A + A.mT) / 2 if the asymmetry is rounding error"
        )


def check_symmetric_matrix(A: Tensor, name: str, *, check: bool) -> Tensor:
    """Full check for a batch of symmetric matrices (type, dtype, shape, finite, symmetric)."""
    A = require_tensor(A, name)
    if not check:
        return A
    check_float_dtype(A, name)
    check_matrix(A, name, square=True)
    check_finite(A, name)
    check_symmetric(A, name)
    return A


def check_eigenvalues_positive(lam: Tensor, name: str, what: str, remedy: str) -> None:
    """Raise if any eigenvalue in ``lam (..., n)`` is ``<= 0`` (domain check for log, inv-sqrt)."""
    smallest = lam.amin(dim=-1)
    if bool((smallest <= 0).any()):
        flat = smallest.reshape(-1)
        index = int(torch.argmin(flat))
        raise ValueError(
            f"`{name}` must be symmetric positive definite for {what}: smallest eigenvalue "
            f"{float(flat[index]):.3g} (matrix {index} of the batch). {remedy}"
        )


def check_eigenvalues_nonnegative(lam: Tensor, name: str, what: str, remedy: str) -> None:
    """Raise if any eigenvalue is ``< 0`` beyond rounding (domain check for sqrt, powers)."""
    scale = lam.abs().amax(dim=-1, keepdim=True)
    tol = 64 * float(torch.finfo(lam.dtype).eps) * scale
    smallest = (lam + tol).amin(dim=-1)
    if bool((smallest < 0).any()):
        flat = lam.amin(dim=-1).reshape(-1)
        index = int(torch.argmin(flat))
        raise ValueError(
            f"`{name}` must be symmetric positive semi-definite for {what}: smallest eigenvalue "
            f"{float(flat[index]):.3g} (matrix {index} of the batch). {remedy}"
        )
