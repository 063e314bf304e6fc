"""BSDS500 loader: tiny fixtures in the official layout (with a test split), errors, real data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from matbackprop.data import (
    BSDS500,
    BSDSSample,
    DataFileError,
    collate_list,
    label_boundaries,
    read_bsds_ground_truth,
    save_bsds_ground_truth,
)

LAYOUT = {
    "train": [("2092", 12, 20, 4), ("100075", 20, 12, 6)],
    "val": [("3096", 16, 24, 5)],
    "test": [("100007", 18, 14, 9), ("100039", 14, 18, 4)],
}


@pytest.fixture
def tree(make_bsds):
    return make_bsds(LAYOUT)


def test_items_of_every_split_including_test(tree):
    root, written = tree
    for split, items in LAYOUT.items():
        ds = BSDS500(root, split)
        assert len(ds) == len(items)
        assert ds.ids == sorted(i[0] for i in items)
        for index, image_id in enumerate(ds.ids):
            sample = ds[index]
            image, segs, _ = written[split][image_id]
            assert isinstance(sample, BSDSSample)
            assert sample.image_id == image_id
            assert sample.image.dtype == torch.float32
            assert sample.image.shape == (3, *image.shape[:2])
            assert 0.0 <= float(sample.image.min()) and float(sample.image.max()) <= 1.0
            # JPEG at quality 100 of a smooth image: within a few grey levels.
            expected = torch.from_numpy(image).permute(2, 0, 1).float() / 255
            assert (sample.image - expected).abs().max() < 6 / 255
            assert len(sample.segmentations) == len(segs)
            for got, want in zip(sample.segmentations, segs, strict=True):
                assert got.dtype == torch.int64
                assert torch.equal(got, torch.from_numpy(want.astype(np.int64)))
            assert sample.boundaries is None
            assert ds.paths(index).image.name == f"{image_id}.jpg"
            assert ds.paths(index).ground_truth.name == f"{image_id}.mat"


def test_negative_index_and_range(tree):
    root, _ = tree
    ds = BSDS500(root, "test")
    assert ds[-1].image_id == ds.ids[-1]
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_boundaries_are_read_as_stored(tree):
    root, written = tree
    ds = BSDS500(root, "test", boundaries=True)
    sample = ds[0]
    _, _, bdrys = written["test"][sample.image_id]
    assert len(sample.boundaries) == len(bdrys)
    for got, want in zip(sample.boundaries, bdrys, strict=True):
        assert got.dtype == torch.bool
        assert torch.equal(got, torch.from_numpy(want.astype(bool)))


def test_max_size_resizes_image_and_labels_together(tree):
    root, written = tree
    ds = BSDS500(root, "train", max_size=10, boundaries=True)
    for index, image_id in enumerate(ds.ids):
        sample = ds[index]
        image, segs, _ = written["train"][image_id]
        h, w = image.shape[:2]
        assert max(sample.size) == 10
        assert abs(sample.size[0] / sample.size[1] - h / w) < 0.15
        for seg, want in zip(sample.segmentations, segs, strict=True):
            assert seg.shape == sample.size
            assert set(seg.unique().tolist()) <= set(np.unique(want).tolist())
        for bd, seg in zip(sample.boundaries, sample.segmentations, strict=True):
            assert torch.equal(bd, label_boundaries(seg))
    # Images already small enough are left alone.
    big = BSDS500(root, "train", max_size=100)
    assert big[0].size == BSDS500(root, "train")[0].size


def test_transform_and_list_collate(tree):
    root, _ = tree
    ds = BSDS500(root, "test", transform=lambda s: (s.image_id, len(s.segmentations)))
    assert ds[0] == (ds.ids[0], 9)
    loader = DataLoader(BSDS500(root, "test"), batch_size=2, collate_fn=collate_list)
    (batch,) = list(loader)
    assert isinstance(batch, list) and len(batch) == 2
    assert [s.image_id for s in batch] == BSDS500(root, "test").ids


def test_root_from_environment(tree, monkeypatch):
    root, _ = tree
    monkeypatch.setenv("MATBACKPROP_BSDS_ROOT", str(root))
    assert BSDS500(split="val").root == root


def test_unresolved_root_says_how_to_set_it(monkeypatch, tmp_path):
    monkeypatch.delenv("MATBACKPROP_BSDS_ROOT", raising=False)
    monkeypatch.setenv("MATBACKPROP_SHARED", str(tmp_path / "nothing-here"))
    with pytest.raises(DataFileError, match="MATBACKPROP_BSDS_ROOT"):
        BSDS500(split="val")


# -- errors --------------------------------------------------------------------------------------


def _raises_naming(name: str):
    return pytest.raises(DataFileError, match=re.escape(name))


def test_missing_root(tmp_path):
    with _raises_naming("nowhere"):
        BSDS500(tmp_path / "nowhere", "train")


def test_missing_split_folder(tree):
    root, _ = tree
    with _raises_naming(str(Path("images") / "holdout")):
        BSDS500(root, "holdout")


def test_missing_ground_truth_file_at_construction(tree):
    root, _ = tree
    (root / "data" / "groundTruth" / "train" / "2092.mat").unlink()
    with _raises_naming("2092.mat"):
        BSDS500(root, "train")


def test_split_without_images(tree):
    root, _ = tree
    (root / "data" / "images" / "val" / "3096.jpg").unlink()
    with _raises_naming(str(Path("images") / "val")):
        BSDS500(root, "val")


def test_ground_truth_without_image(tree):
    root, _ = tree
    save_bsds_ground_truth(
        root / "data" / "groundTruth" / "train" / "999.mat", [np.ones((4, 4), np.uint16)]
    )
    with _raises_naming("999.mat"):
        BSDS500(root, "train")


def test_truncated_jpeg_raises_at_load(tree):
    root, _ = tree
    path = root / "data" / "images" / "test" / "100039.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    ds = BSDS500(root, "test")  # existence is fine: construction succeeds
    ds[0]  # the other image still loads
    with _raises_naming("100039.jpg"):
        ds[1]


def test_not_an_image_raises(tree):
    root, _ = tree
    (root / "data" / "images" / "val" / "3096.jpg").write_bytes(b"definitely not a jpeg")
    with _raises_naming("3096.jpg"):
        BSDS500(root, "val")[0]


def test_garbage_mat_raises(tree):
    root, _ = tree
    (root / "data" / "groundTruth" / "val" / "3096.mat").write_bytes(b"\x00garbage" * 50)
    with _raises_naming("3096.mat"):
        BSDS500(root, "val")[0]


def test_mat_without_ground_truth_key_raises(tree):
    import scipy.io

    root, _ = tree
    path = root / "data" / "groundTruth" / "val" / "3096.mat"
    scipy.io.savemat(str(path), {"somethingElse": np.ones((16, 24))})
    with pytest.raises(DataFileError, match=r"3096\.mat.*groundTruth"):
        BSDS500(root, "val")[0]


def test_mat_with_wrong_structure_raises(tree):
    import scipy.io

    root, _ = tree
    path = root / "data" / "groundTruth" / "val" / "3096.mat"
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0] = np.ones((16, 24))
    cell[0, 1] = np.ones((16, 24))
    scipy.io.savemat(str(path), {"groundTruth": cell})
    with pytest.raises(DataFileError, match=r"3096\.mat.*Segmentation"):
        BSDS500(root, "val")[0]


def test_segmentation_shape_mismatch_raises(tree):
    root, _ = tree
    path = root / "data" / "groundTruth" / "val" / "3096.mat"
    # transposed: (W, H) instead of (H, W)
    save_bsds_ground_truth(path, [np.ones((24, 16), np.uint16)] * 5)
    with pytest.raises(DataFileError, match=r"3096\.mat.*\(24, 16\)"):
        BSDS500(root, "val")[0]


def test_annotators_of_different_sizes_raise(tmp_path):
    import scipy.io

    cell = np.empty((1, 2), dtype=object)
    for k, shape in enumerate([(4, 5), (5, 4)]):
        entry = np.empty((1, 1), dtype=[("Segmentation", object), ("Boundaries", object)])
        entry[0, 0]["Segmentation"] = np.ones(shape, np.uint16)
        entry[0, 0]["Boundaries"] = np.zeros(shape, np.uint8)
        cell[0, k] = entry
    path = tmp_path / "bad.mat"
    scipy.io.savemat(str(path), {"groundTruth": cell})
    with _raises_naming("bad.mat"):
        read_bsds_ground_truth(path)


def test_struct_array_layout_reads_every_annotator(tmp_path):
    import scipy.io

    segs = [np.full((3, 4), k + 1, np.uint16) for k in range(3)]
    array = np.empty((1, 3), dtype=[("Segmentation", object), ("Boundaries", object)])
    for k, s in enumerate(segs):
        array[0, k]["Segmentation"] = s
        array[0, k]["Boundaries"] = np.zeros((3, 4), np.uint8)
    scipy.io.savemat(str(tmp_path / "s.mat"), {"groundTruth": array})
    got, bdrys = read_bsds_ground_truth(tmp_path / "s.mat", boundaries=True)
    assert [int(g.max()) for g in got] == [1, 2, 3]
    assert len(bdrys) == 3


def test_float_labels_accepted_only_when_integral(tmp_path):
    import scipy.io

    def write(value):
        entry = np.empty((1, 1), dtype=[("Segmentation", object), ("Boundaries", object)])
        entry[0, 0]["Segmentation"] = value
        entry[0, 0]["Boundaries"] = np.zeros((2, 2), np.uint8)
        cell = np.empty((1, 1), dtype=object)
        cell[0, 0] = entry
        scipy.io.savemat(str(tmp_path / "g.mat"), {"groundTruth": cell})

    write(np.array([[1.0, 2.0], [2.0, 3.0]]))
    segs, _ = read_bsds_ground_truth(tmp_path / "g.mat")
    assert segs[0].dtype == np.int64 and segs[0].tolist() == [[1, 2], [2, 3]]
    write(np.array([[1.5, 2.0], [2.0, 3.0]]))
    with _raises_naming("g.mat"):
        read_bsds_ground_truth(tmp_path / "g.mat")


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_size"):
        BSDS500("/nonexistent", "val", max_size=0)
    with pytest.raises(ValueError, match="split"):
        BSDS500("/nonexistent", "../val")


def test_saved_layout_is_a_cell_of_structs(tmp_path):
    import scipy.io

    segs = [np.arange(12, dtype=np.uint16).reshape(3, 4) + 1, np.ones((3, 4), np.uint16)]
    save_bsds_ground_truth(tmp_path / "g.mat", segs)
    gt = scipy.io.loadmat(str(tmp_path / "g.mat"))["groundTruth"]
    assert gt.shape == (1, 2) and gt.dtype == object
    entry = gt[0, 1]
    assert entry.shape == (1, 1) and entry.dtype.names == ("Segmentation", "Boundaries")
    assert entry["Segmentation"][0, 0].dtype == np.uint16
    assert entry["Boundaries"][0, 0].dtype == np.uint8
    np.testing.assert_array_equal(gt[0, 0]["Segmentation"][0, 0], segs[0])


# -- real data -----------------------------------------------------------------------------------


@pytest.mark.needs_shared
def test_saved_layout_matches_a_real_file(bsds_root, tmp_path):
    import scipy.io

    real_path = next(iter(sorted((bsds_root / "data" / "groundTruth" / "val").glob("*.mat"))))
    real = scipy.io.loadmat(str(real_path))["groundTruth"]
    segs, bdrys = read_bsds_ground_truth(real_path, boundaries=True)
    save_bsds_ground_truth(tmp_path / "copy.mat", segs, bdrys)
    ours = scipy.io.loadmat(str(tmp_path / "copy.mat"))["groundTruth"]

    def describe(gt):
        entry = gt[0, 0]
        return (
            gt.ndim,
            gt.shape[0],
            gt.dtype,
            entry.shape,
            entry.dtype.names,
            entry["Segmentation"].shape,
            entry["Segmentation"].dtype,
            entry["Segmentation"][0, 0].dtype,
            entry["Boundaries"][0, 0].dtype,
        )

    assert describe(ours) == describe(real)
    assert ours.shape == real.shape
    for k in range(real.shape[1]):
        for field in ("Segmentation", "Boundaries"):
            np.testing.assert_array_equal(ours[0, k][field][0, 0], real[0, k][field][0, 0])


@pytest.mark.needs_shared
def test_real_val_split(bsds_root):
    ds = BSDS500(bsds_root, "val")
    assert len(ds) == 100
    counts = []
    for index in range(len(ds)):
        sample = ds[index]
        assert sample.image.shape[0] == 3
        assert sorted(sample.size) == [321, 481]
        assert 4 <= len(sample.segmentations) <= 9
        counts.append(len(sample.segmentations))
        for seg in sample.segmentations:
            assert seg.shape == sample.size
            assert int(seg.min()) >= 1
    assert 4.5 < np.mean(counts) < 6.5


@pytest.mark.needs_shared
def test_real_train_split_and_resize(bsds_root):
    ds = BSDS500(bsds_root, "train", max_size=128, boundaries=True)
    assert len(ds) == 200
    sample = ds[0]
    assert max(sample.size) == 128
    assert all(b.shape == sample.size for b in sample.boundaries)
