"""seg2bdry convention, thinning, pixel correspondence and boundary P/R."""

from __future__ import annotations

import numpy as np
import pytest

from matbackprop.metrics import (
    boundary_pr,
    correspond_pixels,
    f_measure,
    human_boundaries,
    segmentation_to_boundaries,
    thin_boundaries,
)


def voronoi_segmentation(shape: tuple[int, int], n_regions: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, 1, size=(n_regions, 2)) * np.array(shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    return np.argmin(d, axis=-1) + 1


def max_dist_for_radius(shape: tuple[int, int], radius: float) -> float:
    return radius / float(np.hypot(*shape))


def test_seg2bdry_vertical_split():
    # pixels differing from their right neighbour carry the boundary (column 1), including
    # the last row (copied from the double-size frame)
    seg = np.array([[1, 1, 2], [1, 1, 2], [1, 1, 2]])
    np.testing.assert_array_equal(
        segmentation_to_boundaries(seg), [[0, 1, 0], [0, 1, 0], [0, 1, 0]]
    )


def test_seg2bdry_junction_pixel():
    # seg = [[1, 1],
    #        [1, 2]]
    # pixel (0,0) differs from neither its right nor its lower neighbour, but it is the
    # junction of the 2x2 block whose lower-right pixel differs -> on.  The last column takes
    # the vertical edge of (0,1), the last row the horizontal edge of (1,0); corner off.
    seg = np.array([[1, 1], [1, 2]])
    np.testing.assert_array_equal(segmentation_to_boundaries(seg), [[1, 1], [1, 0]])
    double = segmentation_to_boundaries(seg, double_size=True)
    assert double.shape == (5, 5)
    np.testing.assert_array_equal(double[2::2, 2::2], [[1, 1], [1, 0]])
    # the edge between (0,1) and (1,1) sits at (2, 3); between (1,0) and (1,1) at (3, 2)
    assert double[2, 3] and double[3, 2]
    assert not double[1, 1] and not double[3, 3]  # pixel sites are never boundaries


def test_seg2bdry_uniform_is_empty():
    assert not segmentation_to_boundaries(np.full((4, 6), 3)).any()


def test_thinning_gives_one_pixel_wide_lines():
    band = np.zeros((11, 20), dtype=bool)
    band[4:7, 2:18] = True
    thin = thin_boundaries(band)
    assert thin.sum() < band.sum()
    assert not (thin & ~band).any()
    assert (thin[:, 5:15].sum(axis=0) == 1).all()
    # already thin maps are unchanged
    np.testing.assert_array_equal(thin_boundaries(thin), thin)


def test_human_boundaries_are_thinned_seg2bdry():
    seg = voronoi_segmentation((30, 30), 6, seed=2)
    (hb,) = human_boundaries([seg])
    np.testing.assert_array_equal(hb, thin_boundaries(segmentation_to_boundaries(seg)))


def test_correspondence_identity_and_shift():
    shape = (20, 20)
    a = np.zeros(shape, dtype=bool)
    a[10, 3:17] = True
    m1, m2 = correspond_pixels(a, a, max_dist_for_radius(shape, 1.5))
    # every pixel matches itself (cost 0 beats the neighbours at cost 1)
    np.testing.assert_array_equal(m1[a], np.flatnonzero(a.ravel()) + 1)
    np.testing.assert_array_equal(m2[a], np.flatnonzero(a.ravel()) + 1)
    assert not m1[~a].any()
    shifted = np.roll(a, 1, axis=0)
    m1, m2 = correspond_pixels(a, shifted, max_dist_for_radius(shape, 1.5))
    assert (m1[a] > 0).all() and (m2[shifted] > 0).all()
    far = np.roll(a, 3, axis=0)
    m1, m2 = correspond_pixels(a, far, max_dist_for_radius(shape, 1.5))
    assert not m1.any() and not m2.any()


def test_correspondence_is_maximum_cardinality():
    # machine pixels at x = 5, 6; human pixels at x = 6, 7 (one row), radius 1.2.
    # Matching the coincident pair (6, 6) alone leaves 5 and 7 unmatched; the optimum matches
    # 5-6 and 6-7 (two pairs, total distance 2).
    shape = (20, 20)
    a = np.zeros(shape, dtype=bool)
    b = np.zeros(shape, dtype=bool)
    a[10, [5, 6]] = True
    b[10, [6, 7]] = True
    m1, m2 = correspond_pixels(a, b, max_dist_for_radius(shape, 1.2))
    assert m1[10, 5] == 10 * 20 + 6 + 1
    assert m1[10, 6] == 10 * 20 + 7 + 1
    assert (m2[b] > 0).all()


def test_correspondence_prefers_shorter_matches():
    # one machine pixel, two candidate human pixels at distance 0 and 1: the closer one wins
    shape = (20, 20)
    a = np.zeros(shape, dtype=bool)
    b = np.zeros(shape, dtype=bool)
    a[8, 8] = True
    b[8, 8] = b[8, 9] = True
    m1, m2 = correspond_pixels(a, b, max_dist_for_radius(shape, 2.0))
    assert m1[8, 8] == 8 * 20 + 8 + 1
    assert m2[8, 9] == 0


@pytest.mark.parametrize("k", range(3))
def test_boundary_pr_of_each_annotator_against_itself(k):
    gts = [voronoi_segmentation((40, 50), n, seed=n) for n in (4, 9, 16)]
    bmap = segmentation_to_boundaries(gts[k])
    counts = boundary_pr(bmap, [gts[k]])
    assert counts.sum_p > 0
    assert counts.cnt_p == counts.sum_p
    assert counts.cnt_r == counts.sum_r
    assert counts.f == pytest.approx(1.0)


def test_boundary_pr_counts_union_over_humans():
    # two humans: a horizontal line and a vertical line; the machine draws both.
    # every machine pixel matches one human or the other -> precision 1; recall 1 for both.
    shape = (30, 30)
    h1 = np.zeros(shape, dtype=bool)
    h1[15, 2:28] = True
    h2 = np.zeros(shape, dtype=bool)
    h2[2:28, 5] = True
    machine = h1 | h2
    c = boundary_pr(machine, gt_boundaries=[h1, h2], thin=False)
    assert c.sum_p == machine.sum() and c.cnt_p == machine.sum()
    assert c.sum_r == h1.sum() + h2.sum() and c.cnt_r == c.sum_r
    # against the horizontal human only, precision = its share of the machine pixels
    c1 = boundary_pr(machine, gt_boundaries=[h1], thin=False)
    assert c1.cnt_r == h1.sum()
    # the vertical line crosses h1 at (15, 5): that pixel can match h1 only once
    assert c1.cnt_p == h1.sum()
    assert c1.precision == pytest.approx(h1.sum() / machine.sum())


def test_boundary_pr_empty_machine_map():
    seg = voronoi_segmentation((20, 20), 4, seed=0)
    c = boundary_pr(np.zeros((20, 20), dtype=bool), [seg])
    assert c.sum_p == 0 and c.cnt_r == 0 and c.precision == 0.0 and c.f == 0.0


def test_f_measure_zero_safe():
    assert f_measure(0.0, 0.0) == 0.0
    np.testing.assert_allclose(f_measure([0.5, 1.0], [0.5, 0.0]), [0.5, 0.0])


def test_boundary_input_errors():
    seg = voronoi_segmentation((10, 12), 3, seed=0)
    bmap = segmentation_to_boundaries(seg)
    with pytest.raises(ValueError, match="binary"):
        boundary_pr(bmap * 0.5, [seg])
    with pytest.raises(ValueError, match="finite"):
        boundary_pr(np.full((10, 12), np.nan), [seg])
    with pytest.raises(ValueError, match="shape"):
        boundary_pr(bmap, [seg.T])
    with pytest.raises(ValueError, match="at least one"):
        boundary_pr(bmap, [])
    with pytest.raises(ValueError, match="neither"):
        boundary_pr(bmap)
    with pytest.raises(ValueError, match="max_dist"):
        boundary_pr(bmap, [seg], max_dist=-1.0)
    with pytest.raises(ValueError, match="shape"):
        correspond_pixels(bmap, bmap[:5])
    with pytest.raises(ValueError, match="outlier_cost"):
        correspond_pixels(bmap, bmap, outlier_cost=0.5)
