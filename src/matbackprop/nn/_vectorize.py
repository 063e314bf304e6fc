"""Isometric vectorization of symmetric matrices (upper triangle, √2 off the diagonal).

For symmetric ``M`` of size ``n × n``::

    vec(M) = (M₁₁, √2 M₁₂, …, √2 M₁ₙ, M₂₂, √2 M₂₃, …, Mₙₙ)  ∈ ℝ^(n(n+1)/2)

(row-major upper triangle). Each off-diagonal pair ``Mᵢⱼ = Mⱼᵢ`` appears twice in the Frobenius
inner product and once in the vector, hence the ``√2``::

    ⟨vec(A), vec(B)⟩ = Σᵢ AᵢᵢBᵢᵢ + Σ_{i<j} 2 AᵢⱼBᵢⱼ = tr(AB) = ⟨A, B⟩_F,

so ``‖vec(A) − vec(B)‖₂ = ‖A − B‖_F``: a linear classifier or a Euclidean distance on the
vectors is the Frobenius one on the matrices (the log-Euclidean metric after ``logm``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from matbackprop.validation import check_floating, require_tensor

_SQRT2 = math.sqrt(2.0)


def symmetric_dim(n: int) -> int:
    """Length ``n(n+1)/2`` of the vectorization of an ``n × n`` symmetric matrix.

    Examples
    --------
    >>> from matbackprop.nn.functional import symmetric_dim
    >>> symmetric_dim(64)
    2080
    """
    return n * (n + 1) // 2


@lru_cache(maxsize=32)
def _triangle_index(n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Row and column indices of the upper triangle, row-major (cached per size and device)."""
    rows, cols = torch.triu_indices(n, n, device=device)
    return rows, cols


@lru_cache(maxsize=32)
def _flat_index_and_scale(
    n: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Flat indices ``i·n + j`` of the upper triangle and the ``1 / √2`` entry scales."""
    rows, cols = _triangle_index(n, device)
    return rows * n + cols, _offdiag_scale(rows, cols, dtype)


def _offdiag_scale(rows: Tensor, cols: Tensor, dtype: torch.dtype) -> Tensor:
    one = torch.ones((), dtype=dtype, device=rows.device)
    return torch.where(rows == cols, one, one * _SQRT2)


def vectorize_symmetric(M: Tensor) -> Tensor:
    """Isometric vectorization ``vec(M)`` of symmetric matrices.

    ``vec(M) = (Mᵢⱼ · (1 if i = j else √2))_{i <= j}``, row-major upper triangle, so that
    ``⟨vec(A), vec(B)⟩ = ⟨A, B⟩_F`` for symmetric ``A, B``.

    Parameters
    ----------
    M : Tensor, shape (..., n, n)
        Symmetric matrices (only the upper triangle is read; symmetry is not checked).

    Returns
    -------
    Tensor, shape (..., n(n+1)/2)
        Same dtype and device as ``M``.

    Raises
    ------
    ValueError
        If ``M`` is not a tensor of shape ``(..., n, n)`` with ``n >= 1``, or not floating.

    Notes
    -----
    Linear, hence its gradient is the adjoint: the upper-triangle scatter of ``g · scale``.
    With a symmetric input the gradient is not symmetrized; ``unvectorize_symmetric`` is the
    inverse on symmetric matrices.

    References
    ----------
    Ionescu, Vantzos & Sminchisescu, ICCV 2015, Sec. 4.1 (DeepO2P: the log-tangent matrix is
    vectorized before the classifier); Carreira et al., ECCV 2012 (O2P).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import vectorize_symmetric
    >>> vectorize_symmetric(torch.tensor([[1.0, 2.0], [2.0, 3.0]]))
    tensor([1.0000, 2.8284, 3.0000])
    """
    M = require_tensor(M, "M")
    if M.ndim < 2 or M.shape[-1] != M.shape[-2] or M.shape[-1] == 0:
        raise ValueError(f"`M` must have shape (..., n, n) with n >= 1, got {tuple(M.shape)}")
    check_floating(M, "M")
    n = M.shape[-1]
    flat, scale = _flat_index_and_scale(n, M.device, M.dtype)
    # index_select on the flattened matrix: its backward is an index_add (fast), unlike the
    # accumulate-index_put of advanced indexing.
    return M.reshape(*M.shape[:-2], n * n).index_select(-1, flat) * scale


def unvectorize_symmetric(v: Tensor, n: int | None = None) -> Tensor:
    """Inverse of :func:`vectorize_symmetric`: the symmetric matrix with ``vec(M) = v``.

    Parameters
    ----------
    v : Tensor, shape (..., n(n+1)/2)
        Vectorized symmetric matrices.
    n : int, optional
        Matrix size; inferred from the length when omitted.

    Returns
    -------
    Tensor, shape (..., n, n)
        Symmetric; ``Mᵢⱼ = Mⱼᵢ = vᵢⱼ / √2`` off the diagonal.

    Raises
    ------
    ValueError
        If ``v`` is not a floating tensor with ``ndim >= 1`` whose last dimension is a
        triangular number ``n(n+1)/2`` (matching ``n`` when given).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import unvectorize_symmetric
    >>> unvectorize_symmetric(torch.tensor([1.0, 2.0 ** 1.5, 3.0]))
    tensor([[1., 2.],
            [2., 3.]])
    """
    v = require_tensor(v, "v")
    if v.ndim < 1:
        raise ValueError(f"`v` must have shape (..., n(n+1)/2), got {tuple(v.shape)}")
    check_floating(v, "v")
    length = v.shape[-1]
    inferred = (math.isqrt(8 * length + 1) - 1) // 2
    if length == 0 or symmetric_dim(inferred) != length:
        raise ValueError(f"`v` must have a last dimension n(n+1)/2 for some n >= 1, got {length}")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n != inferred):
        raise ValueError(
            f"`n` must match the length of `v` ({length} = n(n+1)/2 with n = {inferred}), got {n!r}"
        )
    flat, scale = _flat_index_and_scale(inferred, v.device, v.dtype)
    return _scatter(v.new_zeros(*v.shape[:-1], inferred, inferred), flat, v / scale)


def _scatter(M: Tensor, flat: Tensor, entries: Tensor) -> Tensor:
    """Fill the upper triangle (flat indices) with ``entries`` and mirror it (differentiable)."""
    n = M.shape[-1]
    upper = M.reshape(*M.shape[:-2], n * n).index_add(-1, flat, entries).reshape(M.shape)
    return upper + torch.triu(upper, diagonal=1).mT
