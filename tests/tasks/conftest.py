"""Tiny on-disk data sets in the BSDS500 and COCO layouts, shared by the task tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from matbackprop.data import save_bsds_ground_truth


def _write_bsds_split(root, split, n, rng):
    from PIL import Image

    (root / "data" / "images" / split).mkdir(parents=True)
    (root / "data" / "groundTruth" / split).mkdir(parents=True)
    for i in range(n):
        h, w = 40, 56
        seg = np.ones((h, w), dtype=np.uint16)
        seg[:, w // 2 :] = 2
        seg[h // 2 :, : w // 3] = 3
        colours = rng.uniform(30, 220, size=(4, 3))
        image = colours[seg] + rng.normal(0, 5, size=(h, w, 3))
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(
            root / "data" / "images" / split / f"{i}.jpg", quality=95
        )
        coarse = np.where(seg == 3, 1, seg).astype(np.uint16)
        save_bsds_ground_truth(root / "data" / "groundTruth" / split / f"{i}.mat", [seg, coarse])


@pytest.fixture
def tiny_bsds(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "BSDS500"
    _write_bsds_split(root, "train", 3, rng)
    _write_bsds_split(root, "val", 2, rng)
    return root



CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 18, "name": "dog", "supercategory": "animal"},
]
# image id -> list of (category id, x0, y0, x1, y1, iscrowd); images are 60 x 80 (H x W)
TRAIN = {
    1: [(1, 5, 5, 35, 35, 0), (3, 40, 30, 75, 55, 0)],
    2: [(18, 10, 10, 50, 40, 0), (1, 55, 5, 78, 50, 0)],
    3: [
        (3, 2, 20, 40, 58, 0),
        (18, 45, 2, 75, 30, 0),
        (1, 70, 50, 72, 52, 0),
        (1, 45, 35, 70, 55, 1),
    ],
}
VAL = {11: [(1, 10, 5, 40, 40, 0), (3, 45, 20, 78, 50, 0)], 12: [(18, 20, 10, 60, 50, 0)]}


def _write_coco_split(root: Path, split: str, spec: dict, seed: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    (root / split).mkdir(parents=True)
    images, annotations = [], []
    for image_id, instances in spec.items():
        name = f"{image_id:012d}.jpg"
        yy, xx = np.mgrid[0:60, 0:80]
        array = rng.uniform(40, 200, size=3) + 30 * (yy / 60)[..., None] + 20 * (xx / 80)[..., None]
        for k, (_, x0, y0, x1, y1, _) in enumerate(instances):
            array[y0:y1, x0:x1] = 40 + 60 * k
        Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(root / split / name)
        images.append({"id": image_id, "file_name": name, "height": 60, "width": 80})
        for k, (category, x0, y0, x1, y1, crowd) in enumerate(instances):
            annotations.append(
                {
                    "id": image_id * 100 + k,
                    "image_id": image_id,
                    "category_id": category,
                    "iscrowd": crowd,
                    "area": float((x1 - x0) * (y1 - y0)),
                    "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                }
            )
    data = {
        "info": {},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))


@dataclass(frozen=True)
class TinyCoco:
    root: Path
    val_regions: int  # the regions of VAL that COCORegions(min_area=20) keeps


@pytest.fixture(scope="module")
def coco_tiny(tmp_path_factory) -> TinyCoco:
    """Three train2017 and two val2017 images, 60 x 80, with box instances (3 categories);
    the 2 x 2 instance of train image 3 and its crowd one are skipped."""
    root = tmp_path_factory.mktemp("coco")
    _write_coco_split(root, "train2017", TRAIN, seed=0)
    _write_coco_split(root, "val2017", VAL, seed=1)
    return TinyCoco(root, val_regions=3)
