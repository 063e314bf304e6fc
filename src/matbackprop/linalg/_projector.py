"""Orthogonal projector onto the column space of a full-column-rank matrix.

``Π(A) = A (AᵀA)⁻¹ Aᵀ``, computed as ``QQᵀ`` from a thin QR ``A = QR``. Its variation
(Ionescu et al. 2015, Sec. 5, the projector in the normalized-cuts loss)::

    dΠ = 2 ((I − Π) dA A⁺)_sym,       A⁺ = (AᵀA)⁻¹Aᵀ = R⁻¹Qᵀ

so the adjoint is ``∂ℓ/∂A = 2 (I − Π) G_sym A⁺ᵀ`` with ``A⁺ᵀ = Q R⁻ᵀ``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from matbackprop.validation import check_finite, check_float_dtype, check_matrix, require_tensor

from ._eigh import sym
from ._traceable import without_jvp


def _pinv_T_times(Q: Tensor, R: Tensor, W: Tensor) -> Tensor:
    """``W R⁻ᵀ`` for ``W (..., m, n)``: with ``Q`` this gives products with ``A⁺ᵀ = Q R⁻ᵀ``."""
    return torch.linalg.solve_triangular(R.mT, W, upper=False, left=False)


class _Projector(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor):
        Q, R = torch.linalg.qr(A, mode="reduced")
        return Q @ Q.mT, Q, R

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        _, Q, R = output
        ctx.save_for_backward(Q, R)
        ctx.save_for_forward(Q, R)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_Pi: Tensor, _gQ: Any, _gR: Any):
        Q, R = ctx.saved_tensors
        # ∂ℓ/∂A = 2 (I − Π) G_sym A⁺ᵀ,  A⁺ᵀ = Q R⁻ᵀ
        X = _pinv_T_times(Q, R, sym(grad_Pi) @ Q)  # (..., m, n): G_sym A⁺ᵀ
        return 2.0 * (X - Q @ (Q.mT @ X))

    @staticmethod
    def jvp(ctx: Any, dA: Tensor):
        Q, R = ctx.saved_tensors
        # dΠ = 2 ((I − Π) dA A⁺)_sym,  A⁺ = R⁻¹ Qᵀ
        dA_pinv = torch.linalg.solve_triangular(R, Q.mT, upper=True)  # (..., n, m): A⁺
        B = dA @ dA_pinv
        B = B - Q @ (Q.mT @ B)
        return B + B.mT, torch.zeros_like(Q), torch.zeros_like(R)


_ProjectorTraced = without_jvp(_Projector)  # applied under torch.compile


def projector(A: Tensor, *, rtol: float | None = None, check: bool = True) -> Tensor:
    """Orthogonal projector ``A (AᵀA)⁻¹ Aᵀ`` onto ``range(A)``, differentiable in ``A``.

    Parameters
    ----------
    A : Tensor, shape (..., m, n), m >= n
        Full column rank, float32/float64, any device.
    rtol : float, optional
        Rank tolerance for the check: ``|R_ii| > rtol · max|R_jj|`` for the QR factor ``R``
        (default ``n · eps``-based: ``1e3 · eps`` of the dtype).
    check : bool
        Validate ``A`` (shape, dtype, finiteness, full column rank). ``False`` skips it.

    Returns
    -------
    Tensor, shape (..., m, m)
        Symmetric idempotent ``Π`` of rank ``n``.

    Raises
    ------
    ValueError
        If ``A`` is malformed, has ``m < n``, or is (numerically) rank deficient.

    Notes
    -----
    Backward ``∂ℓ/∂A = 2 (I − Π) G_sym A⁺ᵀ`` (from ``dΠ = 2((I − Π) dA A⁺)_sym``, Ionescu et
    al. 2015, Sec. 5), computed from the QR factors without forming ``I − Π``. The result is an
    ``m × m`` matrix: for large ``m`` (e.g. pixels in normalized cuts) use the factor ``Q``
    instead; :func:`matbackprop.nn.functional.ncuts_loss` never forms it.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import projector
    >>> projector(torch.tensor([[1.0], [1.0]], dtype=torch.float64))
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000]], dtype=torch.float64)
    """
    A = require_tensor(A, "A")
    if check:
        check_float_dtype(A, "A")
        check_matrix(A, "A", square=False)
        m, n = A.shape[-2:]
        if m < n:
            raise ValueError(
                f"`A` must have at least as many rows as columns, got shape {tuple(A.shape)}"
            )
        check_finite(A, "A")
    Pi, Q, R = (_ProjectorTraced if torch.compiler.is_compiling() else _Projector).apply(A)
    if check:
        diag = torch.diagonal(R, dim1=-2, dim2=-1).abs()
        tol = (1e3 * torch.finfo(A.dtype).eps if rtol is None else rtol) * diag.amax(
            -1, keepdim=True
        )
        if bool((diag <= tol).any()):
            raise ValueError(
                "`A` must have full column rank: its QR factor has a diagonal entry "
                f"{float(diag.min()):.3g} <= rtol * max = {float(tol.min()):.3g}"
            )
    return Pi
