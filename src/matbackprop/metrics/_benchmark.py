"""Per-image BSDS evaluation of a hierarchy, a ucm2 or a soft boundary map across thresholds.

One image is evaluated against all its human segmentations at a sequence of thresholds, as the
official ``evaluation_bdry_image.m`` and ``evaluation_reg_image.m`` do; the resulting per-image
curves are combined over a data set by :mod:`matbackprop.metrics._aggregate`.

Inputs and thresholds (as the official benchmark)
    * hierarchy (the official ``segs`` cell): a list of label maps, evaluated in the given order;
      thresholds are ``1 .. n``. Our models produce coarse-to-fine lists (normalized cuts with
      k = 2..K); a single segmentation is a one-level hierarchy.
    * ucm2 (double-size ultrametric contour map, shape ``(2H+1, 2W+1)``, values in [0, 1]):
      thresholds ``linspace(1/(n+1), 1 - 1/(n+1), n)``; the boundary map at threshold ``t`` is
      ``ucm2[2::2, 2::2] >= t`` (MATLAB ``ucm2(3:2:end, 3:2:end)``), the regions are the
      8-connected components of ``ucm2 <= t`` (``bwlabel``) sampled at ``[1::2, 1::2]``
      (MATLAB ``(2:2:end, 2:2:end)``).
    * soft boundary map ``pb`` in [0, 1] (boundary metrics only): same thresholds, boundary map
      ``pb >= t``.

Machine boundary maps are thinned (``bwmorph 'thin' inf``) before matching, segmentations are
turned into boundaries with ``seg2bdry``; see :mod:`matbackprop.metrics._boundaries`.

References
----------
P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour Detection and Hierarchical Image
Segmentation", IEEE TPAMI 33(5):898-916, 2011, Sec. 3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._boundaries import (
    DEFAULT_MAX_DIST,
    _boundary_counts,
    _seg2bdry,
    _thin,
    f_measure,
    resolve_human_boundaries,
)
from ._regions import _region_scores, _relabel
from ._validation import (
    as_boundary_map,
    as_label_map,
    as_label_maps,
    check_max_dist,
    check_nthresh,
    to_numpy,
)

__all__ = [
    "BoundaryCurve",
    "ImageEvaluation",
    "RegionCurve",
    "evaluate_boundary_map",
    "evaluate_hierarchy",
    "evaluate_segmentation",
    "evaluate_ucm2",
    "ucm_thresholds",
]


def _tolist(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


@dataclass(frozen=True)
class BoundaryCurve:
    """Boundary counts of one image at each threshold (the official ``*_ev1.txt``).

    Attributes
    ----------
    thresholds : ndarray of float64, shape (T,)
    cnt_r, sum_r, cnt_p, sum_p : ndarray of int64, shape (T,)
        See :class:`~matbackprop.metrics.BoundaryCounts`.
    """

    thresholds: np.ndarray
    cnt_r: np.ndarray
    sum_r: np.ndarray
    cnt_p: np.ndarray
    sum_p: np.ndarray

    @property
    def recall(self) -> np.ndarray:
        return self.cnt_r / np.where(self.sum_r == 0, 1, self.sum_r)

    @property
    def precision(self) -> np.ndarray:
        return self.cnt_p / np.where(self.sum_p == 0, 1, self.sum_p)

    @property
    def f(self) -> np.ndarray:
        return f_measure(self.recall, self.precision)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: thresholds, counts and the recall/precision/F curves."""
        return {
            "thresholds": _tolist(self.thresholds),
            "cnt_r": _tolist(self.cnt_r),
            "sum_r": _tolist(self.sum_r),
            "cnt_p": _tolist(self.cnt_p),
            "sum_p": _tolist(self.sum_p),
            "recall": _tolist(self.recall),
            "precision": _tolist(self.precision),
            "f": _tolist(np.asarray(self.f)),
        }


@dataclass(frozen=True)
class RegionCurve:
    """Region measures of one image at each threshold (the official ``*_ev2/3/4.txt``).

    Attributes
    ----------
    thresholds : ndarray of float64, shape (T,)
    cnt_r, sum_r : ndarray of float64, shape (T,)
        Covering of the humans by the machine: ``covering = cnt_r / sum_r``.
    cnt_p, sum_p : ndarray of float64, shape (T,)
        Covering of the machine by the humans.
    cnt_r_best : float
        ``sum |R| max_t O_t(R)`` over human regions: each human region's best overlap over all
        thresholds (the official "best" covering is ``cnt_r_best / sum_r[0]``).
    pri, voi : ndarray of float64, shape (T,)
        Probabilistic Rand index and variation of information (bits).
    """

    thresholds: np.ndarray
    cnt_r: np.ndarray
    sum_r: np.ndarray
    cnt_p: np.ndarray
    sum_p: np.ndarray
    cnt_r_best: float
    pri: np.ndarray
    voi: np.ndarray

    @property
    def covering(self) -> np.ndarray:
        return self.cnt_r / np.where(self.sum_r == 0, 1, self.sum_r)

    @property
    def best_covering(self) -> float:
        return float(self.cnt_r_best / self.sum_r[0]) if self.sum_r[0] > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: thresholds, covering counts and curves, PRI and VoI curves."""
        return {
            "thresholds": _tolist(self.thresholds),
            "cnt_r": _tolist(self.cnt_r),
            "sum_r": _tolist(self.sum_r),
            "cnt_p": _tolist(self.cnt_p),
            "sum_p": _tolist(self.sum_p),
            "cnt_r_best": float(self.cnt_r_best),
            "covering": _tolist(self.covering),
            "best_covering": self.best_covering,
            "pri": _tolist(self.pri),
            "voi": _tolist(self.voi),
        }


@dataclass(frozen=True)
class ImageEvaluation:
    """Boundary and/or region curves of one image (``None`` for a part not computed)."""

    thresholds: np.ndarray
    boundary: BoundaryCurve | None
    region: RegionCurve | None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "thresholds": _tolist(self.thresholds),
            "boundary": None if self.boundary is None else self.boundary.to_dict(),
            "region": None if self.region is None else self.region.to_dict(),
        }


def ucm_thresholds(nthresh: int) -> np.ndarray:
    """The benchmark's thresholds for soft maps: ``linspace(1/(n+1), 1 - 1/(n+1), n)``."""
    n = check_nthresh(nthresh)
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


def evaluate_hierarchy(
    segs: Sequence[Any] | Any,
    gts: Sequence[Any] | None,
    *,
    boundaries: bool = True,
    regions: bool = True,
    max_dist: float = DEFAULT_MAX_DIST,
    thin: bool = True,
    gt_boundaries: Sequence[Any] | None = None,
    name: str | None = None,
) -> ImageEvaluation:
    """Evaluate a list of segmentations (the official ``segs`` cell) of one image.

    Parameters
    ----------
    segs : sequence of array_like of int, each (H, W); or ndarray (T, H, W); or one (H, W) map
        Segmentations at thresholds ``1 .. T``, in the given order (e.g. coarse to fine). An
        object array (the ``segs`` cell read by :func:`scipy.io.loadmat`) is accepted too.
    gts : sequence of array_like of int, each (H, W)
        Human segmentations (needed for region metrics, and for boundary metrics unless
        ``gt_boundaries`` is given).
    boundaries, regions : bool, default True
        Which parts to compute (official ``boundaryBench`` / ``regionBench`` / ``allBench``).
    max_dist : float, default 0.0075
        Boundary matching tolerance, fraction of the image diagonal.
    thin : bool, default True
        Thin the machine boundary maps (official ``thinpb``).
    gt_boundaries : sequence of array_like, optional
        Human boundary maps to use instead of ``thin(seg2bdry(gt))`` (identical for BSDS500).
    name : str, optional
        Image identifier stored in the result.

    Returns
    -------
    ImageEvaluation

    Raises
    ------
    ValueError
        On invalid or mismatched maps, empty ``segs``/``gts``, or when nothing is requested.
    """
    _check_parts(boundaries, regions)
    if _is_single_map(segs):
        segs = [segs]
    levels = as_label_maps(segs, "segs")
    thresholds = np.arange(1, len(levels) + 1, dtype=np.float64)
    shape = levels[0].shape
    return _evaluate(
        thresholds,
        shape,
        bmap_at=lambda t: _seg2bdry(levels[t]),
        seg_at=lambda t: _relabel(levels[t]),
        gts=gts,
        boundaries=boundaries,
        regions=regions,
        max_dist=max_dist,
        thin=thin,
        gt_boundaries=gt_boundaries,
        name=name,
    )


def evaluate_segmentation(
    seg: Any,
    gts: Sequence[Any] | None,
    **kwargs: Any,
) -> ImageEvaluation:
    """Evaluate a single segmentation (a one-level hierarchy, threshold 1).

    Same keyword arguments as :func:`evaluate_hierarchy`.
    """
    return evaluate_hierarchy([as_label_map(seg, "seg")], gts, **kwargs)


def evaluate_ucm2(
    ucm2: Any,
    gts: Sequence[Any] | None,
    nthresh: int = 99,
    *,
    boundaries: bool = True,
    regions: bool = True,
    max_dist: float = DEFAULT_MAX_DIST,
    thin: bool = True,
    gt_boundaries: Sequence[Any] | None = None,
    name: str | None = None,
) -> ImageEvaluation:
    """Evaluate a double-size ultrametric contour map at ``nthresh`` thresholds.

    Parameters
    ----------
    ucm2 : array_like of float, shape (2H+1, 2W+1)
        Ultrametric contour map in the ``doubleSize`` format, values in [0, 1].
    gts : sequence of array_like of int, each (H, W)
        Human segmentations.
    nthresh : int, default 99
        Number of thresholds, ``linspace(1/(n+1), 1 - 1/(n+1), n)``.
    boundaries, regions, max_dist, thin, gt_boundaries, name
        As in :func:`evaluate_hierarchy`.

    Returns
    -------
    ImageEvaluation

    Raises
    ------
    ValueError
        If ``ucm2`` is not a finite 2-D map in [0, 1] of odd size ``(2H+1, 2W+1)`` with
        ``(H, W)`` the size of the human maps, or on other invalid inputs.

    Notes
    -----
    Thresholds between the same two distinct values of ``ucm2`` give the same boundary map and
    regions; they are evaluated once (exact). A ucm with ``L`` distinct levels thus costs at most
    ``2L + 1`` evaluations, however large ``nthresh`` is.
    """
    from scipy import ndimage

    _check_parts(boundaries, regions)
    ucm = as_boundary_map(ucm2, "ucm2")
    if ucm.shape[0] % 2 == 0 or ucm.shape[1] % 2 == 0 or min(ucm.shape) < 3:
        raise ValueError(
            f"`ucm2` must have the double-size shape (2H+1, 2W+1), got {tuple(ucm.shape)}"
        )
    shape = ((ucm.shape[0] - 1) // 2, (ucm.shape[1] - 1) // 2)
    thresholds = ucm_thresholds(nthresh)
    pb = ucm[2::2, 2::2]
    eight = np.ones((3, 3), dtype=bool)

    def seg_at(t: int) -> tuple[np.ndarray, int]:
        labels, n = ndimage.label(ucm <= thresholds[t], structure=eight)
        return _relabel(labels[1::2, 1::2].astype(np.int64))

    return _evaluate(
        thresholds,
        shape,
        bmap_at=lambda t: pb >= thresholds[t],
        seg_at=seg_at,
        gts=gts,
        boundaries=boundaries,
        regions=regions,
        max_dist=max_dist,
        thin=thin,
        gt_boundaries=gt_boundaries,
        name=name,
        representative=_same_map_representatives(ucm, thresholds),
    )


def _same_map_representatives(ucm: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For each threshold, the first threshold that gives the same boundary map and regions.

    ``ucm >= t`` and ``ucm <= t`` depend on ``t`` only through how many of the map's distinct
    values lie at or above / strictly above ``t``; thresholds with the same two counts give
    identical inputs to the benchmark, which is then run once for them (an exact shortcut: a
    ucm with ``L`` distinct levels costs ``L + 1`` evaluations, whatever ``nthresh``).
    """
    values = np.unique(ucm)
    at_least = np.searchsorted(values, thresholds, side="left")
    above = np.searchsorted(values, thresholds, side="right")
    keys = at_least * (values.size + 1) + above
    _, first = np.unique(keys, return_index=True)
    lookup = dict(zip(keys[first].tolist(), first.tolist(), strict=True))
    return np.array([lookup[k] for k in keys.tolist()], dtype=np.int64)


def evaluate_boundary_map(
    pb: Any,
    gts: Sequence[Any] | None,
    nthresh: int = 99,
    *,
    max_dist: float = DEFAULT_MAX_DIST,
    thin: bool = True,
    gt_boundaries: Sequence[Any] | None = None,
    name: str | None = None,
) -> ImageEvaluation:
    """Boundary evaluation of a soft boundary probability map at ``nthresh`` thresholds.

    Parameters
    ----------
    pb : array_like of float, shape (H, W)
        Boundary strength in [0, 1] (8-bit images: divide by 255 first, as the official code).
    gts : sequence of array_like of int, each (H, W), or None
        Human segmentations (ignored when ``gt_boundaries`` is given).
    nthresh : int, default 99
        Thresholds ``linspace(1/(n+1), 1 - 1/(n+1), n)``; the map at ``t`` is ``pb >= t``.
    max_dist, thin, gt_boundaries, name
        As in :func:`evaluate_hierarchy`.

    Returns
    -------
    ImageEvaluation
        With ``region=None``.

    Raises
    ------
    ValueError
        If ``pb`` is not a finite 2-D map in [0, 1] (NaN included), or on invalid human maps.
    """
    soft = as_boundary_map(pb, "pb")
    thresholds = ucm_thresholds(nthresh)
    return _evaluate(
        thresholds,
        soft.shape,
        bmap_at=lambda t: soft >= thresholds[t],
        seg_at=None,
        gts=gts,
        boundaries=True,
        regions=False,
        max_dist=max_dist,
        thin=thin,
        gt_boundaries=gt_boundaries,
        name=name,
    )


# --------------------------------------------------------------------------------------------


def _check_parts(boundaries: bool, regions: bool) -> None:
    if not (boundaries or regions):
        raise ValueError("at least one of `boundaries` and `regions` must be True, got neither")


def _is_single_map(x: Any) -> bool:
    if isinstance(x, list | tuple) or (isinstance(x, np.ndarray) and x.dtype == object):
        return False
    return to_numpy(x).ndim == 2


def _evaluate(
    thresholds: np.ndarray,
    shape: tuple[int, ...],
    *,
    bmap_at: Any,
    seg_at: Any,
    gts: Sequence[Any] | None,
    boundaries: bool,
    regions: bool,
    max_dist: float,
    thin: bool,
    gt_boundaries: Sequence[Any] | None,
    name: str | None,
    representative: np.ndarray | None = None,
) -> ImageEvaluation:
    """Curves at every threshold; ``representative[t]`` (optional) names an earlier or equal
    threshold whose maps are identical to those at ``t``, whose results are then reused."""
    md = check_max_dist(max_dist)
    rep = np.arange(thresholds.size) if representative is None else representative
    n = thresholds.size
    boundary = region = None
    gt_maps = None
    if regions or (boundaries and gt_boundaries is None):
        if gts is None:
            raise ValueError("`gts` (human segmentations) must be given, got None")
        gt_maps = as_label_maps(gts, "gts", shape)
    if boundaries:
        if gt_boundaries is not None:
            humans = resolve_human_boundaries(None, gt_boundaries, shape)
        else:
            humans = [_thin(_seg2bdry(g)) for g in gt_maps]
        counts = np.zeros((4, n), dtype=np.int64)
        for t in range(n):
            if rep[t] != t:
                counts[:, t] = counts[:, rep[t]]
                continue
            b = bmap_at(t)
            if thin:
                b = _thin(b)
            c = _boundary_counts(b, humans, md)
            counts[:, t] = (c.cnt_r, c.sum_r, c.cnt_p, c.sum_p)
        boundary = BoundaryCurve(thresholds.copy(), *counts)
    if regions:
        gt_rel = [_relabel(g) for g in gt_maps]
        cover = np.zeros((4, n))
        pri = np.zeros(n)
        voi = np.zeros(n)
        best = None
        areas = None
        for t in range(n):
            if rep[t] != t:
                cover[:, t] = cover[:, rep[t]]
                pri[t], voi[t] = pri[rep[t]], voi[rep[t]]
                continue
            sc = _region_scores(seg_at(t), gt_rel)
            cover[:, t] = (sc.cnt_r, sc.sum_r, sc.cnt_p, sc.sum_p)
            pri[t], voi[t] = sc.pri, sc.voi
            areas = sc.gt_areas
            best = sc.gt_best_overlaps if best is None else np.maximum(best, sc.gt_best_overlaps)
        region = RegionCurve(
            thresholds.copy(), *cover, cnt_r_best=float(np.dot(areas, best)), pri=pri, voi=voi
        )
    return ImageEvaluation(
        thresholds=thresholds.copy(), boundary=boundary, region=region, name=name
    )
