"""Collate functions for data sets whose items cannot be stacked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["collate_columns", "collate_list"]

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

    Examples
    --------
    >>> from matbackprop.data import collate_list
    >>> collate_list([("a", 1), ("b", 2)])
    [('a', 1), ('b', 2)]
    """
    return list(batch)


def collate_columns(batch: Sequence[Sequence[T]]) -> tuple[list[T], ...]:
    """Transpose a batch of tuples into a tuple of lists (one list per position).

    For items such as ``(image, node index, node labels)`` whose tensors differ in size from
    item to item: ``[(a1, b1), (a2, b2)] -> ([a1, a2], [b1, b2])``.

    Examples
    --------
    >>> collate_columns([(1, "a"), (2, "b")])
    ([1, 2], ['a', 'b'])
    """
    return tuple(list(column) for column in zip(*batch, strict=True))
