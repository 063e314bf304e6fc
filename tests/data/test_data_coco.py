"""COCORegions: a tiny COCO JSON written in the test (polygons, crowd RLE, tiny instance)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from matbackprop.data import (
    COCORegions,
    COCOSample,
    DataFileError,
    decode_coco_segmentation,
    resize_masks,
)


@pytest.fixture
def coco(make_coco):
    return make_coco()


def test_categories_map_to_sorted_contiguous_labels(coco):
    ds = COCORegions(coco, "mini", min_area=50)
    assert ds.category_ids == [1, 3, 5, 90]
    assert ds.category_names == ["person", "car", "airplane", "toothbrush"]
    assert ds.category_to_label == {1: 0, 3: 1, 5: 2, 90: 3}
    assert ds.num_classes == 4


def test_crowd_tiny_and_empty_images_are_skipped(coco):
    ds = COCORegions(coco, "mini", min_area=50)
    # image 3 holds only a crowd instance -> dropped at construction
    assert ds.ids == [1, 2]
    assert len(ds) == 2
    first = ds[0]
    assert isinstance(first, COCOSample)
    assert first.image_id == 1
    # crowd (13) and the 16-pixel instance (14) are skipped
    assert first.annotation_ids.tolist() == [11, 12]
    assert first.category_ids.tolist() == [90, 3]
    assert first.labels.tolist() == [3, 1]
    assert first.labels.dtype == torch.int64
    second = ds[1]
    assert second.annotation_ids.tolist() == [21]
    assert second.labels.tolist() == [2]


def test_min_area_is_configurable(coco):
    ds = COCORegions(coco, "mini", min_area=0)
    assert ds[0].annotation_ids.tolist() == [11, 12, 14]
    ds = COCORegions(coco, "mini", min_area=350)
    assert ds.ids == [1, 2]
    assert ds[0].annotation_ids.tolist() == [11]


def test_masks_follow_the_polygons(coco):
    sample = COCORegions(coco, "mini", min_area=50)[0]
    assert sample.image.shape == (3, 40, 60)
    assert sample.image.dtype == torch.float32
    assert sample.masks.shape == (2, 40, 60)
    assert sample.masks.dtype == torch.bool
    square, two_part = sample.masks
    assert square[15, 20] and not square[35, 50] and not square[2, 2]
    assert abs(int(square.sum()) - 400) <= 45
    # two disjoint parts, both present, gap between them empty
    assert two_part[7, 40] and two_part[25, 40] and not two_part[16, 40]
    assert abs(int(two_part.sum()) - 300) <= 60


def test_max_size_resizes_image_and_masks_consistently(coco):
    full = COCORegions(coco, "mini", min_area=0)[0]
    ds = COCORegions(coco, "mini", min_area=0, max_size=15)
    small = ds[0]
    assert small.image.shape == (3, 10, 15)
    assert small.masks.shape == (3, 10, 15)
    # every kept region survives the downscaling, even the 4 x 4 one
    assert bool(small.masks.flatten(1).any(dim=1).all())
    # the big square covers about the same fraction of the image
    frac_full = full.masks[0].float().mean()
    frac_small = small.masks[0].float().mean()
    assert abs(float(frac_full - frac_small)) < 0.06


def test_min_area_counts_pixels_of_the_returned_image(coco):
    # at max_size=30 (scale 1/2) the 400-pixel square has area 100, the 300 one 75
    ds = COCORegions(coco, "mini", min_area=80, max_size=30)
    assert ds[0].annotation_ids.tolist() == [11]


def test_transform_is_applied(coco):
    ds = COCORegions(coco, "mini", min_area=50, transform=lambda s: s.num_regions)
    assert [ds[0], ds[1]] == [2, 1]


def test_paths_name_the_image(coco):
    ds = COCORegions(coco, "mini", min_area=50)
    assert ds.paths(1).name == "000000000002.jpg"
    assert ds.annotation_file.name == "instances_mini.json"


# -- errors --------------------------------------------------------------------------------------


def test_missing_annotation_file(coco):
    with pytest.raises(DataFileError, match=re.escape("instances_other.json")):
        COCORegions(coco, "other")


def test_invalid_json(coco):
    (coco / "annotations" / "instances_mini.json").write_text("{not json")
    with pytest.raises(DataFileError, match=re.escape("instances_mini.json")):
        COCORegions(coco, "mini")


def test_unknown_category(coco):
    path = coco / "annotations" / "instances_mini.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 77
    path.write_text(json.dumps(data))
    with pytest.raises(DataFileError, match=r"instances_mini\.json.*77"):
        COCORegions(coco, "mini")


def test_missing_image_file_at_construction(coco):
    (coco / "mini" / "000000000002.jpg").unlink()
    with pytest.raises(DataFileError, match=re.escape("000000000002.jpg")):
        COCORegions(coco, "mini")


def test_corrupt_image_at_load(coco):
    path = coco / "mini" / "000000000001.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    ds = COCORegions(coco, "mini")
    ds[1]
    with pytest.raises(DataFileError, match=re.escape("000000000001.jpg")):
        ds[0]


def test_image_size_disagreeing_with_json(coco):
    path = coco / "annotations" / "instances_mini.json"
    data = json.loads(path.read_text())
    data["images"][1]["height"] = 51
    path.write_text(json.dumps(data))
    with pytest.raises(DataFileError, match=re.escape("000000000002.jpg")):
        COCORegions(coco, "mini")[1]


def test_undecodable_segmentation(coco):
    path = coco / "annotations" / "instances_mini.json"
    data = json.loads(path.read_text())
    data["annotations"][4]["segmentation"] = [[1, 2, 3]]
    path.write_text(json.dumps(data))
    ds = COCORegions(coco, "mini")
    with pytest.raises(DataFileError, match=r"instances_mini\.json.*21"):
        ds[1]


def test_bad_arguments(coco):
    with pytest.raises(ValueError, match="min_area"):
        COCORegions(coco, "mini", min_area=-1)
    with pytest.raises(ValueError, match="max_size"):
        COCORegions(coco, "mini", max_size=0)


def test_decode_forms_agree():
    from pycocotools import mask as mask_utils

    mask = np.zeros((9, 7), dtype=np.uint8)
    mask[2:6, 1:5] = 1
    compressed = mask_utils.encode(np.asfortranarray(mask))
    as_text = {"size": [9, 7], "counts": compressed["counts"].decode("ascii")}
    np.testing.assert_array_equal(decode_coco_segmentation(as_text, 9, 7), mask.astype(bool))
    # uncompressed RLE: column-major run lengths starting with zeros
    flat = mask.flatten(order="F")
    runs, current, length = [], 0, 0
    for v in flat:
        if v == current:
            length += 1
        else:
            runs.append(length)
            current, length = v, 1
    runs.append(length)
    uncompressed = {"size": [9, 7], "counts": runs}
    np.testing.assert_array_equal(decode_coco_segmentation(uncompressed, 9, 7), mask.astype(bool))
    with pytest.raises(ValueError):
        decode_coco_segmentation({"size": [8, 7], "counts": runs}, 9, 7)


def test_resize_masks_keeps_every_mask():
    masks = torch.zeros(3, 40, 40, dtype=torch.bool)
    masks[0, :20] = True
    masks[1, 5, 5] = True  # one pixel: would vanish when shrinking by 8
    masks[2, 30:, 30:] = True
    out = resize_masks(masks, (5, 5))
    assert out.shape == (3, 5, 5) and out.dtype == torch.bool
    assert bool(out.flatten(1).any(dim=1).all())
    assert out[1].sum() == 1 and out[1, 0, 0]
    assert out[0, :2].all() and not out[0, 3:].any()


# -- real data -----------------------------------------------------------------------------------


@pytest.mark.needs_shared
def test_real_coco_mini_val(coco_root):
    ds = COCORegions(coco_root, "val2017", max_size=160)
    assert ds.num_classes == 80
    assert ds.category_ids == sorted(ds.category_ids)
    assert len(ds) > 150
    for index in list(range(8)) + [len(ds) - 1]:
        sample = ds[index]
        assert max(sample.image.shape[1:]) <= 160
        assert sample.masks.shape[1:] == sample.image.shape[1:]
        assert sample.num_regions >= 1
        assert bool(sample.masks.flatten(1).any(dim=1).all())
        assert 0 <= int(sample.labels.min()) and int(sample.labels.max()) <= 79
        for label, cat in zip(sample.labels.tolist(), sample.category_ids.tolist(), strict=True):
            assert ds.category_ids[label] == cat
