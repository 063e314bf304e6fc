r"""Paired bootstrap confidence intervals for the difference of two classifiers.

Two methods ``a`` and ``b`` are scored on the same ``N`` samples (e.g. the val regions), each
sample ``i`` with a correctness ``x_i, y_i \in [0, 1]`` (0/1 for one model; the mean over the
seeds for several). The statistic is the difference

* of accuracy, :math:`\Delta = \sum_i (x_i - y_i) / N`, or
* of mean class accuracy, :math:`\Delta = \frac{1}{|K|} \sum_{k \in K}
  \frac{\sum_{i : t_i = k} (x_i - y_i)}{\#\{i : t_i = k\}}` over the classes ``K`` present
  (the targets ``t``).

**Paired**: both methods are resampled together (the same samples), so that what they share
(an easy or hard sample) cancels in ``Δ``.

**Clustered**: samples that belong together, e.g. the regions of one image (its lighting,
clutter and scale are shared, so their errors are correlated), are resampled as whole
clusters: each bootstrap draw takes ``G`` clusters with replacement out of the ``G`` clusters
and keeps all of their samples (the cluster bootstrap; Davison & Hinkley 1997, Sec. 3.8;
Field & Welsh 2007). A bootstrap over samples would treat correlated regions as independent
and give intervals that are too narrow. Without ``clusters`` every sample is its own cluster.

The interval is the percentile interval (Efron & Tibshirani 1993, Ch. 13) of ``Δ`` over
``n_resamples`` draws: its ``(1 ∓ confidence)/2`` quantiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from matbackprop.validation import check_number

from ._validation import to_numpy

__all__ = ["BootstrapInterval", "paired_bootstrap_ci"]

STATISTICS = ("accuracy", "mean_class_accuracy")
_CELLS_PER_CHUNK = 1 << 22  # resamples x clusters held at once


@dataclass(frozen=True)
class BootstrapInterval:
    """A paired bootstrap estimate of ``statistic(a) − statistic(b)``.

    Attributes
    ----------
    difference : float
        ``Δ`` on the data itself.
    low, high : float
        The percentile interval of ``Δ`` at level ``confidence``.
    standard_error : float
        Standard deviation of ``Δ`` over the resamples.
    confidence : float
    n_resamples : int
    n_clusters : int
        Clusters resampled (images; samples when there were no clusters).
    n_samples : int
    statistic : str
        ``"accuracy"`` or ``"mean_class_accuracy"``.

    Examples
    --------
    >>> import numpy as np
    >>> from matbackprop.metrics import paired_bootstrap_ci
    >>> correct_a = np.ones(40, bool)                       # method a: every sample right
    >>> correct_b = np.arange(40) % 5 != 0                  # method b: wrong on every 5th
    >>> ci = paired_bootstrap_ci(correct_a, correct_b, clusters=np.arange(40) // 4, n_resamples=500)
    >>> round(ci.difference, 3), ci.n_clusters, ci.confidence
    (0.2, 10, 0.95)
    >>> bool(ci.low <= ci.difference <= ci.high)
    True
    """

    difference: float
    low: float
    high: float
    standard_error: float
    confidence: float
    n_resamples: int
    n_clusters: int
    n_samples: int
    statistic: str

    @property
    def excludes_zero(self) -> bool:
        """Whether 0 lies outside ``[low, high]``."""
        return self.low > 0 or self.high < 0


def paired_bootstrap_ci(
    correct_a: Any,
    correct_b: Any,
    *,
    clusters: Any = None,
    labels: Any = None,
    statistic: str = "accuracy",
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int | None = 0,
) -> BootstrapInterval:
    """Paired (cluster) bootstrap percentile interval of ``statistic(a) − statistic(b)``.

    Parameters
    ----------
    correct_a, correct_b : array_like, shape (N,) or (S, N)
        Per-sample correctness in ``[0, 1]`` of the two methods on the same ``N`` samples
        (bool, 0/1 or fractions). A 2-D input holds ``S`` runs (e.g. training seeds) and is
        averaged over them first: the interval is then that of the seed-averaged difference.
        ``a`` and ``b`` may have different ``S``.
    clusters : array_like, shape (N,), optional
        A cluster id per sample (e.g. the image of each region); clusters are resampled
        whole. None: every sample is its own cluster.
    labels : array_like of int, shape (N,), optional
        The target class of each sample; needed for ``statistic="mean_class_accuracy"``.
    statistic : {"accuracy", "mean_class_accuracy"}
        Mean class accuracy averages over the classes present in each resample.
    n_resamples : int
        Bootstrap draws (``>= 1``).
    confidence : float
        Level of the interval, in ``(0, 1)``.
    seed : int, optional
        Seed of the draws (``numpy.random.default_rng``); None: fresh entropy.

    Returns
    -------
    BootstrapInterval

    Raises
    ------
    ValueError
        For inputs that are not 1-D/2-D, of different lengths, empty, non-finite or outside
        ``[0, 1]``; bad ``clusters`` / ``labels`` shapes; a missing ``labels``; an unknown
        ``statistic``; a bad ``n_resamples``, ``confidence`` or ``seed``.

    Notes
    -----
    Cost ``O(n_resamples · G)`` for accuracy and ``O(n_resamples · G · K)`` for mean class
    accuracy (``G`` clusters, ``K`` classes), in chunks of resamples.

    With seeds, the interval describes the sampling of the evaluation set for the seed-averaged
    predictors (the spread over seeds is reported separately, as mean ± std).

    References
    ----------
    B. Efron and R. Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile interval).
    A. C. Davison and D. V. Hinkley, "Bootstrap Methods and their Application", 1997, Sec. 3.8
    (clustered data). C. A. Field and A. H. Welsh, "Bootstrapping clustered data", JRSS B, 2007.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([1, 1, 0, 1, 1, 0]); b = np.array([1, 0, 0, 1, 0, 0])
    >>> ci = paired_bootstrap_ci(a, b, clusters=[0, 0, 1, 1, 2, 2], n_resamples=2000)
    >>> round(ci.difference, 3), ci.n_clusters
    (0.333, 3)
    >>> bool(ci.low <= ci.difference <= ci.high)
    True
    """
    x = _correctness(correct_a, "correct_a")
    y = _correctness(correct_b, "correct_b")
    if x.shape != y.shape:
        raise ValueError(
            f"`correct_a` and `correct_b` must score the same samples, got {x.size} and {y.size}"
        )
    n = x.size
    if statistic not in STATISTICS:
        raise ValueError(f"`statistic` must be one of {STATISTICS}, got {statistic!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int | np.integer):
        raise ValueError(f"`n_resamples` must be a positive int, got {n_resamples!r}")
    if n_resamples < 1:
        raise ValueError(f"`n_resamples` must be a positive int, got {n_resamples}")
    confidence = check_number(
        float(confidence) if isinstance(confidence, np.floating) else confidence,
        "confidence",
        positive=True,
        below=1,
    )
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValueError(f"`seed` must be a non-negative int or None, got {seed!r}")
    group = _index(clusters, n, "clusters") if clusters is not None else np.arange(n)
    n_groups = int(group.max()) + 1

    # per cluster (and class): sums of the paired differences and sample counts
    d = x - y
    if statistic == "accuracy":
        sums = np.bincount(group, weights=d, minlength=n_groups)[:, None]  # (G, 1)
        sizes = np.bincount(group, minlength=n_groups).astype(np.float64)[:, None]
    else:
        if labels is None:
            raise ValueError("`labels` must be given for statistic='mean_class_accuracy'")
        cls = _index(labels, n, "labels")
        k = int(cls.max()) + 1
        cell = group * k + cls
        sums = np.bincount(cell, weights=d, minlength=n_groups * k).reshape(n_groups, k)
        sizes = np.bincount(cell, minlength=n_groups * k).reshape(n_groups, k).astype(np.float64)

    difference = float(_statistic(sums.sum(0, keepdims=True), sizes.sum(0, keepdims=True))[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, _CELLS_PER_CHUNK // n_groups)
    draws = []
    for start in range(0, n_resamples, chunk):
        r = min(chunk, n_resamples - start)
        picks = rng.integers(0, n_groups, size=(r, n_groups))  # clusters drawn per resample
        rows = np.repeat(np.arange(r), n_groups)
        counts = np.bincount(rows * n_groups + picks.ravel(), minlength=r * n_groups)
        counts = counts.reshape(r, n_groups).astype(np.float64)  # (r, G) multiplicities
        draws.append(_statistic(counts @ sums, counts @ sizes))
    deltas = np.concatenate(draws)
    alpha = (1.0 - float(confidence)) / 2.0
    low, high = np.quantile(deltas, [alpha, 1.0 - alpha])
    return BootstrapInterval(
        difference=difference,
        low=float(low),
        high=float(high),
        standard_error=float(deltas.std(ddof=1)) if deltas.size > 1 else 0.0,
        confidence=float(confidence),
        n_resamples=int(n_resamples),
        n_clusters=n_groups,
        n_samples=n,
        statistic=statistic,
    )


def _statistic(sums: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """``Δ`` of each row: ``Σ sums / Σ sizes`` for one column (accuracy), else the mean over the
    classes present (``sizes > 0``) of ``sums / sizes`` (mean class accuracy)."""
    if sums.shape[1] == 1:
        return sums[:, 0] / sizes[:, 0]
    present = sizes > 0
    per_class = np.divide(sums, sizes, out=np.zeros_like(sums), where=present)
    return per_class.sum(1) / present.sum(1)


def _correctness(values: Any, name: str) -> np.ndarray:
    """``(N,)`` float64 in [0, 1]: the input, averaged over its first axis if 2-D."""
    arr = to_numpy(values)
    if arr.dtype == bool:
        arr = arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"`{name}` must be numeric or bool, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise ValueError(f"`{name}` must have shape (N,) or (S, N) with N, S >= 1, got {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite, got NaN or infinite values")
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError(
            f"`{name}` must hold correctness in [0, 1], got range [{arr.min():g}, {arr.max():g}]"
        )
    return arr.mean(0) if arr.ndim == 2 else arr


def _index(values: Any, n: int, name: str) -> np.ndarray:
    """Contiguous ids ``0 .. G-1`` of an ``(n,)`` array of ids (any sortable values)."""
    arr = to_numpy(values)
    if arr.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},) (one per sample), got {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite ids, got NaN or infinite values")
    return np.unique(arr, return_inverse=True)[1].reshape(n).astype(np.int64)
