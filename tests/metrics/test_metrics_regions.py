"""Covering, PRI and VoI on hand-computed cases, invariances and input validation."""

from __future__ import annotations

import numpy as np
import pytest

from matbackprop.metrics import (
    contingency_table,
    probabilistic_rand_index,
    region_scores,
    relabel_contiguous,
    segmentation_covering,
    variation_of_information,
)

LOG2_3 = np.log2(3.0)


def voronoi_segmentation(shape: tuple[int, int], n_regions: int, seed: int) -> np.ndarray:
    """A label map of ``n_regions`` nearest-seed cells (labels 1..n_regions)."""
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, 1, size=(n_regions, 2)) * np.array(shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    return np.argmin(d, axis=-1) + 1


def test_2x2_independent_partitions():
    # seg splits rows, gt splits columns:
    #   seg = [[0, 0],    gt = [[1, 2],
    #          [1, 1]]          [1, 2]]
    # 6 pixel pairs; the two "diagonal" pairs are separated by both -> agree; the other 4 are
    # joined by exactly one of them -> disagree.  RI = 2/6 = 1/3.
    # H(seg) = H(gt) = 1 bit and they are independent (I = 0)  ->  VoI = 2 bits.
    # Every gt region (area 2) overlaps each seg region in 1 pixel, union 3 -> covering 1/3.
    seg = np.array([[0, 0], [1, 1]])
    gt = np.array([[1, 2], [1, 2]])
    assert probabilistic_rand_index(seg, [gt]) == pytest.approx(1 / 3)
    assert variation_of_information(seg, [gt]) == pytest.approx(2.0)
    assert segmentation_covering(seg, [gt]) == pytest.approx(1 / 3)


def test_3x3_split_against_single_region():
    # seg = top 6 pixels / bottom 3 pixels; gt = one region.
    # C(9,2) = 36 pairs; the 6*3 = 18 pairs across the split disagree -> RI = 1/2.
    # H(gt) = 0, I = 0, H(seg) = -(2/3 log2 2/3 + 1/3 log2 1/3) = log2(3) - 2/3 -> VoI.
    # The gt region's best overlap is the 6-pixel seg region: 6/9 -> covering 2/3.
    seg = np.array([[0, 0, 0], [0, 0, 0], [1, 1, 1]])
    gt = np.ones((3, 3), dtype=np.uint16)
    assert probabilistic_rand_index(seg, [gt]) == pytest.approx(0.5)
    assert variation_of_information(seg, [gt]) == pytest.approx(LOG2_3 - 2 / 3)
    assert segmentation_covering(seg, [gt]) == pytest.approx(2 / 3)
    # With a second annotator equal to seg: PRI = (1/2 + 1)/2, VoI = (log2 3 - 2/3 + 0)/2,
    # covering pooled over the 18 annotated pixels = (9 * 2/3 + 6 * 1 + 3 * 1) / 18 = 5/6.
    gts = [gt, seg + 7]
    assert probabilistic_rand_index(seg, gts) == pytest.approx(0.75)
    assert variation_of_information(seg, gts) == pytest.approx((LOG2_3 - 2 / 3) / 2)
    assert segmentation_covering(seg, gts) == pytest.approx(5 / 6)


def test_3x3_refinement():
    # seg = [[1,1,2],    gt = [[1,1,1],
    #        [1,1,2],          [1,1,1],
    #        [3,3,3]]          [2,2,2]]
    # seg refines gt; it splits gt region 1 (6 px) into 4 + 2 px: 4*2 = 8 disagreeing pairs
    # -> RI = 1 - 8/36 = 7/9.  H(gt|seg) = 0, H(seg|gt) = 6/9 * H(2/3, 1/3) -> VoI.
    # Covering: gt1 best overlap 4/6, gt2 matched exactly -> (6 * 2/3 + 3 * 1) / 9 = 7/9.
    seg = np.array([[1, 1, 2], [1, 1, 2], [3, 3, 3]])
    gt = np.array([[1, 1, 1], [1, 1, 1], [2, 2, 2]])
    assert probabilistic_rand_index(seg, [gt]) == pytest.approx(7 / 9)
    assert variation_of_information(seg, [gt]) == pytest.approx(2 / 3 * (LOG2_3 - 2 / 3))
    assert segmentation_covering(seg, [gt]) == pytest.approx(7 / 9)
    # the reverse direction: gt covered... i.e. seg covered by gt (cnt_p / sum_p):
    # seg1 4/6, seg2 2/6, seg3 1 -> (4 * 2/3 + 2 * 1/3 + 3) / 9 = 19/27
    sc = region_scores(seg, [gt])
    assert sc.cnt_p / sc.sum_p == pytest.approx(19 / 27)
    assert sc.gt_areas.tolist() == [6, 3]
    assert sc.gt_best_overlaps == pytest.approx([2 / 3, 1.0])


@pytest.mark.parametrize("k", range(4))
def test_segmentation_against_itself_is_perfect(k):
    gts = [voronoi_segmentation((30, 40), n, seed=n) for n in (3, 8, 15, 30)]
    seg = gts[k]
    assert segmentation_covering(seg, [gts[k]]) == pytest.approx(1.0)
    assert probabilistic_rand_index(seg, [gts[k]]) == pytest.approx(1.0)
    assert variation_of_information(seg, [gts[k]]) == pytest.approx(0.0, abs=1e-12)
    others = [g for j, g in enumerate(gts) if j != k]
    assert segmentation_covering(seg, others) < 1.0
    assert variation_of_information(seg, others) > 0.0


def test_invariant_to_label_permutation():
    rng = np.random.default_rng(0)
    seg = voronoi_segmentation((25, 35), 12, seed=1)
    gts = [voronoi_segmentation((25, 35), n, seed=10 + n) for n in (4, 9)]
    ref = region_scores(seg, gts)
    # an arbitrary injective relabelling (negative and large ids, label 0 included)
    candidates = np.setdiff1d(np.arange(-5, 1000), [0])
    new_ids = rng.permutation(candidates)[: seg.max() + 1]
    new_ids[3] = 0
    assert np.unique(new_ids).size == new_ids.size
    seg2 = new_ids[seg]
    gts2 = [rng.permutation(g.max() + 1)[g] for g in gts]
    out = region_scores(seg2, gts2)
    assert out.covering == pytest.approx(ref.covering)
    assert out.pri == pytest.approx(ref.pri)
    assert out.voi == pytest.approx(ref.voi)
    assert out.cnt_p == pytest.approx(ref.cnt_p)


def test_pri_voi_symmetric_in_one_annotator():
    a = voronoi_segmentation((20, 20), 5, seed=3)
    b = voronoi_segmentation((20, 20), 9, seed=4)
    assert probabilistic_rand_index(a, [b]) == pytest.approx(probabilistic_rand_index(b, [a]))
    assert variation_of_information(a, [b]) == pytest.approx(variation_of_information(b, [a]))


def test_matches_brute_force_pair_count():
    rng = np.random.default_rng(5)
    seg = rng.integers(0, 3, size=(4, 5))
    gt = rng.integers(1, 4, size=(4, 5))
    s, g = seg.ravel(), gt.ravel()
    agree = total = 0
    for i in range(s.size):
        for j in range(i + 1, s.size):
            agree += (s[i] == s[j]) == (g[i] == g[j])
            total += 1
    assert probabilistic_rand_index(seg, [gt]) == pytest.approx(agree / total)


def test_contingency_and_relabel():
    seg = np.array([[5, 5], [-1, 7]])
    gt = np.array([[1, 2], [2, 2]])
    np.testing.assert_array_equal(contingency_table(seg, gt), [[0, 1], [1, 1], [0, 1]])
    rel, n = relabel_contiguous(seg)
    assert n == 3
    np.testing.assert_array_equal(rel, [[1, 1], [0, 2]])


def test_accepts_double_and_tensor_label_maps():
    torch = pytest.importorskip("torch")
    seg = np.array([[0, 0], [1, 1]])
    gt = np.array([[1, 2], [1, 2]], dtype=np.float64)
    assert segmentation_covering(torch.as_tensor(seg), [gt]) == pytest.approx(1 / 3)
    assert probabilistic_rand_index(seg, np.stack([gt, gt])) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "func", [segmentation_covering, probabilistic_rand_index, variation_of_information]
)
def test_input_errors(func):
    seg = np.zeros((3, 4), dtype=int)
    with pytest.raises(ValueError, match="shape"):
        func(seg, [np.zeros((4, 3), dtype=int)])
    with pytest.raises(ValueError, match="at least one"):
        func(seg, [])
    with pytest.raises(ValueError, match="integer"):
        func(seg + 0.5, [seg])
    with pytest.raises(ValueError, match="integer"):
        func(seg, [np.full((3, 4), np.nan)])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        func(np.zeros((2, 3, 4), dtype=int), [seg])
    with pytest.raises(ValueError, match="gts"):
        func(seg, None)
