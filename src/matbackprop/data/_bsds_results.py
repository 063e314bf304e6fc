"""Machine segmentations in the official BSDS500 result format (``<id>.mat`` per image).

The official MATLAB benchmark (``bench/benchmarks/*.m``) reads, per image, either

* ``segs``: a ``1 × L`` cell of label maps (``uint16``, labels from 1, the image's size),
  scored as a hierarchy at thresholds ``1 .. L`` (we write them coarse to fine); or
* ``ucm2``: a double-size ultrametric contour map ``(2H+1, 2W+1)`` with values in ``[0, 1]``.

:func:`save_bsds_result` writes one or both variables with :func:`scipy.io.savemat` (MATLAB v5)
so that ``load(...)`` in MATLAB and :func:`scipy.io.loadmat` read them unchanged;
:func:`load_bsds_result` reads them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_bsds_result", "save_bsds_result"]


def _as_label_map(seg: Any, k: int, shape: tuple[int, int] | None) -> np.ndarray:
    a = seg.detach().cpu().numpy() if hasattr(seg, "detach") else np.asarray(seg)
    if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"`segs[{k}]` must be a 2-D integer label map, got {a.dtype} {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"`segs[{k}]` must have shape {shape}, got {a.shape}")
    _, inverse = np.unique(a, return_inverse=True)
    if inverse.max(initial=0) + 1 > np.iinfo(np.uint16).max:
        raise ValueError(f"`segs[{k}]` has more than 65535 segments")
    return (inverse.reshape(a.shape) + 1).astype(np.uint16)


def save_bsds_result(path: str | Path, *, segs: Any = None, ucm2: Any = None) -> Path:
    """Write ``segs`` and/or ``ucm2`` for one image in the official format.

    Parameters
    ----------
    path : str or Path
        Output file (``.mat``); parent folders are created.
    segs : sequence of (H, W) integer maps, optional
        The hierarchy, coarse to fine; relabelled to ``1 .. R`` as ``uint16``.
    ucm2 : (2H+1, 2W+1) float array, optional
        Values in ``[0, 1]``; when ``segs`` is also given its maps must be ``(H, W)``.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If neither is given, a map is malformed, sizes disagree, or ``ucm2`` leaves ``[0, 1]``.
    """
    from scipy.io import savemat

    if segs is None and ucm2 is None:
        raise ValueError("give `segs`, `ucm2` or both, got neither")
    out: dict[str, Any] = {}
    shape = None
    if ucm2 is not None:
        u = ucm2.detach().cpu().numpy() if hasattr(ucm2, "detach") else np.asarray(ucm2)
        u = u.astype(np.float64)
        if u.ndim != 2 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0 or min(u.shape) < 3:
            raise ValueError(f"`ucm2` must have shape (2H+1, 2W+1), got {u.shape}")
        if not np.all(np.isfinite(u)) or u.min() < 0 or u.max() > 1:
            raise ValueError("`ucm2` must hold finite values in [0, 1]")
        out["ucm2"] = u
        shape = ((u.shape[0] - 1) // 2, (u.shape[1] - 1) // 2)
    if segs is not None:
        segs = list(segs)
        if not segs:
            raise ValueError("`segs` must hold at least one label map")
        first = _as_label_map(segs[0], 0, shape)
        maps = [first] + [_as_label_map(s, k, first.shape) for k, s in enumerate(segs[1:], 1)]
        cell = np.empty((1, len(maps)), dtype=object)
        for k, m in enumerate(maps):
            cell[0, k] = m
        out["segs"] = cell
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, out, do_compression=True)
    return path


def load_bsds_result(path: str | Path) -> dict[str, Any]:
    """Read a result file: ``{"segs": [maps...]}`` and/or ``{"ucm2": array}``."""
    from scipy.io import loadmat

    raw = loadmat(Path(path))
    out: dict[str, Any] = {}
    if "ucm2" in raw:
        out["ucm2"] = np.asarray(raw["ucm2"], dtype=np.float64)
    if "segs" in raw:
        out["segs"] = [np.asarray(s) for s in raw["segs"].ravel()]
    return out
