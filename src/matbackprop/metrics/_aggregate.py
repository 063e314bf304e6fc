r"""Data-set summaries of the BSDS benchmark: ODS, OIS, AP and best covering.

Reproduces ``collect_eval_bdry.m`` and ``collect_eval_reg.m``. All images must have been
evaluated at the same thresholds.

Boundaries
    * dataset curve: counts are summed over images, ``R(t) = sum cntR / sum sumR``,
      ``P(t) = sum cntP / sum sumP``, ``F = 2PR / (P + R)``;
    * **ODS** (optimal dataset scale): the best F on the dataset curve, where the curve is
      linearly interpolated between consecutive thresholds at 100 points (``linspace(0, 1)``)
      -- threshold, R and P are interpolated together and F is recomputed;
    * **OIS** (optimal image scale): per image the threshold with the highest (non-interpolated)
      F (the first one on ties); its counts are summed over images, ``F(R_ois, P_ois)``;
    * per image: the interpolated best (threshold, R, P, F), as in ``eval_bdry_img.txt``;
    * **AP**: the precision interpolated linearly as a function of recall (recall values made
      unique, keeping the first occurrence) at recall ``0, 0.01, .., 1``, zero outside the
      observed recall range, summed and multiplied by 0.01.

Regions
    * covering curve ``Cov(t) = sum cntR / sum sumR`` (pixel-weighted over images and
      annotators); **ODS** = max over t (first on ties); **OIS** = per image the threshold of
      highest covering (the *last* on ties, as official), counts summed over images; **Best** =
      ``sum_images cnt_r_best / sum_images sumR`` where every human region takes its best
      overlap over all thresholds;
    * PRI and VoI curves are *means over images*; ODS = max PRI / min VoI over thresholds (first
      on ties); OIS = mean over images of each image's max PRI / min VoI.
    * per image (``eval_cover_img.txt``): first threshold of highest covering, that covering, and
      the covering of the machine segmentation by the humans at that threshold (the 4th column).

References
----------
P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour Detection and Hierarchical Image
Segmentation", IEEE TPAMI 33(5):898-916, 2011, Sec. 3 and Tables 1-3 (ODS, OIS, AP, Best).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ._benchmark import BoundaryCurve, ImageEvaluation, RegionCurve, _tolist
from ._boundaries import f_measure

__all__ = [
    "BoundaryBenchmark",
    "RegionBenchmark",
    "aggregate_boundary",
    "aggregate_region",
    "interpolated_best_f",
    "pr_curve_area",
]


def _dataclass_dict(obj: Any) -> dict[str, Any]:
    return {f.name: _tolist(getattr(obj, f.name)) for f in fields(obj)}


def interpolated_best_f(
    thresholds: Any, recall: Any, precision: Any
) -> tuple[float, float, float, float]:
    """Best F on a PR curve interpolated between thresholds (``maxF`` of the benchmark).

    Between consecutive thresholds ``i-1, i`` the points ``x(d) = d x_i + (1-d) x_{i-1}`` for
    ``d`` in ``linspace(0, 1, 100)`` are visited (``x`` = threshold, R, P); the first strict
    maximum of ``F(R(d), P(d))`` is kept, starting from the first threshold.

    Parameters
    ----------
    thresholds, recall, precision : array_like, shape (T,)

    Returns
    -------
    (threshold, recall, precision, f) : tuple of float

    Raises
    ------
    ValueError
        On empty or mismatched arrays, or non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop.metrics import interpolated_best_f
    >>> thresholds = np.array([0.25, 0.5, 0.75])
    >>> recall, precision = np.array([0.9, 0.7, 0.3]), np.array([0.5, 0.8, 0.9])
    >>> [round(float(v), 3) for v in interpolated_best_f(thresholds, recall, precision)]
    [0.5, 0.7, 0.8, 0.747]
    """
    t = _as_curve(thresholds, "thresholds")
    r = _as_curve(recall, "recall", t.size)
    p = _as_curve(precision, "precision", t.size)
    best = (float(t[0]), float(r[0]), float(p[0]), float(f_measure(r[0], p[0])))
    if t.size == 1:
        return best
    d = np.linspace(0.0, 1.0, 100)
    ti = t[1:, None] * d + t[:-1, None] * (1 - d)
    ri = r[1:, None] * d + r[:-1, None] * (1 - d)
    pi = p[1:, None] * d + p[:-1, None] * (1 - d)
    fi = f_measure(ri, pi).ravel()
    k = int(np.argmax(fi))  # first maximum in visiting order
    if fi[k] > best[3]:
        best = (float(ti.ravel()[k]), float(ri.ravel()[k]), float(pi.ravel()[k]), float(fi[k]))
    return best


def pr_curve_area(recall: Any, precision: Any) -> float:
    """Average precision of a PR curve as the benchmark computes it (``Area_PR``).

    ``P`` is interpolated linearly in ``R`` (unique recall values, first occurrence kept) at
    ``R = 0, 0.01, .., 1``; points outside ``[min R, max R]`` count 0; the area is the sum
    times 0.01. A curve with fewer than two distinct recall values has area 0.

    Parameters
    ----------
    recall, precision : array_like, shape (T,)

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop.metrics import pr_curve_area
    >>> round(pr_curve_area(np.array([0.9, 0.7, 0.3]), np.array([0.5, 0.8, 0.9])), 3)
    0.477
    """
    r = _as_curve(recall, "recall")
    p = _as_curve(precision, "precision", r.size)
    ru, first = np.unique(r, return_index=True)
    if ru.size < 2:
        return 0.0
    pu = p[first]
    grid = np.arange(101) * 0.01
    vals = np.interp(grid, ru, pu)
    vals[(grid < ru[0]) | (grid > ru[-1])] = 0.0
    return float(vals.sum() * 0.01)


@dataclass(frozen=True)
class BoundaryBenchmark:
    """Data-set boundary benchmark (``eval_bdry.txt``, ``eval_bdry_thr.txt``, ``_img.txt``).

    Attributes
    ----------
    thresholds, recall, precision, f : ndarray, shape (T,)
        Data-set PR curve.
    ods_threshold, ods_recall, ods_precision, ods_f : float
        Optimal data-set scale (interpolated).
    ois_recall, ois_precision, ois_f : float
        Optimal image scale.
    ap : float
        Area under the interpolated PR curve.
    image_threshold, image_recall, image_precision, image_f : ndarray, shape (N,)
        Per-image interpolated best.
    names : list of (str or None), length N

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import aggregate_boundary, evaluate_segmentation
    >>> result = aggregate_boundary([evaluate_segmentation(halves, [halves])])
    >>> round(result.ods_f, 3), round(result.ois_f, 3)
    (1.0, 1.0)
    """

    thresholds: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    f: np.ndarray
    ods_threshold: float
    ods_recall: float
    ods_precision: float
    ods_f: float
    ois_recall: float
    ois_precision: float
    ois_f: float
    ap: float
    image_threshold: np.ndarray
    image_recall: np.ndarray
    image_precision: np.ndarray
    image_f: np.ndarray
    names: list[str | None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (arrays as lists)."""
        return _dataclass_dict(self)


@dataclass(frozen=True)
class RegionBenchmark:
    """Data-set region benchmark (``eval_cover*.txt``, ``eval_RI_VOI*.txt``).

    Attributes
    ----------
    thresholds, covering, pri, voi : ndarray, shape (T,)
        Data-set curves (covering pixel-weighted; PRI/VoI image means).
    covering_ods_threshold, covering_ods, covering_ois, covering_best : float
    pri_ods_threshold, pri_ods, pri_ois : float
    voi_ods_threshold, voi_ods, voi_ois : float
    image_threshold, image_covering, image_covering_precision : ndarray, shape (N,)
        Per image: first threshold of highest covering, that covering, and the covering of the
        machine segmentation by the humans there (``eval_cover_img.txt``).
    image_best_covering, image_pri_ois, image_voi_ois : ndarray, shape (N,)
        Per image: best covering over thresholds, max PRI, min VoI.
    names : list of (str or None), length N

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import aggregate_region, evaluate_segmentation
    >>> everything = np.ones((6, 6), int)
    >>> result = aggregate_region([evaluate_segmentation(everything, [halves])])
    >>> round(result.covering_ods, 3), round(result.pri_ods, 3), round(result.voi_ods, 3)
    (0.5, 0.486, 1.0)
    """

    thresholds: np.ndarray
    covering: np.ndarray
    pri: np.ndarray
    voi: np.ndarray
    covering_ods_threshold: float
    covering_ods: float
    covering_ois: float
    covering_best: float
    pri_ods_threshold: float
    pri_ods: float
    pri_ois: float
    voi_ods_threshold: float
    voi_ods: float
    voi_ois: float
    image_threshold: np.ndarray
    image_covering: np.ndarray
    image_covering_precision: np.ndarray
    image_best_covering: np.ndarray
    image_pri_ois: np.ndarray
    image_voi_ois: np.ndarray
    names: list[str | None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field (arrays as lists)."""
        return _dataclass_dict(self)


def aggregate_boundary(results: Sequence[ImageEvaluation | BoundaryCurve]) -> BoundaryBenchmark:
    """Summarise per-image boundary curves over a data set (``collect_eval_bdry.m``).

    Parameters
    ----------
    results : sequence of ImageEvaluation or BoundaryCurve, length N >= 1
        Per-image results, all at the same thresholds.

    Returns
    -------
    BoundaryBenchmark

    Raises
    ------
    ValueError
        If ``results`` is empty, an item has no boundary part, or thresholds differ.

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import aggregate_boundary, evaluate_segmentation
    >>> thirds = np.repeat([[1, 1, 2, 2, 3, 3]], 6, axis=0)
    >>> images = [evaluate_segmentation(halves, [halves]), evaluate_segmentation(thirds, [halves])]
    >>> result = aggregate_boundary(images)
    >>> round(result.ods_recall, 3), round(result.ods_precision, 3)
    (0.5, 0.333)
    """
    curves, names = _collect(results, "boundary", BoundaryCurve)
    thr = curves[0].thresholds
    counts = np.stack([np.stack([c.cnt_r, c.sum_r, c.cnt_p, c.sum_p]) for c in curves])
    counts = counts.astype(np.float64)  # (N, 4, T)
    n_img = len(curves)
    img = np.zeros((n_img, 4))
    ois = np.zeros(4)
    for k in range(n_img):
        r, p = _ratio(counts[k, 0], counts[k, 1]), _ratio(counts[k, 2], counts[k, 3])
        img[k] = interpolated_best_f(thr, r, p)
        best = int(np.argmax(f_measure(r, p)))  # first maximum
        ois += counts[k, :, best]
    tot = counts.sum(axis=0)
    recall, precision = _ratio(tot[0], tot[1]), _ratio(tot[2], tot[3])
    f = np.asarray(f_measure(recall, precision))
    ods = interpolated_best_f(thr, recall, precision)
    ois_r, ois_p = _ratio(ois[0], ois[1]), _ratio(ois[2], ois[3])
    return BoundaryBenchmark(
        thresholds=thr.copy(),
        recall=recall,
        precision=precision,
        f=f,
        ods_threshold=ods[0],
        ods_recall=ods[1],
        ods_precision=ods[2],
        ods_f=ods[3],
        ois_recall=float(ois_r),
        ois_precision=float(ois_p),
        ois_f=float(f_measure(ois_r, ois_p)),
        ap=pr_curve_area(recall, precision),
        image_threshold=img[:, 0],
        image_recall=img[:, 1],
        image_precision=img[:, 2],
        image_f=img[:, 3],
        names=names,
    )


def aggregate_region(results: Sequence[ImageEvaluation | RegionCurve]) -> RegionBenchmark:
    """Summarise per-image region curves over a data set (``collect_eval_reg.m``).

    Parameters
    ----------
    results : sequence of ImageEvaluation or RegionCurve, length N >= 1
        Per-image results, all at the same thresholds.

    Returns
    -------
    RegionBenchmark

    Raises
    ------
    ValueError
        If ``results`` is empty, an item has no region part, or thresholds differ.

    Examples
    --------
    >>> import numpy as np
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 6, axis=0)          # a human: left | right
    >>> from matbackprop.metrics import aggregate_region, evaluate_segmentation
    >>> thirds = np.repeat([[1, 1, 2, 2, 3, 3]], 6, axis=0)
    >>> images = [evaluate_segmentation(halves, [halves]), evaluate_segmentation(thirds, [halves])]
    >>> round(aggregate_region(images).covering_ods, 3)
    0.833
    """
    curves, names = _collect(results, "region", RegionCurve)
    thr = curves[0].thresholds
    n_img = len(curves)
    cnt_r = np.stack([c.cnt_r for c in curves])  # (N, T)
    sum_r = np.stack([c.sum_r for c in curves])
    pri = np.stack([c.pri for c in curves])
    voi = np.stack([c.voi for c in curves])
    img_thr = np.zeros(n_img)
    img_cov = np.zeros(n_img)
    img_prec = np.zeros(n_img)
    ois_cnt = ois_sum = 0.0
    for k, c in enumerate(curves):
        cov = c.covering
        first = int(np.argmax(cov))
        img_thr[k], img_cov[k] = thr[first], cov[first]
        img_prec[k] = _ratio(c.cnt_p[first], c.sum_p[first])
        last = int(np.flatnonzero(cov == cov.max())[-1])
        ois_cnt += c.cnt_r[last]
        ois_sum += c.sum_r[last]
    covering = _ratio(cnt_r.sum(0), sum_r.sum(0))
    i_cov = int(np.argmax(covering))
    mean_pri = pri.mean(0)
    mean_voi = voi.mean(0)
    i_pri = int(np.argmax(mean_pri))
    i_voi = int(np.argmin(mean_voi))
    best_total = sum(c.cnt_r_best for c in curves)
    return RegionBenchmark(
        thresholds=thr.copy(),
        covering=covering,
        pri=mean_pri,
        voi=mean_voi,
        covering_ods_threshold=float(thr[i_cov]),
        covering_ods=float(covering[i_cov]),
        covering_ois=float(_ratio(ois_cnt, ois_sum)),
        covering_best=float(_ratio(best_total, sum_r[:, 0].sum())),
        pri_ods_threshold=float(thr[i_pri]),
        pri_ods=float(mean_pri[i_pri]),
        pri_ois=float(pri.max(1).mean()),
        voi_ods_threshold=float(thr[i_voi]),
        voi_ods=float(mean_voi[i_voi]),
        voi_ois=float(voi.min(1).mean()),
        image_threshold=img_thr,
        image_covering=img_cov,
        image_covering_precision=img_prec,
        image_best_covering=np.array([c.best_covering for c in curves]),
        image_pri_ois=pri.max(1),
        image_voi_ois=voi.min(1),
        names=names,
    )


# --------------------------------------------------------------------------------------------


def _ratio(num: Any, den: Any) -> Any:
    """``num / den`` with 0 where ``den == 0`` (the benchmark's ``cnt ./ (sum + (sum==0))``)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = num / np.where(den == 0, 1.0, den)
    return float(out) if out.ndim == 0 else out


def _as_curve(x: Any, name: str, size: int | None = None) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`{name}` must have shape (T,) with T >= 1, got {tuple(arr.shape)}")
    if size is not None and arr.size != size:
        raise ValueError(f"`{name}` must have shape ({size},), got {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite, got NaN or infinite values")
    return arr


def _collect(results: Sequence[Any], part: str, curve_type: type) -> tuple[list[Any], list]:
    if isinstance(results, ImageEvaluation | curve_type) or not isinstance(results, Sequence):
        raise ValueError(
            f"`results` must be a sequence of ImageEvaluation or {curve_type.__name__}, "
            f"got {type(results).__name__}"
        )
    if len(results) == 0:
        raise ValueError("`results` must contain at least one image, got an empty sequence")
    curves, names = [], []
    for k, item in enumerate(results):
        if isinstance(item, ImageEvaluation):
            curve = getattr(item, part)
            if curve is None:
                raise ValueError(f"`results[{k}]` has no {part} evaluation (it was not computed)")
            names.append(item.name)
        elif isinstance(item, curve_type):
            curve = item
            names.append(None)
        else:
            raise ValueError(
                f"`results[{k}]` must be an ImageEvaluation or {curve_type.__name__}, "
                f"got {type(item).__name__}"
            )
        curves.append(curve)
    thr = curves[0].thresholds
    for k, c in enumerate(curves):
        if c.thresholds.shape != thr.shape or not np.allclose(c.thresholds, thr):
            raise ValueError(
                f"all images must share the thresholds of `results[0]` ({thr.size} values), "
                f"`results[{k}]` has {c.thresholds.size} different ones"
            )
    return curves, names
