"""Collate functions for data sets whose items cannot be stacked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["collate_list"]

T = TypeVar("T")


def collate_list(batch: Sequence[T]) -> list[T]:
    """Keep a batch as a plain list of items (for ``DataLoader(collate_fn=collate_list)``).

    Items of :class:`~matbackprop.data.BSDS500` and :class:`~matbackprop.data.COCORegions` vary
    in size and in the number of segmentations or regions, so they are not stacked; with
    ``batch_size=1`` use ``batch[0]``.

    Parameters
    ----------
    batch : sequence
        The items.

    Returns
    -------
    list
        The same items, in order.
    """
    return list(batch)
