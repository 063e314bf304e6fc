"""ODS / OIS / AP / Best on synthetic per-image numbers."""

from __future__ import annotations

import numpy as np
import pytest

from matbackprop.metrics import (
    BoundaryCurve,
    ImageEvaluation,
    RegionCurve,
    aggregate_boundary,
    aggregate_region,
    interpolated_best_f,
    pr_curve_area,
)


def bcurve(thr, cnt_r, sum_r, cnt_p, sum_p):
    arr = lambda x: np.asarray(x, dtype=np.int64)
    return BoundaryCurve(np.asarray(thr, float), arr(cnt_r), arr(sum_r), arr(cnt_p), arr(sum_p))


def test_boundary_ods_differs_from_ois():
    # image A is best at threshold 1 (F .9 vs .5), image B at threshold 2 (F .1 vs .8)
    a = bcurve([1, 2], [90, 50], [100, 100], [90, 50], [100, 100])
    b = bcurve([1, 2], [10, 80], [100, 100], [10, 80], [100, 100])
    res = aggregate_boundary([a, b])
    # dataset curve: t1 R = P = 100/200, t2 R = P = 130/200; on the segment R = P grows
    # linearly, so the interpolated best is the end point: ODS = .65 at threshold 2
    np.testing.assert_allclose(res.recall, [0.5, 0.65])
    np.testing.assert_allclose(res.f, [0.5, 0.65])
    assert res.ods_f == pytest.approx(0.65)
    assert res.ods_threshold == pytest.approx(2.0)
    # OIS sums A's counts at t1 and B's at t2: R = P = 170/200
    assert res.ois_recall == pytest.approx(0.85)
    assert res.ois_f == pytest.approx(0.85)
    np.testing.assert_allclose(res.image_f, [0.9, 0.8])
    np.testing.assert_allclose(res.image_threshold, [1.0, 2.0])
    # two distinct recalls .5 -> .65: P(R) = R there, AP = 0.01 * sum_{k=50}^{65} k/100
    assert res.ap == pytest.approx(0.01 * sum(k / 100 for k in range(50, 66)))


def test_interpolated_best_f_between_thresholds():
    # R falls 1 -> 0 while P rises 0 -> 1: both end points have F = 0, the interpolated
    # curve F(d) = 2 d (1 - d) peaks near d = 1/2; the grid linspace(0, 1, 100) has
    # d = 49/99 and 50/99 there, F = 2 * 49 * 50 / 99^2.
    t, r, p, f = interpolated_best_f([0.0, 1.0], [1.0, 0.0], [0.0, 1.0])
    assert f == pytest.approx(2 * 49 * 50 / 99**2)
    assert t == pytest.approx(49 / 99) or t == pytest.approx(50 / 99)
    assert r == pytest.approx(1 - t) and p == pytest.approx(t)
    # one threshold: that point
    assert interpolated_best_f([0.3], [0.5], [0.5]) == pytest.approx((0.3, 0.5, 0.5, 0.5))


def test_pr_curve_area_hand_computed():
    # P(R) piecewise linear through (.2,.9), (.5,.7), (.8,.4), sampled at R = .20,.21,..,.80:
    # sum_{k=20}^{50} (.9 - 2/3 (k/100 - .2)) = 27.9 - 3.1 = 24.8
    # sum_{k=51}^{80} (.7 - (k/100 - .5))    = 21 - 4.65 = 16.35   -> AP = .01 * 41.15
    assert pr_curve_area([0.8, 0.5, 0.2], [0.4, 0.7, 0.9]) == pytest.approx(0.4115)
    assert pr_curve_area([0.3, 0.3], [0.5, 0.6]) == 0.0
    with pytest.raises(ValueError, match="precision"):
        pr_curve_area([0.1, 0.2], [0.5])


def rcurve(cnt_r, sum_r, best, pri, voi, cnt_p=None, sum_p=None):
    n = len(cnt_r)
    f = lambda x: np.asarray(x, dtype=float)
    return RegionCurve(
        thresholds=np.arange(1.0, n + 1),
        cnt_r=f(cnt_r),
        sum_r=f(sum_r),
        cnt_p=f(cnt_p if cnt_p is not None else cnt_r),
        sum_p=f(sum_p if sum_p is not None else sum_r),
        cnt_r_best=best,
        pri=f(pri),
        voi=f(voi),
    )


def test_region_ods_ois_best():
    a = rcurve([9, 5], [10, 10], 9.5, [0.9, 0.6], [1.0, 2.0], cnt_p=[4, 5])
    b = rcurve([2, 8], [10, 10], 8.5, [0.5, 0.8], [3.0, 1.5])
    res = aggregate_region([ImageEvaluation(a.thresholds, None, a, "A"), b])
    # covering curve (pooled): t1 11/20, t2 13/20 -> ODS .65 at t = 2
    np.testing.assert_allclose(res.covering, [0.55, 0.65])
    assert res.covering_ods == pytest.approx(0.65) and res.covering_ods_threshold == 2
    # OIS: A at t1 (9/10), B at t2 (8/10) -> 17/20; Best: (9.5 + 8.5) / 20
    assert res.covering_ois == pytest.approx(0.85)
    assert res.covering_best == pytest.approx(0.9)
    # PRI means [.7, .7]: tie -> first threshold; OIS = mean(.9, .8)
    assert res.pri_ods == pytest.approx(0.7) and res.pri_ods_threshold == 1
    assert res.pri_ois == pytest.approx(0.85)
    # VoI means [2, 1.75] -> ODS 1.75 at t = 2 (min is best); OIS = mean(1, 1.5)
    assert res.voi_ods == pytest.approx(1.75) and res.voi_ods_threshold == 2
    assert res.voi_ois == pytest.approx(1.25)
    np.testing.assert_allclose(res.image_threshold, [1, 2])
    np.testing.assert_allclose(res.image_covering, [0.9, 0.8])
    np.testing.assert_allclose(res.image_covering_precision, [0.4, 0.8])
    np.testing.assert_allclose(res.image_best_covering, [0.95, 0.85])
    assert res.names == ["A", None]


def test_region_ois_takes_last_tie_and_image_threshold_first():
    # covering ties at t1 and t2 with different counts: official OIS uses the last one
    a = rcurve([5, 10], [10, 20], 10.0, [0.5, 0.5], [1.0, 1.0])
    res = aggregate_region([a])
    assert res.image_threshold[0] == 1
    assert res.covering_ois == pytest.approx(0.5)
    b = rcurve([1, 1], [10, 10], 1.0, [0.5, 0.5], [1.0, 1.0])
    both = aggregate_region([a, b])
    assert both.covering_ois == pytest.approx((10 + 1) / (20 + 10))


def test_aggregate_errors():
    a = bcurve([1, 2], [1, 1], [2, 2], [1, 1], [2, 2])
    b = bcurve([1, 2, 3], [1, 1, 1], [2, 2, 2], [1, 1, 1], [2, 2, 2])
    with pytest.raises(ValueError, match="thresholds"):
        aggregate_boundary([a, b])
    with pytest.raises(ValueError, match="at least one"):
        aggregate_boundary([])
    with pytest.raises(ValueError, match="no region"):
        aggregate_region([ImageEvaluation(a.thresholds, a, None)])
    with pytest.raises(ValueError, match="sequence"):
        aggregate_boundary(a)
    with pytest.raises(ValueError, match="results\\[0\\]"):
        aggregate_boundary([{"f": 1}])
