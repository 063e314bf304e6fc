r"""Boundary precision / recall with the BSDS correspondence of boundary pixels.

A machine boundary map ``B`` (binary, thinned to one-pixel width) is compared with the boundary
maps ``G_1 .. G_K`` of the human segmentations (``evaluation_bdry_image.m``):

* for each human ``k``, a one-to-one correspondence between the pixels of ``B`` and of ``G_k`` is
  computed, where two pixels may be matched only if their Euclidean distance is at most
  ``max_dist * sqrt(H^2 + W^2)`` (``max_dist = 0.0075`` by default, i.e. about 4.3 pixels on a
  481x321 image);
* recall counts: ``cntR = sum_k #matched pixels of G_k``, ``sumR = sum_k |G_k|``;
* precision counts: a machine pixel is a true positive if it is matched for *any* human:
  ``cntP = |union_k matched pixels of B|``, ``sumP = |B|``;
* ``R = cntR / sumR``, ``P = cntP / sumP``, ``F = 2PR / (P + R)``.

The correspondence
    The official ``correspondPixels`` solves a min-cost assignment (Goldberg's CSA) in which
    matching two pixels at distance ``d <= maxDist`` costs ``d`` and leaving a pixel unmatched
    costs ``outlierCost = 100 * maxDist``; every matched pair thus saves ``outlierCost - d``.
    We solve the same problem exactly: the bipartite graph of pixel pairs within ``maxDist`` is
    augmented with one outlier node per pixel (so that a perfect matching always exists) and
    handed to :func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`. Because
    ``outlierCost`` dwarfs ``d``, the result is a maximum-cardinality matching of minimum total
    distance. (The official code links outlier nodes sparsely at random, so it is a close
    approximation of this optimum and its results vary slightly from run to run.)

Conventions
    A segmentation is turned into boundaries like ``seg2bdry(seg, 'imageSize')``: a pixel is on
    the boundary if it differs from its lower or right neighbour, or (for the junction pixel)
    from the neighbour of a neighbour in the 2x2 block below-right; the results are then thinned
    with morphological thinning (``bwmorph(.., 'thin', inf)`` -> :func:`skimage.morphology.thin`).
    The human boundary maps of BSDS500 (``groundTruth{k}.Boundaries``) are exactly
    ``thin(seg2bdry(Segmentation))``.

References
----------
D. Martin, C. Fowlkes and J. Malik, "Learning to detect natural image boundaries using local
brightness, color, and texture cues", IEEE TPAMI 26(5), 2004, Sec. 4 (boundary correspondence).
P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour Detection and Hierarchical Image
Segmentation", IEEE TPAMI 33(5):898-916, 2011, Sec. 3.1 (boundary benchmark).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import as_binary_map, as_label_map, as_label_maps, check_max_dist

__all__ = [
    "BoundaryCounts",
    "boundary_pr",
    "correspond_pixels",
    "f_measure",
    "human_boundaries",
    "segmentation_to_boundaries",
    "thin_boundaries",
]

DEFAULT_MAX_DIST = 0.0075
DEFAULT_OUTLIER_COST = 100.0
# The official matcher works with integer costs: distances are multiplied by 100 and rounded.
_COST_MULTIPLIER = 100.0


def f_measure(recall: Any, precision: Any) -> Any:
    """Harmonic mean ``2PR / (P + R)``, defined as 0 where ``P + R = 0`` (as the benchmark).

    Examples
    --------
    >>> from matbackprop.metrics import f_measure
    >>> f_measure(0.5, 1.0), f_measure(0.0, 0.0)
    (0.6666666666666666, 0.0)
    """
    r = np.asarray(recall, dtype=np.float64)
    p = np.asarray(precision, dtype=np.float64)
    s = p + r
    out = 2.0 * p * r / np.where(s == 0, 1.0, s)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class BoundaryCounts:
    """Boundary match counts of one machine map against ``K`` human maps.

    Attributes
    ----------
    cnt_r, sum_r : int
        Matched human boundary pixels and all human boundary pixels, summed over humans.
    cnt_p, sum_p : int
        Machine boundary pixels matched to at least one human, and all machine boundary pixels.

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import boundary_pr, segmentation_to_boundaries
    >>> counts = boundary_pr(segmentation_to_boundaries(halves), [halves])
    >>> counts.cnt_r == counts.sum_r, counts.cnt_p == counts.sum_p       # every pixel matched
    (True, True)
    """

    cnt_r: int
    sum_r: int
    cnt_p: int
    sum_p: int

    @property
    def recall(self) -> float:
        return self.cnt_r / self.sum_r if self.sum_r > 0 else 0.0

    @property
    def precision(self) -> float:
        return self.cnt_p / self.sum_p if self.sum_p > 0 else 0.0

    @property
    def f(self) -> float:
        return f_measure(self.recall, self.precision)


def segmentation_to_boundaries(seg: Any, *, double_size: bool = False) -> np.ndarray:
    """Boundary map of a segmentation, with the convention of the official ``seg2bdry.m``.

    In the double-size grid ``(2H+1, 2W+1)``, pixel ``(i, j)`` sits at ``(2i+1, 2j+1)``, the edge
    between vertical neighbours at ``(2i+2, 2j+1)``, between horizontal neighbours at
    ``(2i+1, 2j+2)`` and the junctions at ``(2i+2, 2j+2)`` (on if any of the four incident edges
    is on); the outer frame copies its inner neighbour. The image-size map is the junction
    lattice ``[2::2, 2::2]``: pixel ``(i, j)`` is on iff it differs from ``(i+1, j)`` or
    ``(i, j+1)``, or ``(i+1, j)`` differs from ``(i+1, j+1)``, or ``(i, j+1)`` from ``(i+1, j+1)``.

    Parameters
    ----------
    seg : array_like of int, shape (H, W)
    double_size : bool, default False
        Return the ``(2H+1, 2W+1)`` map instead of the ``(H, W)`` one.

    Returns
    -------
    ndarray of bool, shape (H, W) or (2H+1, 2W+1)

    Raises
    ------
    ValueError
        If ``seg`` is not a 2-D integer label map.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop.metrics import segmentation_to_boundaries
    >>> segmentation_to_boundaries(np.array([[1, 1, 2], [1, 1, 2]])).astype(int)
    array([[0, 1, 0],
           [0, 1, 0]])
    """
    s = as_label_map(seg, "seg")
    return _seg2bdry(s, double_size=double_size)


def thin_boundaries(bmap: Any) -> np.ndarray:
    """Thin a binary boundary map to one-pixel width (``bwmorph(bmap, 'thin', inf)``).

    Parameters
    ----------
    bmap : array_like, shape (H, W)
        Binary map (bool or 0/1).

    Returns
    -------
    ndarray of bool, shape (H, W)

    Raises
    ------
    ValueError
        If ``bmap`` is not a 2-D binary map.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop.metrics import thin_boundaries
    >>> thick = np.zeros((5, 7), bool)
    >>> thick[1:4, 1:6] = True
    >>> thin_boundaries(thick).astype(int)
    array([[0, 0, 0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0, 0],
           [0, 0, 1, 1, 1, 0, 0],
           [0, 0, 0, 0, 0, 0, 0],
           [0, 0, 0, 0, 0, 0, 0]])
    """
    return _thin(as_binary_map(bmap, "bmap"))


def human_boundaries(gts: Sequence[Any]) -> list[np.ndarray]:
    """Boundary maps of human segmentations, ``thin(seg2bdry(gt))`` (= BSDS ``Boundaries``).

    Parameters
    ----------
    gts : sequence of array_like of int, each (H, W)

    Returns
    -------
    list of ndarray of bool, each (H, W)

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import human_boundaries
    >>> (boundary,) = human_boundaries([halves])
    >>> boundary.shape, int(boundary.sum())
    ((6, 6), 6)
    """
    return [_thin(_seg2bdry(g)) for g in as_label_maps(gts, "gts")]


def correspond_pixels(
    bmap1: Any,
    bmap2: Any,
    max_dist: float = DEFAULT_MAX_DIST,
    outlier_cost: float = DEFAULT_OUTLIER_COST,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one correspondence between the pixels of two binary boundary maps.

    Pixels at distance ``d <= max_dist * sqrt(H^2 + W^2)`` may be matched at cost ``d``; an
    unmatched pixel costs ``outlier_cost * max_dist * diag``. The optimum is exact (see the
    module notes); it is a maximum-cardinality matching of minimal total distance.

    Parameters
    ----------
    bmap1, bmap2 : array_like, shape (H, W)
        Binary boundary maps (bool or 0/1).
    max_dist : float, default 0.0075
        Matching tolerance as a fraction of the image diagonal.
    outlier_cost : float, default 100
        Cost of an unmatched pixel, as a multiple of the tolerance (must be > 1).

    Returns
    -------
    match1 : ndarray of int64, shape (H, W)
        For each pixel of ``bmap1``, the flat (row-major) index + 1 of its match in ``bmap2``,
        0 where unmatched or not a boundary pixel.
    match2 : ndarray of int64, shape (H, W)
        The same for ``bmap2``.

    Raises
    ------
    ValueError
        On non-binary or non-2-D maps, mismatched shapes, or bad ``max_dist``/``outlier_cost``.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop.metrics import correspond_pixels
    >>> a = np.zeros((8, 8), bool)
    >>> a[:, 3] = True
    >>> b = np.zeros((8, 8), bool)
    >>> b[:, 4] = True                                            # the same line, one pixel over
    >>> match1, match2 = correspond_pixels(a, b, max_dist=0.2)
    >>> int((match1 > 0).sum()), int((match2 > 0).sum())
    (8, 8)
    """
    b1 = as_binary_map(bmap1, "bmap1")
    b2 = as_binary_map(bmap2, "bmap2", b1.shape)
    md = check_max_dist(max_dist)
    oc = float(outlier_cost)
    if not np.isfinite(oc) or oc <= 1.0:
        raise ValueError(f"`outlier_cost` must be finite and > 1, got {outlier_cost!r}")
    idx1, idx2 = _match(b1, b2, md, oc)
    match1 = np.zeros(b1.shape, dtype=np.int64)
    match2 = np.zeros(b1.shape, dtype=np.int64)
    match1.ravel()[idx1] = idx2 + 1
    match2.ravel()[idx2] = idx1 + 1
    return match1, match2


def boundary_pr(
    bmap: Any,
    gts: Sequence[Any] | None = None,
    max_dist: float = DEFAULT_MAX_DIST,
    *,
    gt_boundaries: Sequence[Any] | None = None,
    thin: bool = True,
) -> BoundaryCounts:
    """Boundary precision/recall counts of one binary boundary map against all humans.

    Parameters
    ----------
    bmap : array_like, shape (H, W)
        Binary machine boundary map (bool or 0/1). Threshold soft maps first (or use
        :func:`~matbackprop.metrics.evaluate_boundary_map`).
    gts : sequence of array_like of int, each (H, W), optional
        Human segmentations; their boundaries are ``thin(seg2bdry(gt))``.
    max_dist : float, default 0.0075
        Matching tolerance as a fraction of the image diagonal.
    gt_boundaries : sequence of array_like, each (H, W), optional
        Human boundary maps (e.g. the BSDS ``Boundaries`` fields); when given they are used
        instead of deriving the boundaries from ``gts`` (which may then be ``None``).
    thin : bool, default True
        Thin ``bmap`` first (``bwmorph(.., 'thin', inf)``), as the official benchmark does.

    Returns
    -------
    BoundaryCounts
        ``cnt_r, sum_r, cnt_p, sum_p`` and the ``recall``, ``precision``, ``f`` properties.

    Raises
    ------
    ValueError
        On non-binary maps, mismatched shapes, an empty human list, or when neither ``gts`` nor
        ``gt_boundaries`` is given.

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import boundary_pr, segmentation_to_boundaries
    >>> shifted = np.repeat([[1, 1, 2, 2, 2, 2]], 6, axis=0)        # the boundary one pixel off
    >>> counts = boundary_pr(segmentation_to_boundaries(shifted), [halves], max_dist=0.2)
    >>> counts.cnt_r, counts.sum_r
    (6, 6)
    """
    b = as_binary_map(bmap, "bmap")
    md = check_max_dist(max_dist)
    humans = resolve_human_boundaries(gts, gt_boundaries, b.shape)
    if thin:
        b = _thin(b)
    return _boundary_counts(b, humans, md)


# --------------------------------------------------------------------------------------------
# internals


def resolve_human_boundaries(
    gts: Sequence[Any] | None,
    gt_boundaries: Sequence[Any] | None,
    shape: tuple[int, ...],
) -> list[np.ndarray]:
    """Validated human boundary maps: ``gt_boundaries`` if given, else derived from ``gts``."""
    if gts is None and gt_boundaries is None:
        raise ValueError(
            "human references are missing: give `gts` (segmentations) or `gt_boundaries`, "
            "got neither"
        )
    if gt_boundaries is not None:
        if isinstance(gt_boundaries, np.ndarray) and gt_boundaries.ndim == 3:
            gt_boundaries = list(gt_boundaries)
        if len(gt_boundaries) == 0:
            raise ValueError("`gt_boundaries` must contain at least one map, got an empty sequence")
        return [as_binary_map(g, f"gt_boundaries[{k}]", shape) for k, g in enumerate(gt_boundaries)]
    return [_thin(_seg2bdry(g)) for g in as_label_maps(gts, "gts", shape)]


def _seg2bdry(seg: np.ndarray, double_size: bool = False) -> np.ndarray:
    h, w = seg.shape
    edge_v = np.zeros((h, w), dtype=bool)  # pixel differs from the one below
    edge_v[:-1] = seg[:-1] != seg[1:]
    edge_h = np.zeros((h, w), dtype=bool)  # pixel differs from the one to the right
    edge_h[:, :-1] = seg[:, :-1] != seg[:, 1:]
    b = np.zeros((2 * h + 1, 2 * w + 1), dtype=bool)
    b[2::2, 1::2] = edge_v
    b[1::2, 2::2] = edge_h
    b[2:-1:2, 2:-1:2] = edge_h[:-1, :-1] | edge_h[1:, :-1] | edge_v[:-1, :-1] | edge_v[:-1, 1:]
    b[0, :] = b[1, :]
    b[:, 0] = b[:, 1]
    b[-1, :] = b[-2, :]
    b[:, -1] = b[:, -2]
    return b if double_size else b[2::2, 2::2].copy()


def _thin(bmap: np.ndarray) -> np.ndarray:
    from skimage.morphology import thin

    if not bmap.any():
        return bmap.astype(bool)
    return thin(bmap)


def _boundary_counts(
    b: np.ndarray, humans: Sequence[np.ndarray], max_dist: float
) -> BoundaryCounts:
    """Counts for a binary, already thinned machine map ``b`` and human maps ``humans``."""
    matched_machine = np.zeros(b.size, dtype=bool)
    cnt_r = sum_r = 0
    for g in humans:
        idx1, idx2 = _match(b, g, max_dist, DEFAULT_OUTLIER_COST)
        matched_machine[idx1] = True
        cnt_r += int(idx2.size)
        sum_r += int(g.sum())
    return BoundaryCounts(
        cnt_r=cnt_r, sum_r=sum_r, cnt_p=int(matched_machine.sum()), sum_p=int(b.sum())
    )


def _candidate_pairs(
    b1: np.ndarray, b2: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs (flat index in b1, flat index in b2, distance) within ``radius`` pixels."""
    h, w = b1.shape
    y1, x1 = np.nonzero(b1)
    r = int(np.ceil(radius))
    src, dst, dist = [], [], []
    if y1.size == 0 or not b2.any():
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            d2 = dy * dy + dx * dx
            if d2 > radius * radius:
                continue
            y2 = y1 + dy
            x2 = x1 + dx
            ok = (y2 >= 0) & (y2 < h) & (x2 >= 0) & (x2 < w)
            ok[ok] = b2[y2[ok], x2[ok]]
            if not ok.any():
                continue
            src.append(y1[ok] * w + x1[ok])
            dst.append(y2[ok] * w + x2[ok])
            dist.append(np.full(int(ok.sum()), np.sqrt(d2)))
    if not src:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    return np.concatenate(src), np.concatenate(dst), np.concatenate(dist)


def _match(
    b1: np.ndarray, b2: np.ndarray, max_dist: float, outlier_cost: float
) -> tuple[np.ndarray, np.ndarray]:
    """Matched pairs (flat index in b1, flat index in b2) of the min-cost correspondence."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    h, w = b1.shape
    radius = max_dist * float(np.hypot(h, w))
    src, dst, dist = _candidate_pairs(b1, b2, radius)
    if src.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    # compress to the matchable nodes: p of them in b1, q in b2
    nodes1, i = np.unique(src, return_inverse=True)
    nodes2, j = np.unique(dst, return_inverse=True)
    p, q = nodes1.size, nodes2.size
    # integer costs as in the official matcher; +1 keeps every stored weight non-zero (all perfect
    # matchings have p + q edges, so a constant shift does not change the optimum)
    real = np.rint(dist * _COST_MULTIPLIER) + 1.0
    out = np.ceil(outlier_cost * radius * _COST_MULTIPLIER) + 1.0
    # left = [b1 nodes (p), outlier copies of b2 nodes (q)];
    # right = [b2 nodes (q), outlier copies of b1 nodes (p)]
    ar_p = np.arange(p)
    ar_q = np.arange(q)
    rows = np.concatenate([i, ar_p, p + ar_q, p + j])
    cols = np.concatenate([j, q + ar_p, ar_q, q + i])
    weights = np.concatenate([real, np.full(p, out), np.full(q, out), np.full(i.size, out)])
    graph = sp.csr_matrix((weights, (rows, cols)), shape=(p + q, p + q))
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    real_pairs = (row_ind < p) & (col_ind < q)
    return nodes1[row_ind[real_pairs]], nodes2[col_ind[real_pairs]]
