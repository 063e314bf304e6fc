"""Symmetric eigendecomposition ``X = UΣUᵀ`` with the matrix-backpropagation gradient.

Forward: ``σ`` ascending, ``U`` orthonormal, of ``sym(X) = (X + Xᵀ)/2``.

Backward (Ionescu, Vantzos & Sminchisescu 2015, Prop. 2, the eigendecomposition case)::

    ∂ℓ/∂X = U ( (K̃ᵀ ∘ (Uᵀ ∂ℓ/∂U))_sym + (∂ℓ/∂Σ)_diag ) Uᵀ,     K̃ᵢⱼ = 1/(σᵢ − σⱼ) (i ≠ j), 0 (i = j)

with ``M_sym = (M + Mᵀ)/2``; the gradient lives in Sym(n). Degenerate pairs follow a
:class:`~matbackprop.linalg.DegeneracyPolicy`.

Forward mode (``jvp``), from the same variation ``dY = L(dX)``::

    dσ = diag(Uᵀ dX U),      dU = U (K̃ᵀ ∘ (Uᵀ dX U)).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from matbackprop.validation import check_symmetric_matrix

from ._policy import DEFAULT_POLICY, DegeneracyPolicy, spectral_scale
from ._solver import symmetric_eigh
from ._traceable import without_jvp


class EighResult(NamedTuple):
    """``(eigenvalues, eigenvectors)`` of :func:`eigh`, as ``torch.linalg.eigh`` returns them.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import eigh
    >>> result = eigh(torch.diag(torch.tensor([3.0, 1.0, 2.0])))
    >>> result.eigenvalues
    tensor([1., 2., 3.])
    >>> lam, U = result                         # unpacks like torch.linalg.eigh's result
    >>> U.shape
    torch.Size([3, 3])
    """

    eigenvalues: Tensor
    eigenvectors: Tensor


def sym(M: Tensor) -> Tensor:
    """``(M + Mᵀ)/2`` over the last two dimensions."""
    return 0.5 * (M + M.mT)


def eigh_coupling(lam: Tensor, policy: DegeneracyPolicy) -> Tensor:
    """``K̃ᵀ`` of the paper as used in the backward: ``(K̃ᵀ)ᵢⱼ = 1/(σⱼ − σᵢ)``, regularised.

    Shape ``(..., n, n)``; the diagonal and degenerate pairs are 0 under the ``"zero"`` policy.
    """
    gaps = lam.unsqueeze(-2) - lam.unsqueeze(-1)  # (..., n, n): σⱼ − σᵢ
    straddle = policy.straddles(lam.shape[-1], descending=False, device=lam.device)
    return policy.inverse_gaps(gaps, spectral_scale(lam), straddle)


class _Eigh(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor, policy: DegeneracyPolicy) -> tuple[Tensor, Tensor]:
        lam, U = symmetric_eigh(sym(A), exactly_symmetric=True)
        return lam, U

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        _, policy = inputs
        lam, U = output
        ctx.policy = policy
        ctx.save_for_backward(lam, U)
        ctx.save_for_forward(lam, U)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_lam: Tensor | None, grad_U: Tensor | None):
        lam, U = ctx.saved_tensors
        inner = torch.zeros_like(U)  # (..., n, n) in the eigenbasis
        if grad_U is not None:
            # Paper, Prop. 2: (K̃ᵀ ∘ (Uᵀ ∂ℓ/∂U))_sym
            K_tilde_T = eigh_coupling(lam, ctx.policy)
            inner = sym(K_tilde_T * (U.mT @ grad_U))
        if grad_lam is not None:
            # + (∂ℓ/∂Σ)_diag
            inner = inner + torch.diag_embed(grad_lam)
        # ∂ℓ/∂X = U (…) Uᵀ
        return U @ inner @ U.mT, None

    @staticmethod
    def jvp(ctx: Any, dA: Tensor, _policy: None) -> tuple[Tensor, Tensor]:
        lam, U = ctx.saved_tensors
        dA_tilde = U.mT @ sym(dA) @ U  # (..., n, n): Uᵀ dX U
        d_lam = torch.diagonal(dA_tilde, dim1=-2, dim2=-1)
        d_U = U @ (eigh_coupling(lam, ctx.policy) * dA_tilde)
        return d_lam, d_U


_EighTraced = without_jvp(_Eigh)  # applied under torch.compile


def eigh(A: Tensor, *, policy: DegeneracyPolicy | None = None, check: bool = True) -> EighResult:
    """Eigendecomposition of a batch of symmetric matrices with the paper's backward.

    ``A = U diag(σ) Uᵀ`` with ``σ`` ascending. The input is symmetrized, ``sym(A) = (A + Aᵀ)/2``,
    so the gradient is symmetric (it lives in Sym(n)).

    Parameters
    ----------
    A : Tensor, shape (..., n, n)
        Symmetric matrices, float32 or float64, any device.
    policy : DegeneracyPolicy, optional
        Coupling of (near-)degenerate eigenvalue pairs in the backward. Default: ``"zero"``
        with the per-dtype tolerance (1e-10 float64, 1e-4 float32, relative to ``max|σ|``).
    check : bool
        Validate ``A`` (shape, dtype, finiteness, symmetry). ``False`` skips it.

    Returns
    -------
    EighResult
        A named tuple ``(eigenvalues, eigenvectors)`` like ``torch.linalg.eigh``'s
        (``lam, U = eigh(A)`` unpacks it):

        eigenvalues : Tensor, shape (..., n)
            Ascending.
        eigenvectors : Tensor, shape (..., n, n)
            Columns are orthonormal eigenvectors.

    Raises
    ------
    ValueError
        If ``A`` is not a float32/float64 tensor of shape ``(..., n, n)``, has non-finite
        entries, or is not symmetric within ``sqrt(eps)`` relative.

    Notes
    -----
    Backward (Ionescu et al. 2015, Prop. 2)::

        ∂ℓ/∂A = U ((K̃ᵀ ∘ Uᵀ∂ℓ/∂U)_sym + (∂ℓ/∂Σ)_diag) Uᵀ,   K̃ᵢⱼ = 1/(σᵢ − σⱼ).

    Under the default policy the result is exact for losses invariant to rotations inside
    degenerate eigenspaces and finite for every finite input. A loss that depends on the
    individual eigenvectors of a repeated eigenvalue has no gradient (it is not even
    continuous there); use ``DegeneracyPolicy("lorentzian")`` for a bounded surrogate. For
    matrix functions ``U f(Σ) Uᵀ`` use :func:`spectral_function`, which is exact at ties.
    Supports ``torch.func.vmap``/``grad``/``jvp``/``jacfwd``; backward is once
    differentiable. Cost: one ``eigh`` forward, four ``n³`` products backward.

    Differences from ``torch.linalg.eigh``: the input is symmetrized (torch reads one triangle,
    ``UPLO="L"``, and its gradient is not symmetric); there is no ``UPLO`` argument; the
    backward follows ``policy`` at (near-)repeated eigenvalues, where torch's is inf/NaN.

    References
    ----------
    Ionescu, Vantzos & Sminchisescu, "Training Deep Networks with Structured Layers by Matrix
    Backpropagation", ICCV 2015 (arXiv:1509.07838), Proposition 2.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import eigh
    >>> A = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    >>> lam, U = eigh(A)
    >>> lam.detach()
    tensor([1., 3.], dtype=torch.float64)
    >>> eigh(A).eigenvectors.shape
    torch.Size([2, 2])
    >>> lam.sum().backward()   # d tr(A) / dA = I
    >>> torch.allclose(A.grad, torch.eye(2, dtype=torch.float64))
    True
    """
    A = check_symmetric_matrix(A, "A", check=check)
    if policy is None:
        policy = DEFAULT_POLICY
    elif not isinstance(policy, DegeneracyPolicy):
        raise ValueError(f"`policy` must be a DegeneracyPolicy, got {type(policy).__name__}")
    return EighResult(*(_EighTraced if torch.compiler.is_compiling() else _Eigh).apply(A, policy))
