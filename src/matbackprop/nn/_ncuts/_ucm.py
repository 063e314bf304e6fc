"""Ultrametric contour maps (UCM) from greedy merging of superpixels.

A hierarchy of nested segmentations is built by greedy agglomerative merging on the region
adjacency graph (RAG) of a superpixel map; the height at which two adjacent superpixels first
fall into one region is an ultrametric, and painting it on the boundary elements between them
gives the *ultrametric contour map* of Arbeláez et al. (TPAMI 2011, Sec. 4.2): thresholding it
at ``t`` gives the closed contours of the level-``t`` segmentation, so every level is nested in
the coarser ones and boundaries carry a strength.

Pipeline::

    node_index (H, W) ─ region_adjacency ─► pairs (E, 2), lengths (E,)
    node embedding x (S, C)  (e.g. spectral_node_embedding(Z, λ, d))
    agglomerate(pairs, lengths, x)        ─► heights (E,)  (ultrametric on the RAG edges)
    ucm2_from_heights(node_index, pairs, heights) ─► ucm2 (2H+1, 2W+1)  (BSDS "doubleSize")

Merging criterion between adjacent regions ``A, B`` (both computed from the node embedding)::

    δ(A, B) = α · Σ_{(i,j)∈∂AB} ℓᵢⱼ ‖xᵢ − xⱼ‖ / Σ ℓᵢⱼ   +   (1 − α) · ‖x̄_A − x̄_B‖

the first term the mean boundary strength along the common boundary ``∂AB`` (OWT-UCM's
criterion, Arbeláez et al. 2011, Sec. 4.2, with the boundary strength of sPb, Sec. 3.3), the
second the distance between the regions' mean embeddings ``x̄`` (area weighted). Heights are made
monotone (``h_t = max(h_t, h_{t−1})``) so that the result is an ultrametric.

Format of ``ucm2`` (the official ``doubleSize`` layout): pixel ``(i, j)`` sits at
``(2i+1, 2j+1)``, the boundary element between ``(i, j)`` and ``(i, j+1)`` at ``(2i+1, 2j+2)``,
between ``(i, j)`` and ``(i+1, j)`` at ``(2i+2, 2j+1)``; a junction ``(2i+2, 2j+2)`` holds the
maximum of its four incident elements and the outer frame copies its inner neighbour. Regions
at threshold ``t`` are the 8-connected components of ``ucm2 <= t`` sampled at ``[1::2, 1::2]``;
boundaries are ``ucm2[2::2, 2::2] >= t``.

Torch and the standard library only (the merge loop is plain Python on ~10³ regions).

References
----------
P. Arbeláez, M. Maire, C. Fowlkes and J. Malik, "Contour Detection and Hierarchical Image
Segmentation", IEEE TPAMI 33(5):898-916, 2011 (Sec. 3.3 sPb, Sec. 4.2 UCM, Sec. 3 benchmark).
"""

from __future__ import annotations

import heapq
import math
from typing import Literal

import torch
from torch import Tensor

from matbackprop.validation import check_finite, check_float_dtype, require_tensor

from ._graph import (
    RegionAdjacency,
    _check_index,
    _element_pairs,
    pair_distances,
    region_adjacency,
)

Calibration = Literal["exp", "max"]


def agglomerate(
    graph: RegionAdjacency,
    embedding: Tensor | None = None,
    *,
    edge_strength: Tensor | None = None,
    sizes: Tensor | None = None,
    alpha: float = 1.0,
) -> Tensor:
    """Greedy merging of adjacent regions; the ultrametric height of every RAG edge.

    Repeatedly merges the adjacent pair of regions of smallest
    ``δ(A, B) = α · mean_{∂AB} s + (1 − α) · ‖x̄_A − x̄_B‖`` (module docstring) until one region
    is left (or none of the remaining regions touch). The merge heights are made monotone, so
    that ``heights`` is an ultrametric: thresholding it at any ``t`` gives a partition, and the
    partitions are nested.

    Parameters
    ----------
    graph : RegionAdjacency
        From :func:`region_adjacency`.
    embedding : Tensor, shape (S, C), optional
        Node vectors ``x``. Required when ``alpha < 1`` or ``edge_strength`` is None (the edge
        strength is then ``‖x_a − x_b‖``).
    edge_strength : Tensor, shape (E,), optional
        Boundary strength ``s`` of each RAG edge (e.g. from a boundary detector or a mixture of
        cues); default ``‖x_a − x_b‖``.
    sizes : Tensor, shape (S,), optional
        Node areas for the region means (default: all 1).
    alpha : float in [0, 1]
        Weight of the boundary term.

    Returns
    -------
    Tensor, shape (E,), float64
        Height at which the two superpixels of each RAG edge join (``inf`` if they never do).

    Raises
    ------
    ValueError
        On shape mismatches, non-finite or negative strengths, or ``alpha`` outside [0, 1].

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import agglomerate, region_adjacency
    >>> node_index = torch.tensor([[0, 1, 2, 3]])
    >>> graph = region_adjacency(node_index)
    >>> embedding = torch.tensor([[0.0], [0.1], [1.0], [1.1]], dtype=torch.float64)
    >>> heights = agglomerate(graph, embedding)      # one height per pair (0, 1), (1, 2), (2, 3)
    >>> bool(heights[1] > heights[0]) and bool(heights[1] > heights[2])
    True
    """
    if not isinstance(graph, RegionAdjacency):
        raise ValueError(f"`graph` must be a RegionAdjacency, got {type(graph).__name__}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"`alpha` must lie in [0, 1], got {alpha}")
    pairs, lengths, S = graph.pairs, graph.lengths, graph.num_nodes
    E = pairs.shape[0]
    x = None
    if embedding is not None:
        x = require_tensor(embedding, "embedding").detach().to("cpu", torch.float64)
        if x.ndim != 2 or x.shape[0] != S:
            raise ValueError(f"`embedding` must have shape ({S}, C), got {tuple(x.shape)}")
        check_finite(x, "embedding")
    if edge_strength is None:
        if x is None:
            raise ValueError("give `embedding` or `edge_strength`, got neither")
        strength = pair_distances(x, pairs)
    else:
        strength = require_tensor(edge_strength, "edge_strength").detach().to("cpu", torch.float64)
        if strength.shape != (E,):
            raise ValueError(f"`edge_strength` must have shape ({E},), got {tuple(strength.shape)}")
        check_finite(strength, "edge_strength")
        if bool((strength < 0).any()):
            raise ValueError("`edge_strength` must be non-negative")
    if alpha < 1.0 and x is None:
        raise ValueError("`embedding` is required when alpha < 1 (region-mean term)")
    w = torch.ones(S, dtype=torch.float64) if sizes is None else sizes.to("cpu", torch.float64)
    if w.shape != (S,):
        raise ValueError(f"`sizes` must have shape ({S},), got {tuple(w.shape)}")

    alpha = float(alpha)
    use_mean = alpha < 1.0
    # region state: area, area-weighted sum of x; adjacency: nbr -> [Σ ℓ s, Σ ℓ, edge ids]
    area = w.tolist()
    # x is set when use_mean (checked above); sums is read only then
    sums: list = (x * w.unsqueeze(1)).tolist() if use_mean else []  # type: ignore[operator]
    adj: list[dict[int, list]] = [dict() for _ in range(S)]
    ls = (lengths * strength).tolist()
    ln = lengths.tolist()
    for e, (a, b) in enumerate(pairs.tolist()):
        adj[a][b] = [ls[e], ln[e], [e]]
        adj[b][a] = adj[a][b]
    version = [0] * S

    def dist(a: int, b: int, stats: list) -> float:
        d = alpha * stats[0] / stats[1] if alpha > 0 else 0.0
        if use_mean:
            sa, sb, na, nb = sums[a], sums[b], area[a], area[b]
            d += (1 - alpha) * math.sqrt(
                sum((u / na - v / nb) ** 2 for u, v in zip(sa, sb, strict=True))
            )
        return d

    heap = [(dist(a, b, adj[a][b]), a, b, 0, 0) for a, b in pairs.tolist()]
    heapq.heapify(heap)
    heights = [math.inf] * E
    alive = [True] * S
    level = 0.0
    while heap:
        d, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb:
            continue
        level = max(level, d)
        if len(adj[a]) < len(adj[b]):  # merge the smaller neighbourhood into the larger
            a, b = b, a
        # b is absorbed into a
        for e in adj[a].pop(b)[2]:
            heights[e] = level
        del adj[b][a]
        for c, stats in adj[b].items():
            del adj[c][b]
            if c in adj[a]:
                mine = adj[a][c]
                mine[0] += stats[0]
                mine[1] += stats[1]
                mine[2].extend(stats[2])
            else:
                adj[a][c] = stats
                adj[c][a] = stats
        adj[b] = {}
        alive[b] = False
        area[a] += area[b]
        if use_mean:
            sums[a] = [u + v for u, v in zip(sums[a], sums[b], strict=True)]
        version[a] += 1
        for c, stats in adj[a].items():
            heapq.heappush(heap, (dist(a, c, stats), a, c, version[a], version[c]))
    return torch.tensor(heights, dtype=torch.float64)


def ucm2_from_heights(node_index: Tensor, pairs: Tensor, heights: Tensor) -> Tensor:
    """Paint RAG edge heights on the double-size boundary grid (BSDS ``ucm2`` layout).

    Parameters
    ----------
    node_index : Tensor, shape (H, W), integer
        The superpixel map the pairs refer to.
    pairs : Tensor, shape (E, 2), long
        Adjacent superpixels ``a < b`` (from :func:`region_adjacency` of ``node_index``).
    heights : Tensor, shape (E,)
        Value of each pair's boundary, finite and >= 0 (e.g. ultrametric heights in [0, 1]).

    Returns
    -------
    Tensor, shape (2H+1, 2W+1), float64
        Boundary elements carry the height of the pair they separate, elements inside a
        superpixel and pixel sites are 0, junctions the maximum of their four incident elements
        and the frame a copy of its inner neighbour (see the module docstring).

    Raises
    ------
    ValueError
        On shape mismatches, non-finite heights, or a pixel boundary between superpixels that
        are not in ``pairs``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import ucm2_from_heights
    >>> node_index = torch.tensor([[0, 1], [0, 1]])
    >>> ucm2 = ucm2_from_heights(node_index, torch.tensor([[0, 1]]), torch.tensor([0.5]))
    >>> ucm2.shape                                  # (2H + 1, 2W + 1)
    torch.Size([5, 5])
    >>> float(ucm2.max())
    0.5
    """
    idx = _check_index(node_index)
    heights = require_tensor(heights, "heights").detach().to("cpu", torch.float64)
    if heights.shape != (pairs.shape[0],):
        raise ValueError(
            f"`heights` must have shape ({pairs.shape[0]},), got {tuple(heights.shape)}"
        )
    check_finite(heights, "heights")
    H, W = idx.shape
    S = max(int(idx.max()), int(pairs.max()) if pairs.numel() else 0) + 1
    keys = pairs[:, 0] * S + pairs[:, 1]
    order = torch.argsort(keys)
    keys, values = keys[order], heights[order]

    def lookup(a: Tensor, b: Tensor) -> Tensor:
        lo, hi = torch.minimum(a, b), torch.maximum(a, b)
        q = lo * S + hi
        pos = torch.searchsorted(keys, q.reshape(-1)).clamp_max(max(keys.numel() - 1, 0))
        out = torch.zeros(q.numel(), dtype=torch.float64)
        differ = (a != b).reshape(-1)
        if bool(differ.any()):
            if keys.numel() == 0 or bool((keys[pos[differ]] != q.reshape(-1)[differ]).any()):
                raise ValueError("`pairs` is missing an adjacent superpixel pair of `node_index`")
            out[differ] = values[pos[differ]]
        return out.reshape(q.shape)

    left, right, up, down = _element_pairs(idx)
    u = torch.zeros(2 * H + 1, 2 * W + 1, dtype=torch.float64)
    u[1:-1:2, 2:-1:2] = lookup(left, right)  # (H, W-1): between (i, j) and (i, j+1)
    u[2:-1:2, 1:-1:2] = lookup(up, down)  # (H-1, W): between (i, j) and (i+1, j)
    # junctions: max of the four incident elements
    u[2:-1:2, 2:-1:2] = torch.stack(
        [u[1:-2:2, 2:-1:2], u[3::2, 2:-1:2], u[2:-1:2, 1:-2:2], u[2:-1:2, 3::2]]
    ).amax(0)
    u[0, :] = u[1, :]
    u[-1, :] = u[-2, :]
    u[:, 0] = u[:, 1]
    u[:, -1] = u[:, -2]
    return u


def quantize_levels(values: Tensor, levels: int, nthresh: int = 99) -> Tensor:
    """Snap values in ``[0, 1]`` to ``levels`` bins placed between benchmark thresholds.

    The benchmark thresholds are ``t_i = i / (n+1)``, ``i = 1..n``. A value ``v > 0`` becomes
    the midpoint between the two thresholds around ``⌈v · levels⌉ / levels`` (never equal to a
    threshold, so ``ucm2 >= t`` and ``ucm2 > t`` agree); 0 stays 0. With ``levels`` distinct
    values an image has at most ``levels`` distinct segmentations over the ``n`` thresholds.

    Raises
    ------
    ValueError
        If ``levels`` or ``nthresh`` is not a positive int, or values leave [0, 1].

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import quantize_levels
    >>> values = torch.tensor([0.0, 0.12, 0.5, 0.93, 1.0])
    >>> quantized = quantize_levels(values, levels=4)
    >>> int(quantized.unique().numel()) <= 4
    True
    """
    for name, v in (("levels", levels), ("nthresh", nthresh)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}")
    if bool((values < 0).any()) or bool((values > 1).any()):
        raise ValueError("`values` must lie in [0, 1]")
    n1 = nthresh + 1
    top = torch.ceil(values * levels).clamp(0, levels) / levels  # in {0, 1/L, .., 1}
    snapped = (torch.round(top * n1).clamp(1, nthresh) - 0.5) / n1
    return torch.where(values > 0, snapped, torch.zeros_like(values))


def ultrametric_contour_map(
    node_index: Tensor,
    embedding: Tensor,
    *,
    alpha: float = 1.0,
    scale: float = 1.0,
    calibration: Calibration = "exp",
    levels: int | None = None,
    edge_strength: Tensor | None = None,
    sizes: Tensor | None = None,
    output_index: Tensor | None = None,
) -> Tensor:
    """``ucm2`` of one image from a node embedding (see the module docstring).

    Heights ``h`` of :func:`agglomerate` are mapped to ``[0, 1]`` by a monotone map (so the
    hierarchy is unchanged) and, with ``levels``, snapped by :func:`quantize_levels`:

    * ``calibration="exp"``: ``v = 1 − exp(−h / scale)`` (absolute heights);
    * ``calibration="max"``: ``v = (h / h_max)^scale`` with ``h_max`` the image's last finite
      merge (per-image normalisation: the coarsest merge gets 1).

    Parameters
    ----------
    node_index : Tensor, shape (h, w), integer
        Superpixels the embedding belongs to.
    embedding : Tensor, shape (S, C)
    alpha, edge_strength, sizes
        See :func:`agglomerate` (``sizes`` default: superpixel areas).
    scale : float
        Height scale of the map to [0, 1].
    levels : int, optional
        Quantize to this many levels.
    calibration : {"exp", "max"}
        Map from heights to ``[0, 1]`` (above).
    output_index : Tensor, shape (H, W), optional
        The same superpixels at another (e.g. the original image's) resolution, e.g. resized
        with nearest neighbours; the map is drawn on it. Its adjacent pairs must be adjacent
        in ``node_index`` too.

    Returns
    -------
    Tensor, shape (2H+1, 2W+1), float64, values in [0, 1]

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import ucm2_segmentation, ultrametric_contour_map
    >>> node_index = torch.tensor([[0, 0, 1, 1],
    ...                        [2, 2, 3, 3]])
    >>> embedding = torch.tensor([[0.0], [0.0], [1.0], [1.0]], dtype=torch.float64)  # top, bottom
    >>> ucm2 = ultrametric_contour_map(node_index, embedding)
    >>> ucm2.shape
    torch.Size([5, 9])
    >>> int(ucm2_segmentation(ucm2, 0.5 * float(ucm2.max())).unique().numel())
    2
    """
    idx = _check_index(node_index)
    graph = region_adjacency(idx)
    if sizes is None:
        sizes = torch.bincount(idx.reshape(-1), minlength=graph.num_nodes).to(torch.float64)
    heights = agglomerate(graph, embedding, edge_strength=edge_strength, sizes=sizes, alpha=alpha)
    if not scale > 0:
        raise ValueError(f"`scale` must be positive, got {scale}")
    if calibration == "exp":
        values = 1.0 - torch.exp(-heights / scale)  # inf -> 1
    elif calibration == "max":
        finite = torch.isfinite(heights)
        top = heights[finite].max() if bool(finite.any()) else heights.new_tensor(1.0)
        values = (heights / top.clamp_min(torch.finfo(heights.dtype).tiny)) ** scale
        values = torch.where(finite, values, torch.ones_like(values)).clamp(0.0, 1.0)
    else:
        raise ValueError(f"`calibration` must be 'exp' or 'max', got {calibration!r}")
    if levels is not None:
        values = quantize_levels(values, levels)
    if output_index is None:
        return ucm2_from_heights(idx, graph.pairs, values)
    # nearest-neighbour resizing keeps the adjacency of the superpixels, so the same pairs
    # describe the boundaries at the output resolution
    return ucm2_from_heights(_check_index(output_index, "output_index"), graph.pairs, values)


def ucm2_segmentation(ucm2: Tensor, threshold: float) -> Tensor:
    """Label map ``(H, W)`` of the regions of ``ucm2 <= threshold`` (nested in ``threshold``).

    Regions are the connected components of the pixel graph where two 4-neighbours are joined
    when their boundary element is ``<= threshold`` (the same partition as the benchmark's
    8-connected components of the double-size map). Labels are ``0 .. R-1``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import ucm2_from_heights, ucm2_segmentation
    >>> node_index = torch.tensor([[0, 1], [0, 1]])
    >>> ucm2 = ucm2_from_heights(node_index, torch.tensor([[0, 1]]), torch.tensor([0.5]))
    >>> ucm2_segmentation(ucm2, 0.25)               # below the boundary's height: two regions
    tensor([[0, 1],
            [0, 1]])
    >>> ucm2_segmentation(ucm2, 0.75)               # above it: one
    tensor([[0, 0],
            [0, 0]])
    """
    ucm2 = require_tensor(ucm2, "ucm2")
    if ucm2.ndim != 2 or ucm2.shape[0] % 2 == 0 or ucm2.shape[1] % 2 == 0:
        raise ValueError(f"`ucm2` must have shape (2H+1, 2W+1), got {tuple(ucm2.shape)}")
    H, W = (ucm2.shape[0] - 1) // 2, (ucm2.shape[1] - 1) // 2
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    u = ucm2.detach().cpu().numpy()
    label = np.arange(H * W).reshape(H, W)
    join_h = u[1:-1:2, 2:-1:2] <= threshold  # (H, W-1)
    join_v = u[2:-1:2, 1:-1:2] <= threshold  # (H-1, W)
    src = np.concatenate([label[:, :-1][join_h], label[:-1, :][join_v]])
    dst = np.concatenate([label[:, 1:][join_h], label[1:, :][join_v]])
    graph = coo_matrix((np.ones(src.size, dtype=np.int8), (src, dst)), shape=(H * W, H * W))
    # one linear-time graph search; components are numbered in the order of their first pixel
    # (row-major), the same labels as propagating the minimum pixel index
    _, components = connected_components(graph, directed=False)
    return torch.from_numpy(components.astype(np.int64)).reshape(H, W)


def ucm2_levels(ucm2: Tensor) -> tuple[list[float], list[Tensor]]:
    """Every distinct segmentation of a ``ucm2``, coarse to fine (the BSDS ``segs`` of it).

    With ``0 = u_0 < u_1 < … < u_L`` the distinct values of ``ucm2``, level ``j`` is
    :func:`ucm2_segmentation` at threshold ``u_j`` for ``j = L−1, …, 0`` (the threshold ``u_L``
    would merge everything into one region and is left out): at most ``L`` nested label maps,
    the first the coarsest. A quantized map (:func:`quantize_levels`) has at most ``levels``.

    Parameters
    ----------
    ucm2 : Tensor, shape (2H+1, 2W+1)
        Ultrametric contour map (values >= 0).

    Returns
    -------
    thresholds : list of float
        The threshold of each level (decreasing).
    levels : list of Tensor, each (H, W), long
        Label maps ``0 .. R−1``, coarse to fine, nested.

    Raises
    ------
    ValueError
        If ``ucm2`` is not a finite non-negative map of odd size.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import ucm2_from_heights, ucm2_levels
    >>> idx = torch.tensor([[0, 1], [2, 3]])
    >>> pairs = torch.tensor([[0, 1], [0, 2], [1, 3], [2, 3]])
    >>> u = ucm2_from_heights(idx, pairs, torch.tensor([0.25, 0.5, 0.5, 0.25]))
    >>> thresholds, levels = ucm2_levels(u)
    >>> thresholds
    [0.25, 0.0]
    >>> [int(level.max()) + 1 for level in levels]
    [2, 4]
    """
    ucm2 = require_tensor(ucm2, "ucm2")
    check_float_dtype(ucm2, "ucm2")
    if ucm2.ndim != 2 or ucm2.shape[0] % 2 == 0 or ucm2.shape[1] % 2 == 0:
        raise ValueError(f"`ucm2` must have shape (2H+1, 2W+1), got {tuple(ucm2.shape)}")
    check_finite(ucm2, "ucm2")
    if bool((ucm2 < 0).any()):
        raise ValueError("`ucm2` must be non-negative")
    values = torch.unique(ucm2.detach().cpu()).tolist()  # ascending
    if values[0] != 0.0:
        values = [0.0, *values]
    thresholds = values[-2::-1] if len(values) > 1 else [0.0]
    return thresholds, [ucm2_segmentation(ucm2, t) for t in thresholds]
