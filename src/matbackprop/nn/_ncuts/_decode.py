"""Decoding a spectral embedding into segments: k-way discretization, hierarchies, lifting.

Discretization follows Ng, Jordan & Weiss (2002): normalise each row of the first ``k``
eigenvectors to unit length, then k-means (:func:`kmeans`) in ``R^k``. Everything runs without
gradient (decoding is not differentiable) and is deterministic on CPU for a fixed seed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from matbackprop.validation import (
    check_finite,
    check_float_dtype,
    check_int,
    check_int_dtype,
    check_nonempty,
    require_tensor,
)

from ._kmeans import kmeans
from ._result import NCutsResult
from ._validation import resolve_k


def _first_appearance_order(labels: Tensor) -> Tensor:
    """Relabel ``(n,)`` so labels are numbered by first appearance: 0, 1, 2, …"""
    values, inverse = torch.unique(labels, return_inverse=True)
    n = labels.shape[0]
    first = torch.full((values.shape[0],), n, dtype=torch.long, device=labels.device)
    first = first.scatter_reduce(0, inverse, torch.arange(n, device=labels.device), "amin")
    rank = torch.empty_like(first)
    rank[first.argsort()] = torch.arange(first.shape[0], device=labels.device)
    return rank[inverse]


def _check_embedding(Z: object, ndims: tuple[int, ...], want: str) -> Tensor:
    Z = require_tensor(Z, "Z")
    check_float_dtype(Z, "Z")
    if Z.ndim not in ndims:
        raise ValueError(f"`Z` must have shape {want}, got {tuple(Z.shape)}")
    check_nonempty(Z, "Z", want)
    check_finite(Z, "Z")
    return Z.detach()


def spectral_discretize(
    Z: Tensor,
    k: int | None = None,
    *,
    restarts: int = 10,
    max_iter: int = 100,
    seed: int = 0,
) -> Tensor:
    """k-way discretization of one spectral embedding: row-normalise, then k-means.

    ``xᵢ = Zᵢ,:k / ‖Zᵢ,:k‖`` (rows of norm 0 stay 0), ``labels = kmeans(x, k)``.

    Parameters
    ----------
    Z : Tensor, shape (m, K)
        Top eigenvectors (e.g. ``result.Z[b]``), decreasing eigenvalue order.
    k : int, optional
        Number of segments, ``1 <= k <= min(m, K)``; uses the first ``k`` columns. Default ``K``.
    restarts, max_iter, seed
        k-means options (see :func:`kmeans`).

    Returns
    -------
    Tensor, shape (m,), long
        Labels in ``[0, k)``, numbered by first appearance (a node order convention).

    Raises
    ------
    ValueError
        On a malformed/non-finite ``Z`` or ``k`` out of range.

    References
    ----------
    Ng, Jordan & Weiss, "On Spectral Clustering: Analysis and an Algorithm", NIPS 2002.
    """
    Z = _check_embedding(Z, (2,), "(m, K)")
    m, K = Z.shape
    k = K if k is None else check_int(k, "k")
    if k > min(m, K):
        raise ValueError(f"`k` must be <= min(m, K) = {min(m, K)}, got {k}")
    X = Z[:, :k]
    X = X / X.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(X.dtype).tiny)
    labels = kmeans(X, k, restarts=restarts, max_iter=max_iter, seed=seed).labels
    return _first_appearance_order(labels)


def decode_labels(
    Z_or_result: Tensor | NCutsResult,
    k: int | Tensor | list[int] | None = None,
    *,
    restarts: int = 10,
    max_iter: int = 100,
    seed: int = 0,
) -> Tensor:
    """Discretize a batch of embeddings, each image at its own ``k``.

    Parameters
    ----------
    Z_or_result : NCutsResult or Tensor, shape (B, m, K)
        With a result, ``k`` defaults to ``result.k``; with a tensor, to ``K``.
    k : int or sequence / tensor of length B, optional
        Segments per image (``<= min(m, K)``).
    restarts, max_iter, seed
        k-means options; every image uses a fresh generator seeded with ``seed``.

    Returns
    -------
    Tensor, shape (B, m), long

    Raises
    ------
    ValueError
        On a malformed ``Z`` or ``k`` out of range.
    """
    if isinstance(Z_or_result, NCutsResult):
        Z = Z_or_result.Z
        k = Z_or_result.k if k is None else k
    else:
        Z = Z_or_result
    Z = _check_embedding(Z, (3,), "(B, m, K)")
    B, m, K = Z.shape
    k_vec, _ = resolve_k(K if k is None else k, B, min(m, K), torch.device("cpu"), "min(m, K)")
    labels = [
        spectral_discretize(Z[b], int(k_vec[b]), restarts=restarts, max_iter=max_iter, seed=seed)
        for b in range(B)
    ]
    return torch.stack(labels)


def ncuts_hierarchy(
    Z: Tensor,
    k_max: int | None = None,
    *,
    k_min: int = 2,
    restarts: int = 10,
    max_iter: int = 100,
    seed: int = 0,
) -> Tensor:
    """Segmentations for ``k = k_min .. k_max`` from one eigendecomposition.

    Level ``k`` discretizes the first ``k`` of the top-``K`` eigenvectors
    (:func:`spectral_discretize`), so one call of the layer with ``k = K`` serves every level.
    The levels are coarse to fine but not necessarily nested (each is its own k-means).

    Parameters
    ----------
    Z : Tensor, shape (m, K) or (B, m, K)
        Top eigenvectors with all ``K`` columns valid (compute the result with ``k = K`` for
        every image).
    k_max : int, optional
        Finest level, ``k_min <= k_max <= min(m, K)``; default ``min(m, K)``.
    k_min : int
        Coarsest level, ``>= 1`` (default 2).
    restarts, max_iter, seed
        k-means options; every level uses a fresh generator seeded with ``seed``.

    Returns
    -------
    Tensor, shape (L, m) or (B, L, m), long
        ``L = k_max − k_min + 1``; level ``j`` has ``k = k_min + j`` segments (row order is
        coarse to fine, the order :func:`matbackprop.metrics.evaluate_hierarchy` expects after
        :func:`lift_labels`).

    Raises
    ------
    ValueError
        On a malformed ``Z`` or an invalid level range.
    """
    Z = _check_embedding(Z, (2, 3), "(m, K) or (B, m, K)")
    if Z.ndim == 3:
        return torch.stack(
            [
                ncuts_hierarchy(
                    Zb, k_max, k_min=k_min, restarts=restarts, max_iter=max_iter, seed=seed
                )
                for Zb in Z
            ]
        )
    m, K = Z.shape
    k_min = check_int(k_min, "k_min")
    k_max = min(m, K) if k_max is None else check_int(k_max, "k_max")
    if not k_min <= k_max <= min(m, K):
        raise ValueError(
            f"`k_max` must satisfy k_min = {k_min} <= k_max <= min(m, K) = {min(m, K)}, got {k_max}"
        )
    levels = [
        spectral_discretize(Z, k, restarts=restarts, max_iter=max_iter, seed=seed)
        for k in range(k_min, k_max + 1)
    ]
    return torch.stack(levels)


def lift_labels(node_labels: Tensor, node_index: Tensor) -> Tensor:
    """Paint node (e.g. superpixel) labels back onto pixels: ``out[..., y, x] = labels[..., s]``
    with ``s = node_index[y, x]``.

    Parameters
    ----------
    node_labels : Tensor, shape (..., S)
        Label of each of the ``S`` nodes (any dtype; e.g. a hierarchy ``(L, S)``).
    node_index : Tensor, shape (H, W), integer
        Node of each pixel, values in ``[0, S)``.

    Returns
    -------
    Tensor, shape (..., H, W)
        Same dtype and device as ``node_labels``.

    Raises
    ------
    ValueError
        If ``node_index`` is not a 2-D integer tensor with values in ``[0, S)``.
    """
    node_labels = require_tensor(node_labels, "node_labels")
    node_index = require_tensor(node_index, "node_index")
    if node_labels.ndim < 1:
        raise ValueError(f"`node_labels` must have shape (..., S), got {tuple(node_labels.shape)}")
    check_int_dtype(node_index, "node_index")
    if node_index.ndim != 2:
        raise ValueError(f"`node_index` must have shape (H, W), got {tuple(node_index.shape)}")
    S = node_labels.shape[-1]
    if node_index.numel() > 0:
        lo, hi = int(node_index.min()), int(node_index.max())
        if lo < 0 or hi >= S:
            raise ValueError(
                f"`node_index` values must lie in [0, S) = [0, {S}) (S from `node_labels`), "
                f"got range [{lo}, {hi}]"
            )
    flat = node_index.reshape(-1).to(node_labels.device, torch.long)
    return node_labels[..., flat].reshape(*node_labels.shape[:-1], *node_index.shape)
