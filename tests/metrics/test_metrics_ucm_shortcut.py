"""evaluate_ucm2 evaluates thresholds that give identical maps once: exact, and cheaper."""

from __future__ import annotations

import numpy as np
import pytest

from matbackprop.metrics import _benchmark, evaluate_ucm2, ucm_thresholds


def _toy_ucm(values: list[float]) -> tuple[np.ndarray, list[np.ndarray]]:
    """A 12 x 12 image cut into 4 quadrants by a ucm whose two arcs carry ``values``."""
    H = W = 12
    u = np.zeros((2 * H + 1, 2 * W + 1))
    u[1:-1, 2 * 6] = values[0]  # vertical arc between columns 5 and 6
    u[2 * 6, 1:-1] = values[1]  # horizontal arc between rows 5 and 6
    u[2 * 6, 2 * 6] = max(values)
    u[0], u[-1], u[:, 0], u[:, -1] = u[1], u[-2], u[:, 1], u[:, -2]
    gt_a = np.zeros((H, W), dtype=np.int64)
    gt_a[:, 6:] = 1
    gt_b = gt_a.copy()
    gt_b[6:] += 2
    return u, [gt_a + 1, gt_b + 1]


def _brute_force(u, gts, nthresh, monkeypatch):
    monkeypatch.setattr(
        _benchmark, "_same_map_representatives", lambda ucm, thresholds: np.arange(nthresh)
    )
    return evaluate_ucm2(u, gts, nthresh=nthresh)


# values strictly between thresholds, and values exactly on thresholds (0.25 = 1/4 for n = 3):
# there ``ucm >= t`` and ``ucm > t`` differ, which a shortcut keyed on one count would miss
@pytest.mark.parametrize("values", [[0.3, 0.7], [0.25, 0.75], [0.5, 0.5], [0.25, 0.6]])
@pytest.mark.parametrize("nthresh", [3, 9])
def test_shortcut_equals_brute_force(values, nthresh, monkeypatch):
    u, gts = _toy_ucm(values)
    fast = evaluate_ucm2(u, gts, nthresh=nthresh).to_dict()
    slow = _brute_force(u, gts, nthresh, monkeypatch).to_dict()
    assert fast == slow


def test_representatives_group_equal_maps_only():
    u, _ = _toy_ucm([0.25, 0.6])
    t = ucm_thresholds(3)  # 0.25, 0.5, 0.75
    rep = _benchmark._same_map_representatives(u, t)
    # t=0.25 sits on a value (>= and > differ from t=0.5); 0.5 and 0.75 straddle 0.6
    assert rep.tolist() == [0, 1, 2]
    t9 = ucm_thresholds(9)  # 0.1 .. 0.9; 0.6 is a threshold and a value: a group of its own
    rep9 = _benchmark._same_map_representatives(u, t9)
    assert rep9.tolist() == [0, 0, 2, 2, 2, 5, 6, 6, 6]


def test_shortcut_calls_the_benchmark_once_per_distinct_map(monkeypatch):
    u, gts = _toy_ucm([0.305, 0.705])  # between thresholds i / 100
    calls = []
    original = _benchmark._region_scores

    def counting(seg, gt):
        calls.append(1)
        return original(seg, gt)

    monkeypatch.setattr(_benchmark, "_region_scores", counting)
    evaluate_ucm2(u, gts, nthresh=99, boundaries=False)
    assert len(calls) == 3  # t < 0.305, 0.305 < t < 0.705, t > 0.705
