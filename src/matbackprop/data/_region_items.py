"""Region-classification items and batches: a view of :class:`~matbackprop.data.COCORegions`
(a subset, optional flips) and the collate function that pads them into one batch, plus the
seeded draw of held-out items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["RegionItems", "collate_regions", "draw_holdout"]


def draw_holdout(num_items: int, count: int, seed: int) -> list[int]:
    """Sorted indices of ``count`` of ``num_items`` items, drawn with NumPy's PCG64(``seed``).

    Raises
    ------
    ValueError
        Unless ``0 <= count < num_items``.

    Examples
    --------
    >>> from matbackprop.data import draw_holdout
    >>> held_out = draw_holdout(100, 5, seed=0)
    >>> len(held_out), held_out == sorted(held_out), held_out == draw_holdout(100, 5, seed=0)
    (5, True, True)
    """
    if not 0 <= count < num_items:
        raise ValueError(f"`count` must be in [0, {num_items}), got {count}")
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.permutation(num_items)[:count])


class RegionItems(Dataset):
    """Items ``{"image" (3, H, W), "masks" (R, H, W), "labels" (R,), "image_id"}`` of a region
    data set such as :class:`~matbackprop.data.COCORegions`.

    Parameters
    ----------
    base : dataset
        With ``base[i]`` / ``base.load(i)`` samples (``image``, ``masks``, ``labels``,
        ``image_id``), ``num_classes`` and ``category_names``.
    indices : sequence of int, optional
        The items of ``base`` to serve (default: all), e.g. a training split without its
        held-out images.
    hflip : bool
        Flip each item horizontally with probability 1/2, drawn from torch's global generator
        (which the trainer seeds per item: deterministic, resumable).

    Examples
    --------
    >>> from matbackprop.data import RegionItems
    >>> class Regions:                                  # any data set with these members
    ...     num_classes, category_names = 2, ["cat", "dog"]
    ...     def __len__(self):
    ...         return 3
    ...     def load(self, i):
    ...         import torch
    ...         from matbackprop.data import COCOSample
    ...         return COCOSample(torch.rand(3, 8, 8), torch.ones(1, 8, 8, dtype=torch.bool),
    ...                           torch.tensor([i % 2]), torch.tensor([1]), torch.tensor([i]), i)
    ...     __getitem__ = load
    >>> items = RegionItems(Regions(), indices=[0, 2])
    >>> len(items), sorted(items[1])
    (2, ['image', 'image_id', 'labels', 'masks'])
    >>> items[1]["labels"]
    tensor([0])
    """

    def __init__(self, base: Any, indices: Sequence[int] | None = None, hflip: bool = False):
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)
        self.hflip = hflip
        self.num_classes = base.num_classes
        self.category_names = base.category_names

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.base[self.indices[index]]
        image, masks = sample.image, sample.masks
        if self.hflip and bool(torch.rand(()) < 0.5):
            image, masks = image.flip(-1), masks.flip(-1)
        return {
            "image": image,
            "masks": masks,
            "labels": sample.labels,
            "image_id": torch.tensor(sample.image_id),
        }

    def sample(self, index: int) -> Any:
        """The unflipped sample of item ``index``."""
        return self.base.load(self.indices[index])

    def label_counts(self) -> np.ndarray:
        """Number of regions of each class (reads every item's annotations once)."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for i in range(len(self)):
            counts += np.bincount(self.sample(i).labels.numpy(), minlength=self.num_classes)
        return counts


def collate_regions(
    items: list[dict[str, Any]], fill: Sequence[float] = (0.0, 0.0, 0.0)
) -> dict[str, torch.Tensor]:
    """Pad images (bottom/right) and masks to the batch's largest size.

    Parameters
    ----------
    items : list of dict
        :class:`RegionItems` items.
    fill : sequence of 3 floats
        Colour of the padding. Pass the mean of the model's input normalization (e.g.
        ``backbone.normalization.mean``) so that the padding is zero once normalized.

    Returns
    -------
    dict
        ``images (B, 3, H, W)`` in ``[0, 1]``, ``masks (B, R, H, W)`` bool (no region in the
        padding), ``valid (B, R)``, ``labels (Q,)`` of the valid regions in image order,
        ``image_ids (B,)`` and ``sizes (B, 2)`` (the unpadded image sizes).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import collate_regions
    >>> items = [{"image": torch.rand(3, 4, 6), "masks": torch.ones(1, 4, 6, dtype=torch.bool),
    ...           "labels": torch.tensor([1]), "image_id": torch.tensor(1)},
    ...          {"image": torch.rand(3, 5, 3), "masks": torch.ones(2, 5, 3, dtype=torch.bool),
    ...           "labels": torch.tensor([0, 2]), "image_id": torch.tensor(2)}]
    >>> batch = collate_regions(items)
    >>> batch["images"].shape, batch["masks"].shape
    (torch.Size([2, 3, 5, 6]), torch.Size([2, 2, 5, 6]))
    >>> batch["labels"], batch["valid"]
    (tensor([1, 0, 2]), tensor([[ True, False],
            [ True,  True]]))
    """
    H = max(int(it["image"].shape[-2]) for it in items)
    W = max(int(it["image"].shape[-1]) for it in items)
    R = max(int(it["masks"].shape[0]) for it in items)
    B = len(items)
    images = torch.tensor(tuple(fill), dtype=torch.float32).view(3, 1, 1).expand(B, 3, H, W)
    images = images.clone()
    masks = torch.zeros(B, R, H, W, dtype=torch.bool)
    valid = torch.zeros(B, R, dtype=torch.bool)
    sizes = torch.zeros(B, 2, dtype=torch.int64)
    for b, it in enumerate(items):
        h, w = it["image"].shape[-2:]
        r = it["masks"].shape[0]
        images[b, :, :h, :w] = it["image"]
        masks[b, :r, :h, :w] = it["masks"]
        valid[b, :r] = True
        sizes[b] = torch.tensor([h, w])
    return {
        "images": images,
        "masks": masks,
        "valid": valid,
        "labels": torch.cat([it["labels"] for it in items]),
        "image_ids": torch.stack([it["image_id"] for it in items]),
        "sizes": sizes,
    }
