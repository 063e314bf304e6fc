"""The official result format: segs cell (uint16, from 1) and ucm2, read back as the benchmark."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matbackprop.data._bsds_results import load_bsds_result, save_bsds_result
from matbackprop.metrics import evaluate_hierarchy, evaluate_ucm2


def test_round_trip_and_benchmark_reading(tmp_path):
    from scipy.io import loadmat

    coarse = np.zeros((6, 8), dtype=np.int64)
    coarse[:, 4:] = 7
    fine = coarse.copy()
    fine[3:] += 2
    u = np.zeros((13, 17))
    u[1:-1, 8] = 0.8
    u[6, 1:-1] = np.maximum(u[6, 1:-1], 0.3)
    path = save_bsds_result(tmp_path / "a" / "1.mat", segs=[torch.from_numpy(coarse), fine], ucm2=u)
    raw = loadmat(path)
    assert raw["segs"].shape == (1, 2)
    first = raw["segs"][0, 0]
    assert first.dtype == np.uint16 and first.min() == 1 and first.max() == 2
    back = load_bsds_result(path)
    np.testing.assert_array_equal(back["ucm2"], u)
    assert [len(np.unique(s)) for s in back["segs"]] == [2, 4]
    # the benchmark scores the cell as read by loadmat exactly like the original maps
    gt = [fine + 1]
    a = evaluate_hierarchy(raw["segs"], gt).to_dict()
    b = evaluate_hierarchy([coarse, fine], gt).to_dict()
    assert a["region"]["covering"] == b["region"]["covering"]
    assert evaluate_ucm2(raw["ucm2"], gt, nthresh=5).region is not None


def test_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="neither"):
        save_bsds_result(tmp_path / "x.mat")
    with pytest.raises(ValueError, match="ucm2"):
        save_bsds_result(tmp_path / "x.mat", ucm2=np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        save_bsds_result(tmp_path / "x.mat", ucm2=np.full((5, 5), 2.0))
    with pytest.raises(ValueError, match="shape"):
        save_bsds_result(tmp_path / "x.mat", ucm2=np.zeros((5, 5)), segs=[np.zeros((3, 3), int)])
    with pytest.raises(ValueError, match="integer"):
        save_bsds_result(tmp_path / "x.mat", segs=[np.zeros((2, 2))])

def _whosmat(path) -> list[tuple[str, tuple[int, ...], str]]:
    from scipy.io import whosmat

    return sorted(whosmat(str(path)))


@pytest.mark.needs_shared
def test_same_layout_as_the_official_segs_and_ucm2_files(bsds_reference, tmp_path):
    from scipy.io import loadmat

    for name in ("2018", "3063"):
        official = bsds_reference / "segs" / f"{name}.mat"
        maps = [m for m in loadmat(str(official))["segs"].ravel()]
        ours = save_bsds_result(tmp_path / f"{name}.mat", segs=maps)
        assert _whosmat(ours) == _whosmat(official)  # ('segs', (1, L), 'cell')
        back = load_bsds_result(ours)["segs"]
        for mine, theirs in zip(back, maps, strict=True):
            assert mine.dtype == theirs.dtype == np.uint16 and np.array_equal(mine, theirs)
        ucm_file = bsds_reference / "ucm2" / f"{name}.mat"
        ucm2 = loadmat(str(ucm_file))["ucm2"]
        ours = save_bsds_result(tmp_path / f"u{name}.mat", ucm2=ucm2, segs=maps)
        assert ("ucm2", ucm2.shape, "double") in _whosmat(ours)
        assert _whosmat(ucm_file) == [("ucm2", ucm2.shape, "double")]
        assert np.array_equal(load_bsds_result(ours)["ucm2"], ucm2)
