"""paired_bootstrap_ci: known answers, the cluster bootstrap's reason to be, coverage, errors."""

from __future__ import annotations

import numpy as np
import pytest

from matbackprop.metrics import mean_class_accuracy, paired_bootstrap_ci


def test_identical_methods_give_a_zero_interval():
    rng = np.random.default_rng(0)
    a = rng.random(300) < 0.6
    ci = paired_bootstrap_ci(a, a.copy(), clusters=np.arange(300) // 5, n_resamples=500)
    assert (ci.difference, ci.low, ci.high, ci.standard_error) == (0.0, 0.0, 0.0, 0.0)
    assert not ci.excludes_zero and (ci.n_clusters, ci.n_samples) == (60, 300)


@pytest.mark.parametrize("statistic", ["accuracy", "mean_class_accuracy"])
def test_a_constant_shift_gives_the_shift_itself(statistic):
    """Fractional correctness (seed averages) ``a = b + 0.25`` on every sample: every resample
    has the difference 0.25, so the interval collapses onto it."""
    rng = np.random.default_rng(1)
    b = rng.uniform(0, 0.5, size=200)
    labels = rng.integers(0, 4, size=200)
    ci = paired_bootstrap_ci(
        b + 0.25, b, clusters=rng.integers(0, 30, 200), labels=labels, statistic=statistic
    )
    assert ci.difference == pytest.approx(0.25)
    assert ci.low == pytest.approx(0.25) and ci.high == pytest.approx(0.25)
    assert ci.excludes_zero


def test_iid_samples_match_the_normal_approximation():
    """Without clusters, the interval of a mean difference of N iid samples is close to
    ``Δ ± 1.96 sd(d) / sqrt(N)``."""
    rng = np.random.default_rng(2)
    n = 4000
    a, b = rng.random(n) < 0.6, rng.random(n) < 0.5
    ci = paired_bootstrap_ci(a, b, n_resamples=4000, seed=3)
    d = a.astype(float) - b
    half = 1.959964 * d.std(ddof=1) / np.sqrt(n)
    assert ci.difference == pytest.approx(d.mean())
    assert ci.low == pytest.approx(d.mean() - half, abs=0.1 * half)
    assert ci.high == pytest.approx(d.mean() + half, abs=0.1 * half)
    assert ci.standard_error == pytest.approx(half / 1.959964, rel=0.06)


def test_clusters_are_resampled_whole():
    """Five identical copies of each sample, in the sample's cluster, carry no more
    information than the sample once: the cluster bootstrap of the copies is the bootstrap of
    the originals (the same draws), while a bootstrap that ignores the clusters shrinks the
    interval by about sqrt(5)."""
    rng = np.random.default_rng(4)
    a, b = rng.random(120) < 0.55, rng.random(120) < 0.45
    once = paired_bootstrap_ci(a, b, n_resamples=3000, seed=5)
    copies = np.repeat(np.arange(120), 5)
    grouped = paired_bootstrap_ci(a[copies], b[copies], clusters=copies, n_resamples=3000, seed=5)
    assert (grouped.low, grouped.high) == pytest.approx((once.low, once.high), abs=1e-12)
    assert grouped.n_clusters == 120 and grouped.n_samples == 600
    naive = paired_bootstrap_ci(a[copies], b[copies], n_resamples=3000, seed=5)
    ratio = (naive.high - naive.low) / (once.high - once.low)
    assert ratio == pytest.approx(1 / np.sqrt(5), rel=0.15)
    # cluster ids may be any values, e.g. COCO image ids
    ids = paired_bootstrap_ci(
        a[copies], b[copies], clusters=1000 + 7 * copies, n_resamples=3000, seed=5
    )
    assert (ids.low, ids.high) == (grouped.low, grouped.high)


def _clustered_sample(rng, clusters=40, size=12):
    """Two methods on ``clusters`` images of ``size`` regions: half the images favour ``a``
    (0.9 vs 0.6 correct), half favour ``b`` (0.3 vs 0.4): the true difference is 0.1."""
    kind = rng.random(clusters) < 0.5
    pa = np.repeat(np.where(kind, 0.9, 0.3), size)
    pb = np.repeat(np.where(kind, 0.6, 0.4), size)
    n = clusters * size
    return rng.random(n) < pa, rng.random(n) < pb, np.repeat(np.arange(clusters), size)


def test_the_cluster_interval_covers_the_true_difference_and_the_naive_one_does_not():
    rng = np.random.default_rng(6)
    trials, truth = 300, 0.1
    covered = naive_covered = 0
    for t in range(trials):
        a, b, images = _clustered_sample(rng)
        ci = paired_bootstrap_ci(a, b, clusters=images, n_resamples=400, seed=t)
        naive = paired_bootstrap_ci(a, b, n_resamples=400, seed=t)
        covered += ci.low <= truth <= ci.high
        naive_covered += naive.low <= truth <= naive.high
    assert 0.89 <= covered / trials <= 0.99  # 0.92 here (percentile intervals, 40 clusters)
    # regions of one image share its kind: ignoring that gives intervals that are too short
    assert naive_covered / trials < 0.82  # 0.77 here


def test_mean_class_accuracy_difference_matches_the_metric():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 5, size=400)
    pred_a = np.where(rng.random(400) < 0.7, labels, (labels + 1) % 5)
    pred_b = np.where(rng.random(400) < 0.5, labels, (labels + 2) % 5)
    ci = paired_bootstrap_ci(
        pred_a == labels,
        pred_b == labels,
        clusters=np.arange(400) // 4,
        labels=labels,
        statistic="mean_class_accuracy",
        n_resamples=1000,
    )
    expected = mean_class_accuracy(pred_a, labels, 5) - mean_class_accuracy(pred_b, labels, 5)
    assert ci.difference == pytest.approx(expected)
    assert ci.low < expected < ci.high and ci.statistic == "mean_class_accuracy"
    # one class: mean class accuracy is accuracy, resample by resample
    one = np.zeros(400, dtype=int)
    args = (pred_a == labels, pred_b == labels)
    kw = {"clusters": np.arange(400) // 4, "n_resamples": 500, "seed": 9}
    mca = paired_bootstrap_ci(*args, labels=one, statistic="mean_class_accuracy", **kw)
    acc = paired_bootstrap_ci(*args, **kw)
    assert (mca.low, mca.high) == pytest.approx((acc.low, acc.high), abs=1e-12)


def test_several_seeds_are_averaged_per_sample():
    rng = np.random.default_rng(8)
    a, b = rng.random((3, 150)) < 0.6, rng.random((2, 150)) < 0.5
    images = np.arange(150) // 3
    seeds = paired_bootstrap_ci(a, b, clusters=images, n_resamples=800)
    means = paired_bootstrap_ci(a.mean(0), b.mean(0), clusters=images, n_resamples=800)
    assert seeds == means
    assert seeds.difference == pytest.approx(a.mean() - b.mean())
    # the same seed gives the same draws; another seed other draws
    assert paired_bootstrap_ci(a, b, clusters=images, n_resamples=800) == seeds
    assert paired_bootstrap_ci(a, b, clusters=images, n_resamples=800, seed=1) != seeds


def test_many_resamples_are_drawn_in_chunks(monkeypatch):
    from matbackprop.metrics import _bootstrap

    rng = np.random.default_rng(10)
    a, b = rng.random(50) < 0.5, rng.random(50) < 0.5
    whole = paired_bootstrap_ci(a, b, n_resamples=1000)
    monkeypatch.setattr(_bootstrap, "_CELLS_PER_CHUNK", 50 * 7)  # 7 resamples per chunk
    chunked = paired_bootstrap_ci(a, b, n_resamples=1000)
    assert chunked.n_resamples == 1000
    assert chunked.standard_error == pytest.approx(whole.standard_error, rel=0.15)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"correct_b": np.ones(4)}, "same samples"),
        ({"correct_a": np.ones((2, 2, 3))}, "shape \\(N,\\) or \\(S, N\\)"),
        ({"correct_a": np.array([])}, "shape \\(N,\\) or \\(S, N\\)"),
        ({"correct_a": np.array([0.0, 2.0, 1.0])}, "in \\[0, 1\\]"),
        ({"correct_a": np.array([0.0, np.nan, 1.0])}, "finite"),
        ({"correct_a": np.array(["a", "b", "c"])}, "numeric or bool"),
        ({"clusters": [0, 1]}, "`clusters` must have shape \\(3,\\)"),
        ({"statistic": "f1"}, "`statistic`"),
        ({"statistic": "mean_class_accuracy"}, "`labels` must be given"),
        ({"n_resamples": 0}, "`n_resamples`"),
        ({"n_resamples": 10.0}, "`n_resamples`"),
        ({"confidence": 1.0}, "`confidence`"),
        ({"confidence": True}, "`confidence`"),
        ({"confidence": 0.0}, "`confidence`"),
        ({"confidence": float("nan")}, "`confidence`"),
        ({"seed": -1}, "`seed`"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_errors_name_the_argument(kwargs, match):
    args = {"correct_a": np.array([1, 0, 1]), "correct_b": np.array([0, 0, 1]), **kwargs}
    with pytest.raises(ValueError, match=match):
        paired_bootstrap_ci(args.pop("correct_a"), args.pop("correct_b"), **args)
