"""Coupled Newton–Schulz iteration for the matrix square root and its inverse (iSQRT-COV).

Matmul only, forward and backward: the fast path on accelerators, where ``eigh`` is slow.

Forward (Li, Xie, Wang & Gao, CVPR 2018, eqs. 2–4)::

    t = tr(A),   Y₀ = A / t,   Z₀ = I                       (pre-normalisation)
    Tₖ = ½ (3I − Zₖ Yₖ),   Yₖ₊₁ = Yₖ Tₖ,   Zₖ₊₁ = Tₖ Zₖ      (k = 0 … N−1)
    √A ≈ √t · Y_N,   A^(−½) ≈ Z_N / √t                       (post-compensation)

``Yₖ → (A/t)^½`` and ``Zₖ → (A/t)^(−½)`` quadratically while ``‖I − A/t‖₂ < 1``, which holds for
SPD ``A`` since its eigenvalues over the trace lie in ``(0, 1]``. Small eigenvalues converge
slowly: the error after ``N`` steps depends on the condition number (see the tests for stated
tolerances per iteration count).

Backward: the exact adjoint of the ``N`` unrolled steps (iSQRT-COV, Sec. 3.2), with the
adjoints ``Ȳ, Z̄`` carried backwards::

    T̄ = Yₖᵀ Ȳₖ₊₁ + Z̄ₖ₊₁ Zₖᵀ
    Ȳₖ = Ȳₖ₊₁ Tₖᵀ − ½ Zₖᵀ T̄,      Z̄ₖ = Tₖᵀ Z̄ₖ₊₁ − ½ T̄ Yₖᵀ

and the pre-/post-normalisation adjoints ``Ā = Ȳ₀/t + (t̄ − ⟨Ȳ₀, A⟩/t²) I``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from matbackprop.validation import check_int, check_symmetric_matrix

from ._eigh import sym


def _identity_like(A: Tensor) -> Tensor:
    return torch.eye(A.shape[-1], dtype=A.dtype, device=A.device).expand_as(A)


def _trace(A: Tensor) -> Tensor:
    return torch.diagonal(A, dim1=-2, dim2=-1).sum(-1)[..., None, None]  # (..., 1, 1)


class _NewtonSchulz(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor, iterations: int):
        A = sym(A)
        t = _trace(A)
        identity = _identity_like(A)
        Y = A / t
        Z = identity
        Ys, Zs = [], []
        for _ in range(iterations):
            Ys.append(Y)
            Zs.append(Z)
            T = 0.5 * (3.0 * identity - Z @ Y)
            Y, Z = Y @ T, T @ Z
        root_t = torch.sqrt(t)
        sqrt_A = root_t * Y
        invsqrt_A = Z / root_t
        history = torch.stack(Ys + Zs) if iterations else A.new_empty((0, *A.shape))
        return sqrt_A, invsqrt_A, Y, Z, t, history

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        A, iterations = inputs
        _, _, Y, Z, t, history = output
        ctx.iterations = iterations
        ctx.mark_non_differentiable(Y, Z, t, history)
        ctx.save_for_backward(A, Y, Z, t, history)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g_sqrt, g_invsqrt, _gY, _gZ, _gt, _gh):
        A, Y_N, Z_N, t, history = ctx.saved_tensors
        N = ctx.iterations
        identity = _identity_like(A)
        root_t = torch.sqrt(t)
        Y_bar = torch.zeros_like(A)
        Z_bar = torch.zeros_like(A)
        t_bar = torch.zeros_like(t)
        if g_sqrt is not None:  # √A = √t · Y_N
            g_sqrt = sym(g_sqrt)
            Y_bar = root_t * g_sqrt
            t_bar = t_bar + (g_sqrt * Y_N).sum((-2, -1), keepdim=True) / (2 * root_t)
        if g_invsqrt is not None:  # A^(−½) = Z_N / √t
            g_invsqrt = sym(g_invsqrt)
            Z_bar = g_invsqrt / root_t
            t_bar = t_bar - (g_invsqrt * Z_N).sum((-2, -1), keepdim=True) / (2 * t * root_t)
        Ys, Zs = history[:N], history[N:]
        for k in reversed(range(N)):
            Y, Z = Ys[k], Zs[k]
            T = 0.5 * (3.0 * identity - Z @ Y)
            # Yₖ₊₁ = Yₖ Tₖ, Zₖ₊₁ = Tₖ Zₖ, Tₖ = ½(3I − Zₖ Yₖ)
            T_bar = Y.mT @ Y_bar + Z_bar @ Z.mT
            Y_bar, Z_bar = Y_bar @ T.mT - 0.5 * Z.mT @ T_bar, T.mT @ Z_bar - 0.5 * T_bar @ Y.mT
        # Y₀ = A / t (Z₀ = I is constant); t = tr(A)
        A_bar = Y_bar / t
        t_bar = t_bar - (Y_bar * A).sum((-2, -1), keepdim=True) / (t * t)
        A_bar = A_bar + t_bar * identity
        return sym(A_bar), None


def _newton_schulz(A: Tensor, iterations: int, check: bool) -> tuple[Tensor, Tensor]:
    A = check_symmetric_matrix(A, "A", check=check)
    if check:
        check_int(iterations, "iterations")
        trace = _trace(A)
        if bool((trace <= 0).any()):
            raise ValueError(
                "`A` must be symmetric positive definite for Newton–Schulz: a matrix of the "
                f"batch has trace {float(trace.min()):.3g} <= 0"
            )
    sqrt_A, invsqrt_A, *_ = _NewtonSchulz.apply(A, iterations)
    return sqrt_A, invsqrt_A


def sqrtm_newton_schulz(A: Tensor, iterations: int = 5, *, check: bool = True) -> Tensor:
    """Approximate ``A^½`` by the coupled Newton–Schulz iteration (iSQRT-COV).

    Parameters
    ----------
    A : Tensor, shape (..., n, n)
        Symmetric positive definite, float32/float64, any device.
    iterations : int
        Number of Newton–Schulz steps ``N >= 1`` (iSQRT-COV uses 3–5).
    check : bool
        Validate ``A`` (shape, dtype, finiteness, symmetry, positive trace). ``False`` skips.

    Returns
    -------
    Tensor, shape (..., n, n)
        ``√tr(A) · Y_N``.

    Raises
    ------
    ValueError
        If ``A`` is malformed, has trace ``<= 0``, or ``iterations`` is not a positive int.

    Notes
    -----
    Forward and backward use only matrix products (``≈ 3N`` and ``≈ 8N`` products). The
    backward is the exact gradient of the ``N``-step approximation (what iSQRT-COV trains
    with), not of the exact square root. Accuracy against :func:`sqrtm` depends on ``N`` and the
    conditioning of ``A``.

    References
    ----------
    Li, Xie, Wang & Gao, "Towards Faster Training of Global Covariance Pooling Networks by
    Iterative Matrix Square Root Normalization", CVPR 2018, eqs. (2)–(4), Sec. 3.2.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import sqrtm_newton_schulz
    >>> A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    >>> S = sqrtm_newton_schulz(A, iterations=10)
    >>> torch.allclose(S @ S, A)
    True
    """
    return _newton_schulz(A, iterations, check)[0]


def invsqrtm_newton_schulz(A: Tensor, iterations: int = 5, *, check: bool = True) -> Tensor:
    """Approximate ``A^(−½)`` by the coupled Newton–Schulz iteration (``Z_N / √tr(A)``).

    Parameters, returns, errors and notes as :func:`sqrtm_newton_schulz`.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import invsqrtm_newton_schulz
    >>> A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    >>> Z = invsqrtm_newton_schulz(A, iterations=10)
    >>> torch.allclose(Z @ A @ Z, torch.eye(2, dtype=torch.float64))
    True
    """
    return _newton_schulz(A, iterations, check)[1]
