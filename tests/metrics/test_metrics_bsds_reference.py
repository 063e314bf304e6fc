"""Acceptance: our benchmark against the outputs of the official MATLAB BSDS500 benchmark.

``reference/bench_fixture`` holds 5 images with their human segmentations, inputs in the three
formats and what ``bench/test_benchs.m`` wrote (see the BSDS500 README):
test_1 = allBench on ucm2 (nthresh 5), test_2 = boundaryBench on png (nthresh 5),
test_3 = boundaryBench on segs, test_4 = allBench on segs, test_5 = regionBench on segs.
Tolerances: region measures 1e-3, boundary R/P/F 5e-3 (the official matcher is a randomised
approximation of the optimal correspondence: test_3 and test_4 evaluate the same input and
already differ by up to 5e-4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matbackprop.metrics import (
    aggregate_boundary,
    aggregate_region,
    evaluate_boundary_map,
    evaluate_hierarchy,
    evaluate_ucm2,
    human_boundaries,
    interpolated_best_f,
    pr_curve_area,
)

pytestmark = pytest.mark.needs_shared

IMAGES = ("2018", "3063", "5096", "6046", "8068")  # the official order (sorted *.jpg)
REGION_TOL = 1e-3
BOUNDARY_TOL = 5e-3
# ODS / per-image thresholds of the boundary benchmark are interpolated between thresholds and
# may move more than R/P/F do; they are compared loosely.
BOUNDARY_THRESHOLD_TOL = 0.02


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    return loadmat(path)


def _table(path: Path) -> np.ndarray:
    return np.loadtxt(path, ndmin=2)


@pytest.fixture(scope="module")
def humans(bsds_reference: Path) -> dict[str, tuple[list, list]]:
    out = {}
    for name in IMAGES:
        gt = _loadmat(bsds_reference / "groundTruth" / f"{name}.mat")["groundTruth"]
        k = gt.shape[1]
        segs = [gt[0, i]["Segmentation"][0, 0] for i in range(k)]
        bdry = [gt[0, i]["Boundaries"][0, 0] for i in range(k)]
        out[name] = (segs, bdry)
    return out


@pytest.fixture(scope="module")
def ucm2_results(bsds_reference, humans):
    res = []
    for name in IMAGES:
        ucm2 = _loadmat(bsds_reference / "ucm2" / f"{name}.mat")["ucm2"]
        segs, bdry = humans[name]
        res.append(evaluate_ucm2(ucm2, segs, nthresh=5, gt_boundaries=bdry, name=name))
    return res


@pytest.fixture(scope="module")
def segs_results(bsds_reference, humans):
    res = []
    for name in IMAGES:
        cell = _loadmat(bsds_reference / "segs" / f"{name}.mat")["segs"]  # (1, T) object array
        # human boundaries derived from the segmentations (they equal the stored ones)
        res.append(evaluate_hierarchy(cell, humans[name][0], name=name))
    return res


def check_boundary(ref_dir: Path, results) -> None:
    agg = aggregate_boundary(results)
    summary = _table(ref_dir / "eval_bdry.txt")[0]
    ours = [agg.ods_recall, agg.ods_precision, agg.ods_f, agg.ois_recall, agg.ois_precision,
            agg.ois_f, agg.ap]  # fmt: skip
    np.testing.assert_allclose(ours, summary[1:], atol=BOUNDARY_TOL, rtol=0)
    assert agg.ods_threshold == pytest.approx(summary[0], abs=BOUNDARY_THRESHOLD_TOL)
    thr = _table(ref_dir / "eval_bdry_thr.txt")
    np.testing.assert_allclose(agg.thresholds, thr[:, 0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(
        np.c_[agg.recall, agg.precision, agg.f], thr[:, 1:], atol=BOUNDARY_TOL, rtol=0
    )
    img = _table(ref_dir / "eval_bdry_img.txt")
    np.testing.assert_array_equal(img[:, 0], np.arange(1, len(results) + 1))
    np.testing.assert_allclose(
        np.c_[agg.image_recall, agg.image_precision, agg.image_f],
        img[:, 2:],
        atol=BOUNDARY_TOL,
        rtol=0,
    )
    np.testing.assert_allclose(agg.image_threshold, img[:, 1], atol=BOUNDARY_THRESHOLD_TOL)


def check_region(ref_dir: Path, results) -> None:
    agg = aggregate_region(results)
    cover = _table(ref_dir / "eval_cover.txt")[0]
    np.testing.assert_allclose(
        [agg.covering_ods_threshold, agg.covering_ods, agg.covering_ois, agg.covering_best],
        cover,
        atol=REGION_TOL,
        rtol=0,
    )
    rivoi = _table(ref_dir / "eval_RI_VOI.txt")[0]
    np.testing.assert_allclose(
        [agg.pri_ods_threshold, agg.pri_ods, agg.pri_ois,
         agg.voi_ods_threshold, agg.voi_ods, agg.voi_ois],
        rivoi,
        atol=REGION_TOL,
        rtol=0,
    )  # fmt: skip
    cover_thr = _table(ref_dir / "eval_cover_th.txt")
    np.testing.assert_allclose(agg.thresholds, cover_thr[:, 0], atol=1e-5, rtol=0)
    np.testing.assert_allclose(agg.covering, cover_thr[:, 1], atol=REGION_TOL, rtol=0)
    rivoi_thr = _table(ref_dir / "eval_RI_VOI_thr.txt")
    np.testing.assert_allclose(np.c_[agg.pri, agg.voi], rivoi_thr[:, 1:], atol=REGION_TOL, rtol=0)
    img = _table(ref_dir / "eval_cover_img.txt")
    np.testing.assert_allclose(
        np.c_[agg.image_threshold, agg.image_covering, agg.image_covering_precision],
        img[:, 1:],
        atol=REGION_TOL,
        rtol=0,
    )


def test_allbench_ucm2_boundary(bsds_reference, ucm2_results):
    check_boundary(bsds_reference / "test_1", ucm2_results)


def test_allbench_ucm2_region(bsds_reference, ucm2_results):
    check_region(bsds_reference / "test_1", ucm2_results)


def test_boundarybench_png(bsds_reference, humans):
    from PIL import Image

    results = []
    for name in IMAGES:
        pb = np.asarray(Image.open(bsds_reference / "png" / f"{name}.png"), dtype=np.float64)
        results.append(evaluate_boundary_map(pb / 255.0, humans[name][0], nthresh=5, name=name))
    check_boundary(bsds_reference / "test_2", results)


@pytest.mark.parametrize("run", ["test_3", "test_4"])
def test_bench_segs_boundary(bsds_reference, segs_results, run):
    check_boundary(bsds_reference / run, segs_results)


@pytest.mark.parametrize("run", ["test_4", "test_5"])
def test_bench_segs_region(bsds_reference, segs_results, run):
    check_region(bsds_reference / run, segs_results)


def test_human_boundaries_equal_the_stored_ones(humans):
    for segs, stored in humans.values():
        for derived, ref in zip(human_boundaries(segs), stored, strict=True):
            np.testing.assert_array_equal(derived, ref.astype(bool))


def test_each_annotator_against_itself(humans):
    segs, _ = humans["3063"]
    for gt in segs:
        res = evaluate_hierarchy([gt], [gt])
        assert res.region.covering[0] == pytest.approx(1.0)
        assert res.region.pri[0] == pytest.approx(1.0)
        assert res.region.voi[0] == pytest.approx(0.0, abs=1e-9)
        assert res.boundary.f[0] == pytest.approx(1.0)


def test_gpb_owt_ucm_test_set_summary(bsds_root):
    """ODS, AP and region ODS recomputed from the official dataset curves of gPb-owt-ucm."""
    ref = bsds_root / "reference" / "gpb_owt_ucm_test_eval"
    if not ref.is_dir():
        pytest.skip(f"{ref} not found")
    curve = _table(ref / "eval_bdry_thr.txt")
    summary = _table(ref / "eval_bdry.txt")[0]
    t, r, p, f = interpolated_best_f(curve[:, 0], curve[:, 1], curve[:, 2])
    np.testing.assert_allclose([t, r, p, f], summary[:4], atol=2e-6)
    assert pr_curve_area(curve[:, 1], curve[:, 2]) == pytest.approx(summary[7], abs=2e-6)
    cover = _table(ref / "eval_cover_th.txt")
    i = int(np.argmax(cover[:, 1]))
    np.testing.assert_allclose(
        [cover[i, 0], cover[i, 1]], _table(ref / "eval_cover.txt")[0, :2], atol=1e-6
    )
    rivoi = _table(ref / "eval_RI_VOI_thr.txt")
    summary = _table(ref / "eval_RI_VOI.txt")[0]
    i, j = int(np.argmax(rivoi[:, 1])), int(np.argmin(rivoi[:, 2]))
    np.testing.assert_allclose(
        [rivoi[i, 0], rivoi[i, 1], rivoi[j, 0], rivoi[j, 2]], summary[[0, 1, 3, 4]], atol=1e-6
    )
