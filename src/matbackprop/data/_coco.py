"""COCO instance regions for region classification (the O2P setting)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from matbackprop.errors import DataFileError

from ._images import read_rgb_image
from ._indexing import check_index
from ._paths import COCO_ENV, resolve_root
from ._transforms import keep_aspect_size, resize_image

__all__ = ["COCORegions", "COCOSample", "decode_coco_segmentation", "resize_masks"]


@dataclass(frozen=True)
class COCOSample:
    """One COCO image with its kept instance regions.

    Attributes
    ----------
    image : torch.Tensor
        ``(3, H, W)`` float32 RGB in ``[0, 1]``.
    masks : torch.Tensor
        ``(R, H, W)`` bool instance masks, R >= 1 (instances may overlap).
    labels : torch.Tensor
        ``(R,)`` int64 contiguous class labels in ``0 .. num_classes - 1``.
    category_ids : torch.Tensor
        ``(R,)`` int64 original COCO category ids.
    annotation_ids : torch.Tensor
        ``(R,)`` int64 COCO annotation ids.
    image_id : int
        COCO image id.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import COCOSample
    >>> sample = COCOSample(torch.rand(3, 8, 8), torch.ones(1, 8, 8, dtype=torch.bool),
    ...                 torch.tensor([0]), torch.tensor([18]), torch.tensor([7]), image_id=1)
    >>> sample.masks.shape, sample.image_id
    (torch.Size([1, 8, 8]), 1)
    """

    image: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    category_ids: torch.Tensor
    annotation_ids: torch.Tensor
    image_id: int

    @property
    def num_regions(self) -> int:
        """Number of regions R."""
        return int(self.masks.shape[0])


def decode_coco_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` (polygons, RLE or compressed RLE) to a mask.

    Parameters
    ----------
    segmentation : list or dict
        A list of polygons ``[[x1, y1, x2, y2, ...], ...]``, an uncompressed RLE
        ``{"size": [h, w], "counts": [int, ...]}`` or a compressed one (``counts`` a string).
    height, width : int
        Image size.

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` bool mask.

    Raises
    ------
    ValueError
        If the segmentation has an unknown form or cannot be decoded.

    Examples
    --------
    >>> from matbackprop.data import decode_coco_segmentation
    >>> mask = decode_coco_segmentation([[1.0, 1.0, 5.0, 1.0, 5.0, 3.0, 1.0, 3.0]], 4, 6)
    >>> mask.shape, mask.dtype
    ((4, 6), dtype('bool'))
    >>> mask.astype(int)
    array([[0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0]])
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        if not segmentation or not all(
            isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in segmentation
        ):
            raise ValueError("polygons must be lists of at least 3 (x, y) pairs")
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            raise ValueError(
                f"RLE size {segmentation['size']} differs from the image size {[height, width]}"
            )
        if isinstance(segmentation["counts"], list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = dict(segmentation)
            if isinstance(rle["counts"], str):
                rle["counts"] = rle["counts"].encode("ascii")
    else:
        raise ValueError(f"unknown segmentation form {type(segmentation).__name__}")
    with warnings.catch_warnings():
        # pycocotools built against NumPy 1 warns about `copy=False` on every decode.
        warnings.filterwarnings(
            "ignore", message="__array__ implementation", category=DeprecationWarning
        )
        mask = mask_utils.decode(rle)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return mask.astype(bool)


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize binary masks so that no mask vanishes.

    Each mask is resampled as a float image with antialiased bilinear interpolation (area
    weights when shrinking) and thresholded at 0.5; a mask left empty keeps the one pixel of
    largest coverage.

    Parameters
    ----------
    masks : torch.Tensor
        ``(R, H, W)`` bool (or 0/1) masks.
    size : tuple of int
        Output ``(h, w)``.

    Returns
    -------
    torch.Tensor
        ``(R, h, w)`` bool, on the device of ``masks``.

    Raises
    ------
    ValueError
        If ``masks`` is not 3-D.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import resize_masks
    >>> masks = torch.zeros(1, 64, 64, dtype=torch.bool)
    >>> masks[0, 10, 10] = True                          # one pixel: nearest sampling would lose it
    >>> bool(resize_masks(masks, (8, 8)).any())
    True
    """
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"`masks` must have shape (R, H, W), got {shape}")
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks.bool()
    if masks.shape[0] == 0:
        return torch.zeros((0, *size), dtype=torch.bool, device=masks.device)
    soft = resize_image(masks.float().unsqueeze(1), size).squeeze(1)
    hard = soft > 0.5
    empty = ~hard.flatten(1).any(dim=1)
    if bool(empty.any()):
        flat = hard.flatten(1)
        best = soft.flatten(1).argmax(dim=1)
        rows = torch.nonzero(empty).squeeze(1)
        flat[rows, best[rows]] = True
        hard = flat.view_as(hard)
    return hard


@dataclass(frozen=True)
class _ImageRecord:
    image_id: int
    path: Path
    height: int
    width: int
    annotations: tuple[dict[str, Any], ...]


class COCORegions(Dataset):
    """COCO images with their instance regions and region class labels.

    Region classification in the O2P setting: the regions (instance masks) are given, the task
    is to label each with one of the categories.

    Parameters
    ----------
    root : str or pathlib.Path, optional
        Folder holding ``annotations/instances_<split>.json`` and ``<split>/*.jpg``. Default:
        :func:`~matbackprop.data.default_coco_root` (``$MATBACKPROP_COCO_ROOT``, else
        ``../shared/data/coco-mini``).
    split : str, default "train2017"
        E.g. ``"train2017"`` or ``"val2017"``.
    min_area : float, default 256
        Instances whose annotated ``area`` is below ``min_area`` pixels *of the returned image*
        (i.e. after the ``max_size`` downscaling, ``area * scale**2``) are skipped.
    transform : callable, optional
        Applied to each :class:`COCOSample`; returns what the item becomes.
    max_size : int, optional
        Images whose longer side exceeds it are downscaled to that longer side (aspect kept);
        masks follow with :func:`resize_masks`, so no kept region vanishes.

    Attributes
    ----------
    category_ids : list of int
        The file's category ids, sorted; label ``k`` is ``category_ids[k]``.
    category_names : list of str
        Category names in label order.
    category_to_label : dict of int to int
        COCO category id -> contiguous label ``0 .. num_classes - 1``.
    num_classes : int
        Number of categories (80 for COCO 2017).
    ids : list of int
        Image ids of the kept images, sorted.

    Raises
    ------
    DataFileError
        At construction: missing root, annotation file or image folder; an annotation file that
        is not valid COCO JSON (missing keys, unknown category or image ids); a kept image file
        that does not exist. At item load: an unreadable image, an image whose size differs from
        its JSON entry, or a segmentation that cannot be decoded or decodes to an empty mask.

    Notes
    -----
    Crowd annotations (``iscrowd = 1``) are skipped. Images left without any kept instance are
    dropped at construction, so every item has R >= 1 regions. Items cannot be stacked: use
    :func:`~matbackprop.data.collate_list`.

    References
    ----------
    T.-Y. Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014. J. Carreira,
    R. Caseiro, J. Batista and C. Sminchisescu, "Semantic Segmentation with Second-Order
    Pooling", ECCV 2012 (O2P).

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from matbackprop.data import COCORegions
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = Path(tmp.name)                 # a one-image data set in the official layout
    >>> (root / "annotations").mkdir()
    >>> (root / "train2017").mkdir()
    >>> Image.new("RGB", (40, 30), "white").save(root / "train2017/000000000001.jpg")
    >>> square = [[5.0, 5.0, 25.0, 5.0, 25.0, 25.0, 5.0, 25.0]]
    >>> coco = {"images": [{"id": 1, "file_name": "000000000001.jpg", "height": 30, "width": 40}],
    ...         "categories": [{"id": 18, "name": "dog"}],
    ...         "annotations": [{"id": 7, "image_id": 1, "category_id": 18, "segmentation": square,
    ...                          "area": 400.0, "bbox": [5, 5, 20, 20], "iscrowd": 0}]}
    >>> _ = (root / "annotations/instances_train2017.json").write_text(json.dumps(coco))
    >>> regions = COCORegions(root, "train2017", min_area=100)
    >>> sample = regions[0]
    >>> sample.image.shape, sample.masks.shape, sample.labels, regions.category_names
    (torch.Size([3, 30, 40]), torch.Size([1, 30, 40]), tensor([0]), ['dog'])
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train2017",
        *,
        min_area: float = 256.0,
        transform: Callable[[COCOSample], Any] | None = None,
        max_size: int | None = None,
    ) -> None:
        if not isinstance(split, str) or not split or "/" in split or "\\" in split:
            raise ValueError(f"`split` must be a folder name such as 'val2017', got {split!r}")
        if (
            not isinstance(min_area, int | float)
            or isinstance(min_area, bool)
            or not np.isfinite(min_area)
            or min_area < 0
        ):
            raise ValueError(f"`min_area` must be a finite number >= 0, got {min_area!r}")
        if max_size is not None and (
            not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1
        ):
            raise ValueError(f"`max_size` must be a positive int or None, got {max_size!r}")
        if transform is not None and not callable(transform):
            raise ValueError(f"`transform` must be callable or None, got {type(transform)}")
        self.root = resolve_root(root, "coco-mini", COCO_ENV, "annotations/ and the image folders")
        self.split = split
        self.min_area = float(min_area)
        self.transform = transform
        self.max_size = max_size
        if not self.root.is_dir():
            raise DataFileError(self.root, "COCO root folder not found")
        self.annotation_file = self.root / "annotations" / f"instances_{split}.json"
        self.image_dir = self.root / split
        if not self.annotation_file.is_file():
            raise DataFileError(self.annotation_file, "annotation file not found")
        if not self.image_dir.is_dir():
            raise DataFileError(self.image_dir, f"image folder for split '{split}' not found")
        self._records = self._read_annotations()
        self.ids: list[int] = [r.image_id for r in self._records]

    # -- construction -----------------------------------------------------------------------
    def _bad(self, reason: str) -> DataFileError:
        return DataFileError(self.annotation_file, reason)

    def _read_annotations(self) -> list[_ImageRecord]:
        try:
            with open(self.annotation_file, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._bad(f"not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise self._bad("top level must be a JSON object")
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise self._bad(f"missing or non-list '{key}'")
        try:
            categories = sorted(data["categories"], key=lambda c: int(c["id"]))
            self.category_ids: list[int] = [int(c["id"]) for c in categories]
            self.category_names: list[str] = [str(c["name"]) for c in categories]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._bad(f"malformed 'categories' entry ({exc!r})") from exc
        if not categories:
            raise self._bad("no category")
        if len(set(self.category_ids)) != len(self.category_ids):
            raise self._bad("duplicate category ids")
        self.category_to_label: dict[int, int] = {c: k for k, c in enumerate(self.category_ids)}

        images: dict[int, dict[str, Any]] = {}
        try:
            for entry in data["images"]:
                images[int(entry["id"])] = {
                    "file_name": str(entry["file_name"]),
                    "height": int(entry["height"]),
                    "width": int(entry["width"]),
                }
        except (KeyError, TypeError, ValueError) as exc:
            raise self._bad(f"malformed 'images' entry ({exc!r})") from exc

        kept: dict[int, list[dict[str, Any]]] = {}
        for ann in data["annotations"]:
            try:
                image_id = int(ann["image_id"])
                category_id = int(ann["category_id"])
                area = float(ann["area"])
                iscrowd = int(ann.get("iscrowd", 0))
                ann_id = int(ann["id"])
                if "segmentation" not in ann:
                    raise KeyError("segmentation")
            except (KeyError, TypeError, ValueError) as exc:
                raise self._bad(f"malformed 'annotations' entry ({exc!r})") from exc
            if image_id not in images:
                raise self._bad(f"annotation {ann_id} refers to unknown image id {image_id}")
            if category_id not in self.category_to_label:
                raise self._bad(f"annotation {ann_id} has unknown category id {category_id}")
            if iscrowd:
                continue
            info = images[image_id]
            if area * self._scale(info["height"], info["width"]) ** 2 < self.min_area:
                continue
            kept.setdefault(image_id, []).append(ann)

        records = []
        for image_id in sorted(kept):
            info = images[image_id]
            path = self.image_dir / info["file_name"]
            if not path.is_file():
                raise DataFileError(path, f"image file of COCO image {image_id} not found")
            anns = tuple(sorted(kept[image_id], key=lambda a: int(a["id"])))
            records.append(_ImageRecord(image_id, path, info["height"], info["width"], anns))
        return records

    def _scale(self, height: int, width: int) -> float:
        if self.max_size is None or max(height, width) <= self.max_size:
            return 1.0
        return self.max_size / max(height, width)

    # -- access -----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of categories."""
        return len(self.category_ids)

    def __len__(self) -> int:
        return len(self._records)

    def _index(self, index: int) -> int:
        return check_index(index, len(self._records))

    def paths(self, index: int) -> Path:
        """The image file of item ``index`` (annotations: :attr:`annotation_file`)."""
        return self._records[self._index(index)].path

    def load(self, index: int) -> COCOSample:
        """Item ``index`` before ``transform`` (resized when ``max_size`` is set)."""
        record = self._records[self._index(index)]
        image = read_rgb_image(record.path)
        if tuple(image.shape[1:]) != (record.height, record.width):
            raise DataFileError(
                record.path,
                f"image has (H, W) = {tuple(image.shape[1:])}, the annotation file says "
                f"{(record.height, record.width)}",
            )
        masks = []
        for ann in record.annotations:
            try:
                mask = decode_coco_segmentation(ann["segmentation"], record.height, record.width)
            except (ValueError, TypeError, KeyError, OverflowError) as exc:
                raise self._bad(f"annotation {ann['id']} cannot be decoded ({exc})") from exc
            if not mask.any():
                raise self._bad(f"annotation {ann['id']} decodes to an empty mask")
            masks.append(torch.from_numpy(mask))
        mask_t = torch.stack(masks)
        if self._scale(record.height, record.width) < 1.0:
            size = keep_aspect_size(record.height, record.width, max_side=self.max_size)
            image = resize_image(image, size).clamp_(0.0, 1.0)
            mask_t = resize_masks(mask_t, size)
        category_ids = torch.tensor([int(a["category_id"]) for a in record.annotations])
        labels = torch.tensor([self.category_to_label[int(c)] for c in category_ids.tolist()])
        annotation_ids = torch.tensor([int(a["id"]) for a in record.annotations])
        return COCOSample(
            image=image,
            masks=mask_t,
            labels=labels.long(),
            category_ids=category_ids.long(),
            annotation_ids=annotation_ids.long(),
            image_id=record.image_id,
        )

    def __getitem__(self, index: int) -> Any:
        sample = self.load(index)
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return (
            f"COCORegions(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"min_area={self.min_area}, max_size={self.max_size})"
        )
