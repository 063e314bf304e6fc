"""The region adjacency graph of a superpixel map, and node embeddings on it.

``region_adjacency`` gives the adjacent superpixel pairs and their boundary lengths (the graph
the hierarchy of :mod:`._ucm` merges on); ``spectral_node_embedding`` turns NCuts eigenvectors
into per-node coordinates whose distances are boundary strengths; ``pair_distances`` reads
them across the graph's edges.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from matbackprop.validation import check_finite, check_float_dtype, check_int_dtype, require_tensor

EmbeddingMode = Literal["rownorm", "spb"]


class RegionAdjacency(NamedTuple):
    """Region adjacency graph of a superpixel map.

    Attributes
    ----------
    pairs : Tensor, shape (E, 2), long
        Adjacent superpixels ``(a, b)`` with ``a < b`` (4-neighbourhood), sorted.
    lengths : Tensor, shape (E,), float64
        Number of pixel-boundary elements between ``a`` and ``b`` (boundary length).
    num_nodes : int
        ``S``, the number of superpixels.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import region_adjacency
    >>> node_index = torch.tensor([[0, 0, 1],
    ...                        [2, 2, 1]])
    >>> graph = region_adjacency(node_index)
    >>> graph.pairs
    tensor([[0, 1],
            [0, 2],
            [1, 2]])
    >>> graph.lengths
    tensor([1., 2., 1.], dtype=torch.float64)
    >>> graph.num_nodes
    3
    """

    pairs: Tensor
    lengths: Tensor
    num_nodes: int


def _check_index(node_index: object, name: str = "node_index") -> Tensor:
    node_index = require_tensor(node_index, name)
    check_int_dtype(node_index, name)
    if node_index.ndim != 2 or min(node_index.shape) < 1:
        raise ValueError(f"`{name}` must have shape (H, W), got {tuple(node_index.shape)}")
    if int(node_index.min()) < 0:
        raise ValueError(f"`{name}` must hold labels >= 0, got min {int(node_index.min())}")
    return node_index.long().cpu()


def _element_pairs(idx: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Labels across every horizontal and vertical pixel boundary element."""
    return idx[:, :-1], idx[:, 1:], idx[:-1, :], idx[1:, :]


def region_adjacency(node_index: Tensor) -> RegionAdjacency:
    """Adjacent superpixel pairs and their boundary lengths.

    Parameters
    ----------
    node_index : Tensor, shape (H, W), integer
        Superpixel of each pixel, labels ``0 .. S-1``.

    Returns
    -------
    RegionAdjacency

    Raises
    ------
    ValueError
        If ``node_index`` is not a non-empty 2-D integer map with labels >= 0.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import region_adjacency
    >>> graph = region_adjacency(torch.tensor([[0, 1], [2, 2]]))
    >>> graph.pairs
    tensor([[0, 1],
            [0, 2],
            [1, 2]])
    >>> graph.lengths
    tensor([1., 1., 1.], dtype=torch.float64)
    """
    idx = _check_index(node_index)
    S = int(idx.max()) + 1
    left, right, up, down = _element_pairs(idx)
    a = torch.cat([left.reshape(-1), up.reshape(-1)])
    b = torch.cat([right.reshape(-1), down.reshape(-1)])
    differ = a != b
    lo = torch.minimum(a[differ], b[differ])
    hi = torch.maximum(a[differ], b[differ])
    keys, counts = torch.unique(lo * S + hi, return_counts=True)
    pairs = torch.stack([keys // S, keys % S], dim=1)
    return RegionAdjacency(pairs, counts.to(torch.float64), S)


def spectral_node_embedding(
    Z: Tensor,
    eigenvalues: Tensor | None = None,
    degrees: Tensor | None = None,
    *,
    mode: EmbeddingMode = "rownorm",
    k: int | None = None,
    eps: float = 1e-3,
) -> Tensor:
    """Node vectors whose distances measure spectral boundary strength.

    ``mode="rownorm"`` (Ng, Jordan & Weiss 2002): ``xᵢ = Zᵢ,:k / ‖Zᵢ,:k‖``; distances lie in
    ``[0, 2]``.

    ``mode="spb"`` (the spectral boundary sPb of Arbeláez et al. 2011, eq. 13, on nodes): the
    generalized eigenvectors ``v_j = D^-½ z_j`` of ``(D − W) v = λ D v`` with ``λ_j = 1 − μ_j``
    (``μ_j`` the eigenvalues of ``M = D^-½ W D^-½``) are weighted by ``1/√λ_j``::

        x_{i,j} = √(m d̄ / dᵢ) · Zᵢⱼ / √(λ_j + eps)

    (``d̄`` the mean degree: scale free in ``W``; the trivial vector ``j = 1``, constant in
    ``v``, contributes no distance). sPb sums ``|Δv_j|/√λ_j`` over ``j``; we use the Euclidean
    norm of the same weighted differences.

    Parameters
    ----------
    Z : Tensor, shape (m, K)
        Top eigenvectors of ``M`` (decreasing eigenvalues), e.g. ``result.Z[0]``.
    eigenvalues : Tensor, shape (K,), optional
        Their eigenvalues ``μ`` (required for ``"spb"``).
    degrees : Tensor, shape (m,), optional
        Degrees ``d`` (required for ``"spb"``).
    mode : {"rownorm", "spb"}
    k : int, optional
        Use only the first ``k`` columns (default all).
    eps : float
        Floor added to ``λ_j`` (``"spb"``).

    Returns
    -------
    Tensor, shape (m, k), float64, detached

    Raises
    ------
    ValueError
        On malformed inputs or an unknown ``mode``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import spectral_node_embedding
    >>> Z = torch.tensor([[3.0, 4.0], [0.0, 2.0]], dtype=torch.float64)
    >>> spectral_node_embedding(Z)                 # rows normalized to unit length
    tensor([[0.6000, 0.8000],
            [0.0000, 1.0000]], dtype=torch.float64)
    """
    Z = require_tensor(Z, "Z")
    check_float_dtype(Z, "Z")
    if Z.ndim != 2 or min(Z.shape) < 1:
        raise ValueError(f"`Z` must have shape (m, K), got {tuple(Z.shape)}")
    check_finite(Z, "Z")
    m, K = Z.shape
    k = K if k is None else int(k)
    if not 1 <= k <= K:
        raise ValueError(f"`k` must lie in [1, {K}], got {k}")
    X = Z.detach().to(torch.float64)[:, :k]
    if mode == "rownorm":
        return X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)
    if mode != "spb":
        raise ValueError(f"`mode` must be 'rownorm' or 'spb', got {mode!r}")
    if eigenvalues is None or degrees is None:
        raise ValueError("`eigenvalues` and `degrees` must be given for mode='spb', got None")
    mu = require_tensor(eigenvalues, "eigenvalues").detach().to(torch.float64).reshape(-1)
    d = require_tensor(degrees, "degrees").detach().to(torch.float64).reshape(-1)
    if mu.shape[0] < k or d.shape[0] != m:
        raise ValueError(
            f"`eigenvalues` must have >= {k} entries and `degrees` {m}, got "
            f"{mu.shape[0]} and {d.shape[0]}"
        )
    if bool((d <= 0).any()):
        raise ValueError("`degrees` must be positive")
    lam = (1.0 - mu[:k]).clamp_min(0.0)
    scale = (m * d.mean() / d).sqrt().unsqueeze(1)
    return X * scale / (lam + eps).sqrt()


def pair_distances(x: Tensor, pairs: Tensor) -> Tensor:
    """``‖x_a − x_b‖`` for every pair ``(a, b)`` (float64).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import pair_distances
    >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    >>> pair_distances(x, torch.tensor([[0, 1], [0, 2]]))
    tensor([5., 1.], dtype=torch.float64)
    """
    x = x.detach().to(torch.float64)
    return (x[pairs[:, 0]] - x[pairs[:, 1]]).norm(dim=1)
