"""Per-image evaluation of hierarchies, ucm2 maps and soft boundary maps (synthetic inputs)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matbackprop.metrics import (
    aggregate_boundary,
    aggregate_region,
    evaluate_boundary_map,
    evaluate_hierarchy,
    evaluate_segmentation,
    evaluate_ucm2,
    segmentation_to_boundaries,
    ucm_thresholds,
)


def voronoi_segmentation(shape: tuple[int, int], n_regions: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, 1, size=(n_regions, 2)) * np.array(shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    return np.argmin(d, axis=-1) + 1


@pytest.fixture(scope="module")
def two_level():
    """Coarse and fine segmentations (fine refines coarse) of a 24x32 image, and a ucm2.

    The ucm2 holds the fine-only contours at 0.3 and the coarse contours at 0.8, so that with
    nthresh = 3 (thresholds 1/4, 1/2, 3/4) the levels are fine, coarse, coarse.
    """
    from skimage.measure import label

    shape = (24, 32)
    cells = voronoi_segmentation(shape, 12, seed=7)
    # regions of a ucm are 4-connected pixel sets: split labels into connected components
    fine = label(cells, connectivity=1, background=-1)
    coarse_of = np.array([0] + [1 + (k % 3) for k in range(12)])
    coarse = label(coarse_of[cells], connectivity=1, background=-1)
    assert 3 <= coarse.max() < fine.max()
    ucm2 = np.maximum(
        0.3 * segmentation_to_boundaries(fine, double_size=True),
        0.8 * segmentation_to_boundaries(coarse, double_size=True),
    )
    humans = [coarse, voronoi_segmentation(shape, 5, seed=3), fine]
    return fine, coarse, ucm2, humans


def test_ucm2_equals_the_hierarchy_it_encodes(two_level):
    fine, coarse, ucm2, humans = two_level
    from_ucm = evaluate_ucm2(ucm2, humans, nthresh=3)
    from_segs = evaluate_hierarchy([fine, coarse, coarse], humans)
    np.testing.assert_allclose(from_ucm.thresholds, [0.25, 0.5, 0.75])
    np.testing.assert_array_equal(from_segs.thresholds, [1, 2, 3])
    for part in ("cnt_r", "sum_r", "cnt_p", "sum_p"):
        np.testing.assert_array_equal(
            getattr(from_ucm.boundary, part), getattr(from_segs.boundary, part)
        )
        np.testing.assert_allclose(getattr(from_ucm.region, part), getattr(from_segs.region, part))
    np.testing.assert_allclose(from_ucm.region.pri, from_segs.region.pri)
    np.testing.assert_allclose(from_ucm.region.voi, from_segs.region.voi)
    assert from_ucm.region.cnt_r_best == pytest.approx(from_segs.region.cnt_r_best)


def test_hierarchy_region_curves(two_level):
    fine, coarse, _, humans = two_level
    res = evaluate_hierarchy([coarse, fine], humans, boundaries=False)
    assert res.boundary is None
    reg = res.region
    # human 0 equals coarse, human 2 equals fine: each level covers "its" human perfectly
    assert reg.sum_r.tolist() == [3 * fine.size] * 2
    assert (reg.covering < 1).all()
    # best covering takes each human region's best level -> at least every level's covering
    assert reg.best_covering >= reg.covering.max()
    # region areas of humans 0 and 2 are matched exactly at some level
    single = evaluate_hierarchy([coarse, fine], [humans[0], humans[2]], boundaries=False)
    assert single.region.best_covering == pytest.approx(1.0)


def test_single_segmentation_and_identity(two_level):
    fine, _, _, _ = two_level
    for res in (evaluate_segmentation(fine, [fine]), evaluate_hierarchy(fine, [fine])):
        assert res.thresholds.tolist() == [1.0]
        assert res.region.covering[0] == pytest.approx(1.0)
        assert res.region.pri[0] == pytest.approx(1.0)
        assert res.region.voi[0] == pytest.approx(0.0, abs=1e-12)
        assert res.boundary.f[0] == pytest.approx(1.0)


def test_soft_boundary_map_thresholds(two_level):
    fine, coarse, ucm2, humans = two_level
    pb = ucm2[2::2, 2::2]
    res = evaluate_boundary_map(pb, humans, nthresh=3)
    assert res.region is None
    ref = evaluate_ucm2(ucm2, humans, nthresh=3, regions=False)
    np.testing.assert_array_equal(res.boundary.cnt_r, ref.boundary.cnt_r)
    np.testing.assert_array_equal(res.boundary.cnt_p, ref.boundary.cnt_p)
    # higher thresholds keep fewer machine pixels
    assert (np.diff(res.boundary.sum_p) <= 0).all()


def test_gt_boundaries_override(two_level):
    fine, _, _, humans = two_level
    from matbackprop.metrics import human_boundaries

    derived = evaluate_hierarchy([fine], humans, regions=False)
    given = evaluate_hierarchy([fine], None, regions=False, gt_boundaries=human_boundaries(humans))
    np.testing.assert_array_equal(derived.boundary.cnt_r, given.boundary.cnt_r)
    np.testing.assert_array_equal(derived.boundary.cnt_p, given.boundary.cnt_p)


def test_results_are_json_serialisable(two_level):
    fine, coarse, ucm2, humans = two_level
    results = [evaluate_ucm2(ucm2, humans, nthresh=3, name="a"), evaluate_ucm2(ucm2, humans[:2], 3)]
    payload = {
        "images": [r.to_dict() for r in results],
        "boundary": aggregate_boundary(results).to_dict(),
        "region": aggregate_region(results).to_dict(),
    }
    back = json.loads(json.dumps(payload))
    assert back["images"][0]["name"] == "a"
    assert len(back["boundary"]["image_f"]) == 2
    assert back["region"]["names"] == ["a", None]


def test_ucm_thresholds():
    np.testing.assert_allclose(ucm_thresholds(5), [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6])
    with pytest.raises(ValueError, match="nthresh"):
        ucm_thresholds(0)


def test_benchmark_input_errors(two_level):
    fine, coarse, ucm2, humans = two_level
    with pytest.raises(ValueError, match="double-size"):
        evaluate_ucm2(ucm2[:-1], humans, 3)
    with pytest.raises(ValueError, match="shape"):
        evaluate_ucm2(ucm2[:-2, :-2], humans, 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        evaluate_ucm2(ucm2 * 2, humans, 3)
    with pytest.raises(ValueError, match="finite"):
        evaluate_boundary_map(np.full(fine.shape, np.nan), humans, 3)
    with pytest.raises(ValueError, match="at least one"):
        evaluate_hierarchy([], humans)
    with pytest.raises(ValueError, match="at least one"):
        evaluate_hierarchy([fine], [])
    with pytest.raises(ValueError, match="gts"):
        evaluate_hierarchy([fine], None)
    with pytest.raises(ValueError, match="integer"):
        evaluate_hierarchy([fine + 0.25], humans)
    with pytest.raises(ValueError, match="neither"):
        evaluate_hierarchy([fine], humans, boundaries=False, regions=False)
