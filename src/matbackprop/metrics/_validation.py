"""Input validation shared by the metrics modules (numpy only).

Every public metric converts its inputs with these helpers, so that arrays, nested lists and
torch tensors (CPU or GPU, with or without ``requires_grad``) are accepted without importing
torch, and so that bad inputs raise a :class:`ValueError` naming the argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array; torch tensors are detached and moved to the CPU first."""
    if hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _as_2d(x: Any, name: str, shape: tuple[int, ...] | None) -> np.ndarray:
    """``x`` as a non-empty 2-D array (of ``shape`` when given)."""
    arr = to_numpy(x)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must have shape (H, W), got {tuple(arr.shape)}")
    if arr.size == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(arr.shape)}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {tuple(arr.shape)}")
    return arr


def as_label_map(x: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate a 2-D integer label map and return it as ``int64``.

    Integer and boolean dtypes are accepted; floating arrays are accepted only when every value
    is finite and integral (MATLAB stores label maps as ``double``).

    Raises
    ------
    ValueError
        If ``x`` is not 2-D, is empty, does not have ``shape`` (when given), or holds
        non-integer values.
    """
    arr = _as_2d(x, name, shape)
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64, copy=False)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"`{name}` must hold integer labels, got non-finite values")
        if not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"`{name}` must hold integer labels, got non-integer values")
        return arr.astype(np.int64)
    raise ValueError(f"`{name}` must hold integer labels, got dtype {arr.dtype}")


def as_label_maps(xs: Any, name: str, shape: tuple[int, ...] | None = None) -> list[np.ndarray]:
    """Validate a non-empty sequence of 2-D label maps sharing one shape."""
    if xs is None:
        raise ValueError(f"`{name}` must be a non-empty sequence of (H, W) label maps, got None")
    if isinstance(xs, np.ndarray) and xs.dtype == object:  # a MATLAB cell from loadmat
        xs = list(xs.ravel())
    elif _is_single_array(xs):
        arr = to_numpy(xs)
        if arr.ndim == 3:  # a stacked (K, H, W) array
            xs = list(arr)
        else:
            raise ValueError(
                f"`{name}` must be a sequence of (H, W) label maps or a (K, H, W) array, "
                f"got an array of shape {tuple(arr.shape)}"
            )
    if not isinstance(xs, Sequence) or isinstance(xs, str | bytes):
        raise ValueError(
            f"`{name}` must be a sequence of (H, W) label maps, got {type(xs).__name__}"
        )
    if len(xs) == 0:
        raise ValueError(f"`{name}` must contain at least one label map, got an empty sequence")
    out = []
    for k, x in enumerate(xs):
        lab = as_label_map(x, f"{name}[{k}]", shape)
        if shape is None:
            shape = lab.shape
        out.append(lab)
    return out


def as_boundary_map(x: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate a 2-D boundary map with values in [0, 1] and return it as ``float64``.

    Boolean and integer maps must be 0/1; floating maps must be finite and within [0, 1].
    """
    arr = _as_2d(x, name, shape)
    if arr.dtype == bool:
        return arr.astype(np.float64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"`{name}` must be a numeric or boolean map, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` must be finite, got NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"`{name}` must have values in [0, 1], got range [{lo:g}, {hi:g}]")
    return arr


def as_binary_map(x: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Validate a 2-D binary boundary map (boolean, or numeric with values 0/1) -> ``bool``."""
    arr = as_boundary_map(x, name, shape)
    if not np.all((arr == 0.0) | (arr == 1.0)):
        raise ValueError(
            f"`{name}` must be binary (0/1 or bool), got other values; threshold soft maps first"
        )
    return arr.astype(bool)


def check_max_dist(max_dist: float) -> float:
    """Validate the matching tolerance (a fraction of the image diagonal)."""
    try:
        value = float(max_dist)
    except (TypeError, ValueError):
        raise ValueError(f"`max_dist` must be a number, got {max_dist!r}") from None
    if not np.isfinite(value) or value < 0.0:
        raise ValueError(f"`max_dist` must be finite and >= 0, got {max_dist!r}")
    return value


def check_nthresh(nthresh: int) -> int:
    """Validate a number of thresholds (a positive integer)."""
    if isinstance(nthresh, bool) or not isinstance(nthresh, int | np.integer) or nthresh < 1:
        raise ValueError(f"`nthresh` must be a positive integer, got {nthresh!r}")
    return int(nthresh)


def _is_single_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or (hasattr(x, "detach") and hasattr(x, "shape"))
