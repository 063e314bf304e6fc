r"""Region metrics of one segmentation against all human segmentations of an image.

These are the region measures of the BSDS500 benchmark (Arbelaez et al., TPAMI 2011, Sec. 3.2),
computed with the conventions of the official MATLAB code (``evaluation_reg_image.m``,
``match_segmentations.m``, ``match_segmentations2.m``). ``S`` is the machine segmentation,
``G_1 .. G_K`` the human ones, ``N`` the number of pixels and ``n_{ij}`` the contingency table
(number of pixels in region ``i`` of one map and region ``j`` of the other).

Segmentation covering
    The overlap of two regions is their Jaccard index ``O(R, R') = |R ∩ R'| / |R ∪ R'|``. The
    covering of a segmentation ``S`` by a segmentation ``S'`` is

    .. math:: C(S' \to S) = \frac{1}{N} \sum_{R \in S} |R| \max_{R' \in S'} O(R, R').

    The benchmark reports the covering of the *human* segmentations by the machine one, pooled
    over annotators: ``cntR = sum_k sum_{R in G_k} |R| max_{R' in S} O(R, R')`` and
    ``sumR = sum_k sum_{R in G_k} |R| = K N``, covering = ``cntR / sumR`` (i.e. the mean over
    annotators of ``C(S -> G_k)``).

Probabilistic Rand index
    The Rand index of two labelings is the fraction of unordered pixel pairs ``{p, q}``,
    ``p != q``, on which they agree (both joined or both separated):

    .. math:: RI(S, G) = 1 - \frac{\tfrac12\sum_i a_i^2 + \tfrac12\sum_j b_j^2 - \sum_{ij} n_{ij}^2}
              {\binom{N}{2}},

    with ``a_i = sum_j n_ij`` and ``b_j = sum_i n_ij``. ``PRI(S, {G_k}) = 1/K sum_k RI(S, G_k)``
    (the benchmark's estimator of the pairwise label-agreement probability). In [0, 1], 1 best.

Variation of information
    .. math:: VI(S, G) = H(S) + H(G) - 2 I(S, G),

    with entropies and mutual information of the empirical label distributions
    ``p_ij = n_ij / N`` in **bits** (base-2 logarithms, as ``match_segmentations2.m``); averaged
    over the annotators like the PRI. ``>= 0``, 0 best.

Labels
    Labels may be any integers (the human maps start at 1, ours may start at 0); every distinct
    label is one region -- label 0 is *not* treated as void. The official code ignores machine
    label 0 in the covering (its maps never contain it), so maps with labels ``>= 1`` give
    exactly the official numbers and maps containing 0 give what the official code gives after
    relabelling them to ``1..n``.

References
----------
P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour Detection and Hierarchical Image
Segmentation", IEEE TPAMI 33(5):898-916, 2011, Sec. 3.2 (region benchmarks).
M. Meila, "Comparing clusterings: an axiomatic view", ICML 2005 (variation of information).
R. Unnikrishnan, C. Pantofaru and M. Hebert, "Toward objective evaluation of image segmentation
algorithms", IEEE TPAMI 29(6), 2007 (probabilistic Rand index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._validation import as_label_map, as_label_maps

__all__ = [
    "RegionScores",
    "contingency_table",
    "probabilistic_rand_index",
    "region_scores",
    "relabel_contiguous",
    "segmentation_covering",
    "variation_of_information",
]

# Above this many (label, label) cells the contingency table is built sparsely.
_DENSE_TABLE_LIMIT = 1 << 22


def relabel_contiguous(labels: Any) -> tuple[np.ndarray, int]:
    """Map the distinct labels of an integer label map to ``0 .. n-1`` (in increasing order).

    The NumPy counterpart of :func:`matbackprop.data.relabel_contiguous` (the same operation on
    torch tensors; ``metrics`` and ``data`` are leaves and import nothing of each other); it
    also returns ``n``.

    Parameters
    ----------
    labels : array_like of int, shape (H, W)

    Returns
    -------
    relabelled : ndarray of int64, shape (H, W)
    n : int
        Number of distinct labels (regions).

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop.metrics import relabel_contiguous
    >>> relabel_contiguous(np.array([[7, 7, 3], [9, 3, 3]]))
    (array([[1, 1, 0],
           [2, 0, 0]]), 3)
    """
    lab = as_label_map(labels, "labels")
    return _relabel(lab)


def contingency_table(seg: Any, gt: Any) -> np.ndarray:
    """Dense contingency table ``n[i, j] = #{p : seg(p) = i-th label, gt(p) = j-th label}``.

    Parameters
    ----------
    seg, gt : array_like of int, shape (H, W)
        Label maps; rows/columns follow the sorted distinct labels of each map.

    Returns
    -------
    ndarray of int64, shape (n_seg_regions, n_gt_regions)

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop.metrics import contingency_table
    >>> contingency_table(np.array([[1, 1, 2]]), np.array([[5, 6, 6]]))
    array([[1, 1],
           [0, 1]])
    """
    s = as_label_map(seg, "seg")
    g = as_label_map(gt, "gt", s.shape)
    s, ns = _relabel(s)
    g, ng = _relabel(g)
    rows, cols, counts = _sparse_table(s, ns, g, ng)
    table = np.zeros((ns, ng), dtype=np.int64)
    table[rows, cols] = counts
    return table


@dataclass(frozen=True)
class RegionScores:
    """Region measures of one segmentation against ``K`` human segmentations.

    Attributes
    ----------
    cnt_r, sum_r : float
        Covering of the humans by the machine: ``sum |R| max O`` over all human regions of all
        annotators, and ``sum |R|`` (``= K * N``). Covering = ``cnt_r / sum_r``.
    cnt_p, sum_p : float
        Covering of the machine by the humans (each machine region's best overlap with any human
        region of any annotator); computed by the official code, not used in its summaries.
    gt_areas : ndarray of int64, shape (total human regions,)
        Areas of the human regions, annotators concatenated in order.
    gt_best_overlaps : ndarray of float64, shape (total human regions,)
        Best Jaccard overlap of each human region with a machine region (``matchesGT``).
    pri : float
        Probabilistic Rand index (mean Rand index over annotators).
    voi : float
        Variation of information in bits (mean over annotators).

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import region_scores
    >>> scores = region_scores(halves, [halves])
    >>> scores.pri, scores.voi, scores.cnt_r / scores.sum_r
    (1.0, 0.0, 1.0)
    """

    cnt_r: float
    sum_r: float
    cnt_p: float
    sum_p: float
    gt_areas: np.ndarray
    gt_best_overlaps: np.ndarray
    pri: float
    voi: float

    @property
    def covering(self) -> float:
        """Segmentation covering of the human segmentations, ``cnt_r / sum_r``."""
        return self.cnt_r / self.sum_r if self.sum_r > 0 else 0.0


def region_scores(seg: Any, gts: Sequence[Any]) -> RegionScores:
    r"""Covering, PRI and VoI of a segmentation against all human segmentations, in one pass.

    Parameters
    ----------
    seg : array_like of int, shape (H, W)
        Machine segmentation (any integer labels).
    gts : sequence of array_like of int, each (H, W), or ndarray (K, H, W)
        Human segmentations of the same image.

    Returns
    -------
    RegionScores

    Raises
    ------
    ValueError
        If a map is not 2-D integer-valued, shapes differ, or ``gts`` is empty.

    Notes
    -----
    Follows ``evaluation_reg_image.m`` and ``match_segmentations*.m`` for one threshold; see
    the module docstring for the formulas.

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import region_scores
    >>> scores = region_scores(np.ones((6, 6), int), [halves])
    >>> round(scores.pri, 3), round(scores.voi, 3)
    (0.486, 1.0)
    """
    s = as_label_map(seg, "seg")
    g = as_label_maps(gts, "gts", s.shape)
    return _region_scores(_relabel(s), [_relabel(x) for x in g])


def segmentation_covering(seg: Any, gts: Sequence[Any]) -> float:
    r"""Segmentation covering of the human segmentations by ``seg``.

    .. math:: \mathrm{Cov} = \frac{\sum_k \sum_{R \in G_k} |R| \max_{R' \in S} O(R, R')}
              {\sum_k \sum_{R \in G_k} |R|} = \frac1K \sum_k C(S \to G_k),
              \quad O(R, R') = \frac{|R \cap R'|}{|R \cup R'|}.

    Parameters
    ----------
    seg : array_like of int, shape (H, W)
        The segmentation ``S`` whose regions cover the human ones.
    gts : sequence of array_like of int, each (H, W)
        The human segmentations ``G_k``, each region weighted by its area.

    Returns
    -------
    float in [0, 1] (1 iff ``seg`` equals every human segmentation up to relabelling).

    Raises
    ------
    ValueError
        On non-2-D or non-integer maps, mismatched shapes or an empty ``gts``.

    References
    ----------
    Arbelaez et al., TPAMI 2011, Sec. 3.2, "Segmentation Covering".

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import segmentation_covering
    >>> segmentation_covering(halves, [halves])
    1.0
    >>> segmentation_covering(np.ones((6, 6), int), [halves])
    0.5
    """
    return region_scores(seg, gts).covering


def probabilistic_rand_index(seg: Any, gts: Sequence[Any]) -> float:
    r"""Probabilistic Rand index of ``seg`` against the human segmentations.

    .. math:: \mathrm{PRI} = \frac1K \sum_k \Big(1 - \frac{\tfrac12\sum_i a_i^2
              + \tfrac12\sum_j b_j^2 - \sum_{ij} n_{ij}^2}{\binom N2}\Big)

    over unordered pairs of distinct pixels (``n`` the contingency table of ``seg`` and ``G_k``,
    ``a``/``b`` its row/column sums).

    Parameters
    ----------
    seg : array_like of int, shape (H, W)
        The segmentation ``S``: which pixel pairs it joins.
    gts : sequence of array_like of int, each (H, W)
        The human segmentations ``G_k``, whose pair labels ``S`` should agree with.

    Returns
    -------
    float in [0, 1], higher is better.

    Raises
    ------
    ValueError
        On non-2-D or non-integer maps, mismatched shapes or an empty ``gts``.

    References
    ----------
    Arbelaez et al., TPAMI 2011, Sec. 3.2, "Probabilistic Rand Index"; Unnikrishnan et al. 2007.

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import probabilistic_rand_index
    >>> probabilistic_rand_index(halves, [halves])
    1.0
    >>> round(probabilistic_rand_index(np.ones((6, 6), int), [halves]), 3)
    0.486
    """
    return _mean_pair_measure(seg, gts, 0)


def _mean_pair_measure(seg: Any, gts: Sequence[Any], which: int) -> float:
    """Mean over the human maps of the RI (``which=0``) or the VoI (``which=1``) of ``seg``."""
    s = as_label_map(seg, "seg")
    g = as_label_maps(gts, "gts", s.shape)
    s_rel = _relabel(s)
    return float(np.mean([_pair_measures(s_rel, _relabel(x))[which] for x in g]))


def variation_of_information(seg: Any, gts: Sequence[Any]) -> float:
    r"""Variation of information (bits) of ``seg`` against the human segmentations.

    .. math:: \mathrm{VoI} = \frac1K \sum_k \big(H(S) + H(G_k) - 2 I(S, G_k)\big),

    with ``H(S) = -sum_i p_i log2 p_i`` and ``I(S, G) = sum_ij p_ij log2(p_ij / (p_i q_j))``.

    Parameters
    ----------
    seg : array_like of int, shape (H, W)
        The segmentation ``S``, a distribution over its labels.
    gts : sequence of array_like of int, each (H, W)
        The human segmentations ``G_k``, compared with ``S`` in bits.

    Returns
    -------
    float >= 0, lower is better.

    Raises
    ------
    ValueError
        On non-2-D or non-integer maps, mismatched shapes or an empty ``gts``.

    References
    ----------
    Arbelaez et al., TPAMI 2011, Sec. 3.2, "Variation of Information"; Meila 2005.

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import variation_of_information
    >>> variation_of_information(halves, [halves])
    0.0
    >>> round(variation_of_information(np.ones((6, 6), int), [halves]), 3)     # 1 bit missing
    1.0
    """
    return _mean_pair_measure(seg, gts, 1)


# --------------------------------------------------------------------------------------------
# internals (inputs already validated; labelings passed as (labels in 0..n-1, n))


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    lo, hi = int(labels.min()), int(labels.max())
    if hi - lo < 4 * labels.size + 1024:  # small range: a lookup table is faster than unique
        present = np.zeros(hi - lo + 1, dtype=bool)
        present[(labels - lo).ravel()] = True
        lut = np.cumsum(present) - 1
        return lut[labels - lo], int(present.sum())
    uniq, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int64), int(uniq.size)


def _sparse_table(
    a: np.ndarray, na: int, b: np.ndarray, nb: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-zero cells (row, col, count) of the contingency table of two relabelled maps."""
    key = a.ravel() * nb + b.ravel()
    if na * nb <= _DENSE_TABLE_LIMIT:
        counts = np.bincount(key, minlength=na * nb)
        cells = np.flatnonzero(counts)
        counts = counts[cells]
    else:
        cells, counts = np.unique(key, return_counts=True)
    return cells // nb, cells % nb, counts.astype(np.int64)


def _pair_measures(seg: tuple[np.ndarray, int], gt: tuple[np.ndarray, int]) -> tuple[float, float]:
    """(Rand index, variation of information in bits) of two relabelled maps."""
    s, ns = seg
    g, ng = gt
    rows, cols, n = _sparse_table(s, ns, g, ng)
    a = np.bincount(rows, weights=n, minlength=ns)
    b = np.bincount(cols, weights=n, minlength=ng)
    return _table_measures(rows, cols, n, a, b)


def _table_measures(
    rows: np.ndarray, cols: np.ndarray, n: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[float, float]:
    """Rand index and VoI (bits) from the non-zero cells of a table and its marginals."""
    total = float(n.sum())
    nf = n.astype(np.float64)
    if total > 1:
        disagree = 0.5 * np.dot(a, a) + 0.5 * np.dot(b, b) - np.dot(nf, nf)
        ri = 1.0 - disagree / (total * (total - 1.0) / 2.0)
    else:
        ri = 1.0
    pa = a[a > 0] / total
    pb = b[b > 0] / total
    h_a = -np.sum(pa * np.log2(pa))
    h_b = -np.sum(pb * np.log2(pb))
    # I = sum_ij p_ij log2(p_ij / (p_i q_j)),  p_ij / (p_i q_j) = n_ij N / (a_i b_j)
    mi = np.sum((nf / total) * np.log2(nf * total / (a[rows] * b[cols])))
    voi = max(h_a + h_b - 2.0 * mi, 0.0)
    return float(ri), float(voi)


def _region_scores(
    seg: tuple[np.ndarray, int], gts: Sequence[tuple[np.ndarray, int]]
) -> RegionScores:
    s, ns = seg
    seg_area = np.bincount(s.ravel(), minlength=ns).astype(np.float64)
    seg_best = np.zeros(ns, dtype=np.float64)
    areas, bests = [], []
    ri_sum = voi_sum = 0.0
    for g, ng in gts:
        rows, cols, n = _sparse_table(g, ng, s, ns)
        gt_area = np.bincount(g.ravel(), minlength=ng).astype(np.float64)
        jaccard = n / (gt_area[rows] + seg_area[cols] - n)
        best_gt = np.zeros(ng, dtype=np.float64)
        np.maximum.at(best_gt, rows, jaccard)
        np.maximum.at(seg_best, cols, jaccard)
        areas.append(gt_area.astype(np.int64))
        bests.append(best_gt)
        ri, voi = _table_measures(rows, cols, n, gt_area, seg_area)
        ri_sum += ri
        voi_sum += voi
    gt_areas = np.concatenate(areas)
    gt_best = np.concatenate(bests)
    k = len(gts)
    return RegionScores(
        cnt_r=float(np.dot(gt_areas, gt_best)),
        sum_r=float(gt_areas.sum()),
        cnt_p=float(np.dot(seg_area, seg_best)),
        sum_p=float(seg_area.sum()),
        gt_areas=gt_areas,
        gt_best_overlaps=gt_best,
        pri=ri_sum / k,
        voi=voi_sum / k,
    )
