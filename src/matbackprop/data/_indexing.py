"""Index checking shared by the map-style data sets."""

from __future__ import annotations

import numpy as np


def check_index(index: object, n: int) -> int:
    """``index`` as a non-negative position in ``range(n)`` (negative indices count from the end).

    Raises ``TypeError`` for non-integers and ``IndexError`` when out of range, as a sequence
    does.
    """
    if not isinstance(index, int | np.integer) or isinstance(index, bool):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    i = int(index)
    if not -n <= i < n:
        raise IndexError(f"index {i} out of range for {n} items")
    return i % n
