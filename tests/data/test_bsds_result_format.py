"""BSDS result files (`segs` / `ucm2` .mat) have the layout of the official benchmark's files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matbackprop.data import load_bsds_result, save_bsds_result


def _whosmat(path) -> list[tuple[str, tuple[int, ...], str]]:
    from scipy.io import whosmat

    return sorted(whosmat(str(path)))


def test_roundtrip_relabels_to_uint16_from_one(tmp_path):
    coarse = torch.zeros(5, 7, dtype=torch.long)
    fine = torch.arange(35).reshape(5, 7) * 3  # labels 0, 3, 6, ... -> 1 .. 35
    path = save_bsds_result(tmp_path / "a.mat", segs=[coarse, fine])
    segs = load_bsds_result(path)["segs"]
    assert [s.dtype for s in segs] == [np.uint16, np.uint16]
    assert segs[0].tolist() == np.ones((5, 7)).tolist()
    assert segs[1].tolist() == (np.arange(35).reshape(5, 7) + 1).tolist()
    assert _whosmat(path) == [("segs", (1, 2), "cell")]


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "neither"),
        ({"segs": []}, "at least one"),
        ({"segs": [np.zeros((3, 3))]}, "integer"),
        ({"segs": [np.zeros((3, 3), int), np.zeros((3, 4), int)]}, r"segs\[1\].*shape"),
        ({"ucm2": np.zeros((4, 5))}, r"\(2H \+ 1, 2W \+ 1\)"),
        ({"ucm2": np.full((5, 5), 2.0)}, r"\[0, 1\]"),
        ({"ucm2": np.zeros((5, 7)), "segs": [np.zeros((3, 3), int)]}, r"shape \(2, 3\)"),
    ],
)
def test_bad_input_names_the_argument(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        save_bsds_result(tmp_path / "bad.mat", **kwargs)
    assert not (tmp_path / "bad.mat").exists()
