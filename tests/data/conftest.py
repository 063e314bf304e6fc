"""Builders of tiny on-disk fixtures in the BSDS500 and COCO layouts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def write_jpeg(path: Path, array: np.ndarray) -> None:
    """Write an ``(H, W, 3)`` uint8 array as a high-quality JPEG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=100, subsampling=0)


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth RGB image (JPEG-friendly) as ``(H, W, 3)`` uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.uniform(40, 200, size=3)
    ramp = 40 * (yy / height)[..., None] + 30 * (xx / width)[..., None]
    return np.clip(base + ramp, 0, 255).astype(np.uint8)


def random_segmentations(height: int, width: int, k: int, seed: int) -> list[np.ndarray]:
    """K blocky label maps with labels starting at 1 (like BSDS500)."""
    rng = np.random.default_rng(seed)
    segs = []
    for _ in range(k):
        coarse = rng.integers(1, 6, size=(3, 4))
        rows = np.minimum(np.arange(height) * 3 // height, 2)
        cols = np.minimum(np.arange(width) * 4 // width, 3)
        segs.append(coarse[rows][:, cols].astype(np.uint16))
    return segs


@pytest.fixture
def make_bsds(tmp_path: Path) -> Callable[..., dict]:
    """Write a tiny BSDS500 tree; returns ``{split: {id: (image array, segs, boundaries)}}``."""

    def build(splits: dict[str, list[tuple[str, int, int, int]]], root: Path | None = None):
        from matbackprop.data import save_bsds_ground_truth

        root = root or tmp_path / "BSDS500"
        written: dict[str, dict] = {}
        for split, items in splits.items():
            (root / "data" / "images" / split).mkdir(parents=True, exist_ok=True)
            (root / "data" / "groundTruth" / split).mkdir(parents=True, exist_ok=True)
            written[split] = {}
            for n, (image_id, height, width, k) in enumerate(items):
                image = smooth_image(height, width, seed=n)
                segs = random_segmentations(height, width, k, seed=100 + n)
                rng = np.random.default_rng(200 + n)
                bdrys = [rng.integers(0, 2, size=(height, width)).astype(np.uint8) for _ in segs]
                write_jpeg(root / "data" / "images" / split / f"{image_id}.jpg", image)
                save_bsds_ground_truth(
                    root / "data" / "groundTruth" / split / f"{image_id}.mat", segs, bdrys
                )
                written[split][image_id] = (image, segs, bdrys)
        return root, written

    return build


def _square_polygon(x0: float, y0: float, x1: float, y1: float) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


@pytest.fixture
def make_coco(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny COCO tree (split ``mini``) and return its root.

    Images: 1 (40 x 60) with two polygon instances (categories 90 and 3), one crowd RLE
    (category 1) and one 4 x 4 instance (area 16); 2 (50 x 30) with one polygon (category 5);
    3 (20 x 20) with only a crowd instance.
    """

    def build() -> Path:
        from pycocotools import mask as mask_utils

        root = tmp_path / "coco"
        (root / "annotations").mkdir(parents=True)
        sizes = {1: (40, 60), 2: (50, 30), 3: (20, 20)}
        images = []
        for image_id, (h, w) in sizes.items():
            name = f"{image_id:012d}.jpg"
            write_jpeg(root / "mini" / name, smooth_image(h, w, seed=image_id))
            images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        crowd = np.zeros((40, 60), dtype=np.uint8, order="F")
        crowd[30:38, 2:20] = 1
        rle = mask_utils.encode(np.asfortranarray(crowd))
        crowd3 = np.zeros((20, 20), dtype=np.uint8, order="F")
        crowd3[2:18, 2:18] = 1
        rle3 = mask_utils.encode(np.asfortranarray(crowd3))
        annotations = [
            # polygon square x in [10, 30), y in [5, 25): area 400
            {
                "id": 11,
                "image_id": 1,
                "category_id": 90,
                "iscrowd": 0,
                "area": 400.0,
                "segmentation": [_square_polygon(10, 5, 30, 25)],
                "bbox": [10, 5, 20, 20],
            },
            # two-part polygon instance, area 2 * 150 = 300
            {
                "id": 12,
                "image_id": 1,
                "category_id": 3,
                "iscrowd": 0,
                "area": 300.0,
                "segmentation": [_square_polygon(35, 2, 50, 12), _square_polygon(35, 20, 50, 30)],
                "bbox": [35, 2, 15, 28],
            },
            {
                "id": 13,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 1,
                "area": float(crowd.sum()),
                "segmentation": {"size": [40, 60], "counts": rle["counts"].decode("ascii")},
                "bbox": [2, 30, 18, 8],
            },
            {
                "id": 14,
                "image_id": 1,
                "category_id": 5,
                "iscrowd": 0,
                "area": 16.0,
                "segmentation": [_square_polygon(52, 32, 56, 36)],
                "bbox": [52, 32, 4, 4],
            },
            {
                "id": 21,
                "image_id": 2,
                "category_id": 5,
                "iscrowd": 0,
                "area": 500.0,
                "segmentation": [_square_polygon(5, 10, 25, 35)],
                "bbox": [5, 10, 20, 25],
            },
            {
                "id": 31,
                "image_id": 3,
                "category_id": 1,
                "iscrowd": 1,
                "area": 256.0,
                "segmentation": {"size": [20, 20], "counts": rle3["counts"].decode("ascii")},
                "bbox": [2, 2, 16, 16],
            },
        ]
        categories = [
            {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 5, "name": "airplane", "supercategory": "vehicle"},
            {"id": 3, "name": "car", "supercategory": "vehicle"},
        ]
        data = {
            "info": {},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        (root / "annotations" / "instances_mini.json").write_text(json.dumps(data))
        return root

    return build
