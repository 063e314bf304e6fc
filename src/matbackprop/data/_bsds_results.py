"""One image's machine segmentation in the BSDS500 result format (``<id>.mat``).

The official benchmark (``bench/benchmarks``) reads per image a MATLAB v5 file holding

- ``segs``: a ``1 × L`` cell array of ``uint16`` label maps (labels ``1 .. R``) of the image's
  size, read as thresholds ``1 .. L`` (this project writes hierarchies coarse to fine; the
  official demo files in ``bench/data/segs`` happen to go fine to coarse -- region ODS/OIS do
  not depend on the order);
- and/or ``ucm2``: the double-size ultrametric contour map, ``(2H + 1, 2W + 1)`` doubles in
  ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_bsds_result", "save_bsds_result"]


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _label_map(seg: Any, index: int, shape: tuple[int, ...] | None) -> np.ndarray:
    a = _numpy(seg)
    if a.ndim != 2 or a.dtype.kind not in "iub":
        raise ValueError(
            f"`segs[{index}]` must be a 2-D integer label map, got {a.dtype} {a.shape}"
        )
    if shape is not None and a.shape != shape:
        raise ValueError(f"`segs[{index}]` must have shape {shape}, got {a.shape}")
    _, contiguous = np.unique(a, return_inverse=True)
    if contiguous.size and contiguous.max() >= np.iinfo(np.uint16).max:
        raise ValueError(f"`segs[{index}]` has more than 65535 segments")
    return contiguous.reshape(a.shape).astype(np.uint16) + 1


def save_bsds_result(
    path: str | Path, *, segs: Sequence[Any] | None = None, ucm2: Any = None
) -> Path:
    """Write ``segs`` and/or ``ucm2`` of one image as the official benchmark reads them.

    Parameters
    ----------
    path : str or Path
        The ``.mat`` file (parents are created).
    segs : sequence of (H, W) integer arrays or tensors, optional
        The hierarchy, coarse to fine; each is relabelled ``1 .. R`` as ``uint16``.
    ucm2 : (2H + 1, 2W + 1) array or tensor, optional
        Values in ``[0, 1]``; with ``segs``, their maps must be ``(H, W)``.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If neither is given, a label map is not 2-D integer or has another size, or ``ucm2``
        has a wrong shape or values outside ``[0, 1]``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     segs = [np.zeros((4, 6), int), np.eye(4, 6, dtype=int)]
    ...     path = save_bsds_result(f"{d}/img.mat", segs=segs)
    ...     [(s.dtype.name, s.shape, int(s.max())) for s in load_bsds_result(path)["segs"]]
    [('uint16', (4, 6), 1), ('uint16', (4, 6), 2)]
    """
    from scipy.io import savemat

    if segs is None and ucm2 is None:
        raise ValueError("give `segs`, `ucm2` or both, got neither")
    variables: dict[str, Any] = {}
    shape = None
    if ucm2 is not None:
        u = _numpy(ucm2).astype(np.float64)
        if u.ndim != 2 or min(u.shape) < 3 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0:
            raise ValueError(f"`ucm2` must have shape (2H + 1, 2W + 1), got {u.shape}")
        if not np.isfinite(u).all() or u.min() < 0 or u.max() > 1:
            raise ValueError("`ucm2` must hold finite values in [0, 1]")
        variables["ucm2"] = u
        shape = ((u.shape[0] - 1) // 2, (u.shape[1] - 1) // 2)
    if segs is not None:
        maps: list[np.ndarray] = []
        for i, seg in enumerate(segs):
            maps.append(_label_map(seg, i, shape if not maps else maps[0].shape))
        if not maps:
            raise ValueError("`segs` must hold at least one label map")
        cell = np.empty((1, len(maps)), dtype=object)  # MATLAB 1 x L cell
        for i, m in enumerate(maps):
            cell[0, i] = m
        variables["segs"] = cell
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), variables, do_compression=True, appendmat=False)
    return path


def load_bsds_result(path: str | Path) -> dict[str, Any]:
    """Read a result file: ``{"segs": [uint16 maps...]}`` and/or ``{"ucm2": float64 array}``.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     sorted(load_bsds_result(save_bsds_result(f"{d}/a.mat", ucm2=np.zeros((5, 7)))))
    ['ucm2']
    """
    from scipy.io import loadmat

    raw = loadmat(str(path))
    out: dict[str, Any] = {}
    if "segs" in raw:
        out["segs"] = [np.asarray(s) for s in raw["segs"].ravel()]
    if "ucm2" in raw:
        out["ucm2"] = np.asarray(raw["ucm2"], dtype=np.float64)
    return out
