"""The Berkeley Segmentation Data Set (BSDS500): images with all human segmentations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from matbackprop.errors import DataFileError

from ._images import read_rgb_image
from ._indexing import check_index
from ._paths import BSDS_ENV, resolve_root
from ._transforms import keep_aspect_size, resize_image, resize_labels

__all__ = [
    "BSDS500",
    "BSDSFiles",
    "BSDSSample",
    "label_boundaries",
    "read_bsds_ground_truth",
    "save_bsds_ground_truth",
]

_GT_KEY = "groundTruth"


@dataclass(frozen=True)
class BSDSSample:
    """One BSDS500 image with all its human segmentations.

    Attributes
    ----------
    image : torch.Tensor
        ``(3, H, W)`` float32 RGB in ``[0, 1]``.
    segmentations : list of torch.Tensor
        One ``(H, W)`` int64 label map per human annotator (4 to 9 in BSDS500), labels as stored
        in the file (BSDS500 labels start at 1 and need not be contiguous after resizing).
    image_id : str
        The file stem, e.g. ``"101085"``.
    boundaries : list of torch.Tensor or None
        One ``(H, W)`` bool boundary map per annotator when requested, else ``None``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import BSDSSample
    >>> sample = BSDSSample(torch.rand(3, 4, 6), [torch.zeros(4, 6, dtype=torch.long)], "1")
    >>> sample.image_id, len(sample.segmentations), sample.boundaries is None
    ('1', 1, True)
    """

    image: torch.Tensor
    segmentations: list[torch.Tensor]
    image_id: str
    boundaries: list[torch.Tensor] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the image."""
        return int(self.image.shape[-2]), int(self.image.shape[-1])


class BSDSFiles(NamedTuple):
    """The two files behind one BSDS500 item.

    Examples
    --------
    >>> from pathlib import Path
    >>> from matbackprop.data import BSDSFiles
    >>> files = BSDSFiles(Path("data/images/val/3096.jpg"), Path("data/groundTruth/val/3096.mat"))
    >>> files.image.stem == files.ground_truth.stem
    True
    """

    image: Path
    ground_truth: Path


def _integral_label_map(array: Any, path: Path, what: str) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.ndim != 2 or 0 in array.shape:
        shape = getattr(array, "shape", type(array).__name__)
        raise DataFileError(path, f"{what} must be a non-empty 2-D array, got {shape}")
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise DataFileError(path, f"{what} holds non-integral or non-finite values")
        return array.astype(np.int64)
    raise DataFileError(path, f"{what} has a non-numeric dtype {array.dtype}")


def _unwrap_cell(value: Any, path: Path, what: str) -> Any:
    # MATLAB cells and struct fields load as (1, 1) object arrays holding the value.
    while isinstance(value, np.ndarray) and value.dtype == object:
        if value.size != 1:
            raise DataFileError(path, f"{what} must hold a single array, got {value.shape}")
        value = value.reshape(-1)[0]
    return value


def read_bsds_ground_truth(
    path: str | Path, *, boundaries: bool = False
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """Read a BSDS500 ground-truth ``.mat`` file.

    The file holds a variable ``groundTruth``: a ``(1, K)`` MATLAB cell of structs with fields
    ``Segmentation`` (``uint16`` label map, labels from 1) and ``Boundaries`` (``uint8`` 0/1 map).

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.mat`` file.
    boundaries : bool, default False
        Also read the ``Boundaries`` maps.

    Returns
    -------
    segmentations : list of numpy.ndarray
        K arrays ``(H, W)`` int64, labels as stored.
    boundaries : list of numpy.ndarray or None
        K arrays ``(H, W)`` bool when ``boundaries`` is true, else ``None``.

    Raises
    ------
    DataFileError
        If the file is missing or unreadable, has no ``groundTruth`` variable, is not a cell of
        structs with the fields above, holds no annotation, a non-integral or negative label map,
        or maps of different sizes. The message names the file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from matbackprop.data import read_bsds_ground_truth, save_bsds_ground_truth
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name) / "1.mat"
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 4, axis=0)
    >>> save_bsds_ground_truth(path, [np.ones((4, 6), int), halves])
    >>> segmentations, boundaries = read_bsds_ground_truth(path)
    >>> [s.shape for s in segmentations], boundaries is None
    ([(4, 6), (4, 6)], True)
    >>> tmp.cleanup()
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DataFileError(path, "ground-truth file not found")
    try:
        content = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises many types (ValueError, TypeError, OSError, ...)
        raise DataFileError(path, f"unreadable MATLAB file ({type(exc).__name__}: {exc})") from exc
    if _GT_KEY not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DataFileError(path, f"no '{_GT_KEY}' variable in the file (found {found})")
    cell = content[_GT_KEY]
    if not isinstance(cell, np.ndarray) or cell.size == 0:
        raise DataFileError(path, f"'{_GT_KEY}' must be a non-empty cell array")
    if cell.dtype == object:  # a cell array of (1, 1) structs: the official layout
        entries = list(cell.reshape(-1))
    elif cell.dtype.names:  # a 1 x K struct array
        flat = cell.reshape(-1)
        entries = [flat[k : k + 1] for k in range(flat.size)]
    else:
        raise DataFileError(path, f"'{_GT_KEY}' must be a cell or struct array, got {cell.dtype}")
    segs: list[np.ndarray] = []
    bdrys: list[np.ndarray] = []
    for k, entry in enumerate(entries):
        entry = _unwrap_cell(entry, path, f"{_GT_KEY}{{{k + 1}}}")
        names = getattr(getattr(entry, "dtype", None), "names", None) or ()
        if "Segmentation" not in names:
            raise DataFileError(
                path, f"{_GT_KEY}{{{k + 1}}} is not a struct with a 'Segmentation' field"
            )
        seg = _unwrap_cell(entry["Segmentation"], path, "Segmentation")
        seg = _integral_label_map(seg, path, f"{_GT_KEY}{{{k + 1}}}.Segmentation")
        if seg.min() < 0:
            raise DataFileError(path, f"{_GT_KEY}{{{k + 1}}}.Segmentation has negative labels")
        if segs and seg.shape != segs[0].shape:
            raise DataFileError(
                path,
                f"{_GT_KEY}{{{k + 1}}}.Segmentation has shape {seg.shape}, "
                f"annotation 1 has {segs[0].shape}",
            )
        segs.append(seg)
        if boundaries:
            if "Boundaries" not in names:
                raise DataFileError(path, f"{_GT_KEY}{{{k + 1}}} has no 'Boundaries' field")
            bd = _unwrap_cell(entry["Boundaries"], path, "Boundaries")
            bd = _integral_label_map(bd, path, f"{_GT_KEY}{{{k + 1}}}.Boundaries")
            if bd.shape != seg.shape:
                raise DataFileError(
                    path,
                    f"{_GT_KEY}{{{k + 1}}}.Boundaries has shape {bd.shape}, "
                    f"its Segmentation has {seg.shape}",
                )
            bdrys.append(bd != 0)
    return segs, (bdrys if boundaries else None)


def save_bsds_ground_truth(
    path: str | Path,
    segmentations: Sequence[np.ndarray | torch.Tensor],
    boundaries: Sequence[np.ndarray | torch.Tensor] | None = None,
) -> None:
    """Write human segmentations in the BSDS500 ``.mat`` layout.

    ``scipy.io.loadmat`` of the result gives the structure of the official files: ``groundTruth``
    is a ``(1, K)`` object array whose entries are ``(1, 1)`` structs with ``Segmentation``
    (``uint16``) and ``Boundaries`` (``uint8``).

    Parameters
    ----------
    path : str or pathlib.Path
        Output file.
    segmentations : sequence of array-like
        K >= 1 integer label maps ``(H, W)`` with values in ``[0, 65535]``.
    boundaries : sequence of array-like, optional
        K boundary maps ``(H, W)``; when omitted, a pixel is marked when its right or lower
        neighbour has another label.

    Raises
    ------
    ValueError
        If no map is given, a map is not 2-D, the sizes differ, or labels do not fit ``uint16``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from scipy.io import loadmat
    >>> from matbackprop.data import save_bsds_ground_truth
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = Path(tmp.name) / "1.mat"
    >>> save_bsds_ground_truth(path, [np.ones((4, 6), int)])
    >>> loadmat(str(path))["groundTruth"].shape              # a 1 x K cell, as in BSDS500
    (1, 1)
    >>> tmp.cleanup()
    """
    import scipy.io

    if len(segmentations) == 0:
        raise ValueError("`segmentations` must hold at least one label map, got 0")
    segs = [np.asarray(s.cpu() if isinstance(s, torch.Tensor) else s) for s in segmentations]
    shape = segs[0].shape
    for k, s in enumerate(segs):
        if s.ndim != 2 or s.shape != shape:
            raise ValueError(
                f"`segmentations[{k}]` must have shape {shape} (2-D, like the first), got {s.shape}"
            )
        if s.size and (s.min() < 0 or s.max() > np.iinfo(np.uint16).max):
            raise ValueError(f"`segmentations[{k}]` labels must lie in [0, 65535]")
    if boundaries is None:
        bds = [label_boundaries(torch.from_numpy(s.astype(np.int64))).numpy() for s in segs]
    else:
        if len(boundaries) != len(segs):
            raise ValueError(
                f"`boundaries` must hold {len(segs)} maps like `segmentations`, "
                f"got {len(boundaries)}"
            )
        bds = [np.asarray(b.cpu() if isinstance(b, torch.Tensor) else b) for b in boundaries]
        for k, b in enumerate(bds):
            if b.shape != shape:
                raise ValueError(f"`boundaries[{k}]` must have shape {shape}, got {b.shape}")
    cell = np.empty((1, len(segs)), dtype=object)
    struct_dtype = [("Segmentation", object), ("Boundaries", object)]
    for k, (s, b) in enumerate(zip(segs, bds, strict=True)):
        entry = np.empty((1, 1), dtype=struct_dtype)
        entry[0, 0]["Segmentation"] = s.astype(np.uint16)
        entry[0, 0]["Boundaries"] = (b != 0).astype(np.uint8)
        cell[0, k] = entry
    scipy.io.savemat(str(path), {_GT_KEY: cell})


def label_boundaries(labels: torch.Tensor) -> torch.Tensor:
    """Thin boundary map of a label map: pixels whose right or lower neighbour differs.

    Parameters
    ----------
    labels : torch.Tensor
        ``(H, W)`` integer label map.

    Returns
    -------
    torch.Tensor
        ``(H, W)`` bool.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import label_boundaries
    >>> label_boundaries(torch.tensor([[0, 0, 1], [0, 0, 1], [2, 2, 2]])).int()
    tensor([[0, 1, 0],
            [1, 1, 1],
            [0, 0, 0]], dtype=torch.int32)
    """
    out = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    out[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    out[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return out


class BSDS500(Dataset):
    """BSDS500 images with all human segmentations, in the official folder layout.

    Reads ``<root>/data/images/<split>/*.jpg`` and ``<root>/data/groundTruth/<split>/<id>.mat``.

    Parameters
    ----------
    root : str or pathlib.Path, optional
        The folder holding ``data/``. Default: :func:`~matbackprop.data.default_bsds_root`
        (``$MATBACKPROP_BSDS_ROOT``, else ``../shared/data/BSDS500``).
    split : str, default "train"
        ``"train"``, ``"val"`` or ``"test"`` (any sub-folder name is accepted).
    transform : callable, optional
        Applied to each :class:`BSDSSample` (after resizing); returns what the item becomes.
    max_size : int, optional
        When given, images whose longer side exceeds it are downscaled to that longer side
        (aspect kept; antialiased bilinear for the image, nearest neighbour for label maps).
    boundaries : bool, default False
        Also return the human boundary maps. After resizing they are recomputed from the resized
        segmentations (a pixel is on a boundary when its right or lower neighbour differs),
        since nearest-neighbour resizing breaks thin boundary curves.

    Attributes
    ----------
    root : pathlib.Path
    split : str
    ids : list of str
        Image ids, sorted as strings.

    Raises
    ------
    DataFileError
        At construction, if the root, the split folders or any image's ground-truth file is
        missing, a ground-truth file has no image, or the split holds no image. At item load, if
        an image or ``.mat`` file is unreadable or inconsistent (see
        :func:`read_bsds_ground_truth`), or a segmentation's size differs from its image's.

    Notes
    -----
    Items cannot be stacked (sizes and annotator counts vary): use
    :func:`~matbackprop.data.collate_list` with a ``DataLoader``.

    References
    ----------
    P. Arbelaez, M. Maire, C. Fowlkes and J. Malik, "Contour Detection and Hierarchical Image
    Segmentation", IEEE TPAMI 33(5), 2011.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from PIL import Image
    >>> from matbackprop.data import BSDS500, save_bsds_ground_truth
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = Path(tmp.name)                 # a one-image data set in the official layout
    >>> (root / "data/images/train").mkdir(parents=True)
    >>> (root / "data/groundTruth/train").mkdir(parents=True)
    >>> Image.new("RGB", (6, 4), "red").save(root / "data/images/train/1.jpg")
    >>> halves = np.repeat([[1, 1, 1, 2, 2, 2]], 4, axis=0)
    >>> save_bsds_ground_truth(root / "data/groundTruth/train/1.mat", [halves, np.ones((4, 6))])
    >>> data = BSDS500(root, "train")
    >>> len(data), data.paths(0).image.name, data.ids
    (1, '1.jpg', ['1'])
    >>> sample = data[0]
    >>> sample.image.shape, len(sample.segmentations), sample.image_id
    (torch.Size([3, 4, 6]), 2, '1')
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        *,
        transform: Callable[[BSDSSample], Any] | None = None,
        max_size: int | None = None,
        boundaries: bool = False,
    ) -> None:
        if not isinstance(split, str) or not split or "/" in split or "\\" in split:
            raise ValueError(f"`split` must be a folder name such as 'train', got {split!r}")
        if max_size is not None and (
            not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1
        ):
            raise ValueError(f"`max_size` must be a positive int or None, got {max_size!r}")
        if transform is not None and not callable(transform):
            raise ValueError(f"`transform` must be callable or None, got {type(transform)}")
        self.root = resolve_root(root, "BSDS500", BSDS_ENV, "data/images and data/groundTruth")
        self.split = split
        self.transform = transform
        self.max_size = max_size
        self.boundaries = bool(boundaries)

        if not self.root.is_dir():
            raise DataFileError(self.root, "BSDS500 root folder not found")
        image_dir = self.root / "data" / "images" / split
        gt_dir = self.root / "data" / "groundTruth" / split
        for folder in (image_dir, gt_dir):
            if not folder.is_dir():
                raise DataFileError(folder, f"split folder for split '{split}' not found")
        images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() == ".jpg"}
        gts = {p.stem: p for p in gt_dir.iterdir() if p.suffix.lower() == ".mat"}
        if not images:
            raise DataFileError(image_dir, "no .jpg image in the split folder")
        for stem in sorted(images):
            if stem not in gts:
                raise DataFileError(gt_dir / f"{stem}.mat", "ground-truth file not found")
        for stem in sorted(gts):
            if stem not in images:
                raise DataFileError(gts[stem], f"ground truth without image {stem}.jpg")
        self.ids: list[str] = sorted(images)
        self._files = [BSDSFiles(images[i], gts[i]) for i in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def _index(self, index: int) -> int:
        return check_index(index, len(self.ids))

    def paths(self, index: int) -> BSDSFiles:
        """The image and ground-truth files of item ``index``."""
        return self._files[self._index(index)]

    def load(self, index: int) -> BSDSSample:
        """Item ``index`` before ``transform`` (resized when ``max_size`` is set)."""
        i = self._index(index)
        files = self._files[i]
        image = read_rgb_image(files.image)
        segs, bdrys = read_bsds_ground_truth(files.ground_truth, boundaries=self.boundaries)
        height, width = int(image.shape[1]), int(image.shape[2])
        for k, seg in enumerate(segs):
            if seg.shape != (height, width):
                raise DataFileError(
                    files.ground_truth,
                    f"segmentation {k + 1} has shape {seg.shape}, image {files.image.name} has "
                    f"(H, W) = {(height, width)}",
                )
        seg_t = [torch.from_numpy(s) for s in segs]
        bd_t = [torch.from_numpy(b) for b in bdrys] if bdrys is not None else None
        if self.max_size is not None and max(height, width) > self.max_size:
            size = keep_aspect_size(height, width, max_side=self.max_size)
            image = resize_image(image, size).clamp_(0.0, 1.0)
            seg_t = [resize_labels(s, size) for s in seg_t]
            if bd_t is not None:
                bd_t = [label_boundaries(s) for s in seg_t]
        return BSDSSample(image=image, segmentations=seg_t, image_id=self.ids[i], boundaries=bd_t)

    def __getitem__(self, index: int) -> Any:
        sample = self.load(index)
        return self.transform(sample) if self.transform is not None else sample

    def __repr__(self) -> str:
        return (
            f"BSDS500(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"max_size={self.max_size})"
        )
