"""Superpixels: SLIC over-segmentation, pooling features to superpixels and back to pixels.

A superpixel map is an ``(H, W)`` int64 tensor with contiguous labels ``0 .. S-1``. Node
features are ``(S, C)`` (or ``(B, S, C)``); node labels are ``(S,)``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "grid_superpixels",
    "lift_to_pixels",
    "majority_labels",
    "pool_to_superpixels",
    "relabel_contiguous",
    "slic_superpixels",
]


def _shape_of(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def _check_superpixels(superpixels: object, name: str = "superpixels") -> torch.Tensor:
    if not isinstance(superpixels, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor, got {type(superpixels).__name__}")
    if superpixels.ndim != 2 or superpixels.numel() == 0:
        raise ValueError(f"`{name}` must have shape (H, W), got {tuple(superpixels.shape)}")
    if (
        superpixels.dtype.is_floating_point
        or superpixels.dtype.is_complex
        or superpixels.dtype == torch.bool
    ):
        raise ValueError(f"`{name}` must have an integer dtype, got {superpixels.dtype}")
    if int(superpixels.min()) < 0:
        raise ValueError(f"`{name}` must hold labels >= 0, got min {int(superpixels.min())}")
    return superpixels.long()


def check_label_map(label_map: object) -> None:
    """Raise ``ValueError`` unless ``label_map`` is an integer tensor ``(H, W)``."""
    if not isinstance(label_map, torch.Tensor) or label_map.ndim != 2:
        shape = (
            tuple(label_map.shape)
            if isinstance(label_map, torch.Tensor)
            else type(label_map).__name__
        )
        raise ValueError(f"`label_map` must have shape (H, W), got {shape}")
    if label_map.dtype.is_floating_point or label_map.dtype.is_complex:
        raise ValueError(f"`label_map` must have an integer dtype, got {label_map.dtype}")


def _unique_inverse(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.unique(values, return_inverse=True)`` for int64 tensors, in O(N) when the values
    are non-negative and bounded (label maps): a presence table and its cumulative sum replace
    the sort, which is ~50x faster on CPU for image-sized maps."""
    if values.numel() == 0:
        return torch.unique(values, return_inverse=True)
    lo, hi = int(values.min()), int(values.max())
    if lo < 0 or hi > 4 * values.numel() + 1024:
        return torch.unique(values, return_inverse=True)
    present = torch.bincount(values.reshape(-1), minlength=hi + 1) > 0
    table = torch.cumsum(present, 0) - 1
    return torch.nonzero(present).reshape(-1), table[values]


def relabel_contiguous(labels: torch.Tensor) -> torch.Tensor:
    """Map the distinct values of a label map to ``0 .. S-1``, keeping their order.

    :func:`matbackprop.metrics.relabel_contiguous` does the same on NumPy arrays.

    Parameters
    ----------
    labels : torch.Tensor
        Integer tensor of any shape.

    Returns
    -------
    torch.Tensor
        int64 tensor of the same shape and device; value ``k`` is the k-th smallest input label.

    Raises
    ------
    ValueError
        If ``labels`` is not an integer tensor.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import relabel_contiguous
    >>> relabel_contiguous(torch.tensor([[7, 7, 3], [9, 3, 3]]))
    tensor([[1, 1, 0],
            [2, 0, 0]])
    """
    if (
        not isinstance(labels, torch.Tensor)
        or labels.dtype.is_floating_point
        or labels.dtype.is_complex
    ):
        raise ValueError(
            "`labels` must be an integer torch.Tensor, "
            f"got {getattr(labels, 'dtype', type(labels))}"
        )
    return _unique_inverse(labels.long())[1].reshape(labels.shape)


def slic_superpixels(
    image: torch.Tensor | np.ndarray,
    n_segments: int = 200,
    compactness: float = 10.0,
    *,
    sigma: float = 1.0,
    enforce_connectivity: bool = True,
) -> torch.Tensor:
    """SLIC superpixels of an image (scikit-image), relabelled to ``0 .. S-1``.

    Parameters
    ----------
    image : torch.Tensor or numpy.ndarray
        ``(3, H, W)`` or ``(1, H, W)`` tensor, or ``(H, W, 3)`` / ``(H, W)`` array, values in
        ``[0, 1]`` (resampling overshoot up to 1e-3 is clipped). Colour images are clustered
        in CIELAB.
    n_segments : int, default 200
        Approximate number of superpixels (>= 1).
    compactness : float, default 10.0
        Balance of colour and space proximity (> 0); larger gives more regular superpixels.
    sigma : float, default 1.0
        Width of the Gaussian pre-smoothing (>= 0).
    enforce_connectivity : bool, default True
        Make every superpixel connected.

    Returns
    -------
    torch.Tensor
        ``(H, W)`` int64 superpixel map with contiguous labels ``0 .. S-1`` (S near, not equal to,
        ``n_segments``), on the CPU.

    Raises
    ------
    ValueError
        On a bad shape, non-finite values, values outside ``[0, 1]`` or bad parameters.

    Notes
    -----
    Deterministic: SLIC starts from a regular grid of centres, without randomness.

    References
    ----------
    R. Achanta et al., "SLIC Superpixels Compared to State-of-the-Art Superpixel Methods",
    IEEE TPAMI 34(11), 2012.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import slic_superpixels
    >>> image = torch.zeros(3, 32, 32)
    >>> image[:, :, 16:] = 1.0
    >>> superpixels = slic_superpixels(image, n_segments=8)
    >>> superpixels.shape, superpixels.dtype, int(superpixels.min())
    (torch.Size([32, 32]), torch.int64, 0)
    """
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(
                f"`image` must have shape (3, H, W) or (1, H, W), got {tuple(image.shape)}"
            )
        array = image.detach().to("cpu", torch.float64).permute(1, 2, 0).numpy()
    elif isinstance(image, np.ndarray):
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
            raise ValueError(f"`image` must have shape (H, W, 3) or (H, W), got {image.shape}")
        array = np.asarray(image, dtype=np.float64)
        if array.ndim == 2:
            array = array[:, :, None]
    else:
        raise ValueError(
            f"`image` must be a torch.Tensor or numpy.ndarray, got {type(image).__name__}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"`image` must be non-empty, got spatial size {array.shape[:2]}")
    if not np.all(np.isfinite(array)) or array.min() < -1e-3 or array.max() > 1.0 + 1e-3:
        raise ValueError(
            "`image` must hold finite values in [0, 1], "
            f"got range [{array.min():.4g}, {array.max():.4g}]"
        )
    array = np.clip(array, 0.0, 1.0)
    if not isinstance(n_segments, int) or isinstance(n_segments, bool) or n_segments < 1:
        raise ValueError(f"`n_segments` must be a positive int, got {n_segments!r}")
    if not isinstance(compactness, int | float) or not compactness > 0:
        raise ValueError(f"`compactness` must be a positive number, got {compactness!r}")
    if not isinstance(sigma, int | float) or not sigma >= 0:
        raise ValueError(f"`sigma` must be a number >= 0, got {sigma!r}")

    from skimage.segmentation import slic

    colour = array.shape[2] == 3
    segments = slic(
        array if colour else array[:, :, 0],
        n_segments=n_segments,
        compactness=float(compactness),
        sigma=float(sigma),
        start_label=0,
        channel_axis=-1 if colour else None,
        convert2lab=colour,
        enforce_connectivity=enforce_connectivity,
    )
    return relabel_contiguous(torch.from_numpy(np.ascontiguousarray(segments)).long())


def _cell_index(n_in: int, n_cells: int, device: torch.device) -> torch.Tensor:
    # Pixel i of n_in lies in cell floor(i * n_cells / n_in) (torch's "nearest" convention).
    return torch.div(torch.arange(n_in, device=device) * n_cells, n_in, rounding_mode="floor")


def grid_superpixels(
    image_size: tuple[int, int],
    grid_size: tuple[int, int],
    *,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A regular grid as a superpixel map: cell ``(r, c)`` has label ``r * gw + c``.

    Pixel ``(y, x)`` lies in cell ``(floor(y gh / H), floor(x gw / W))``, the cell an image pixel
    gets under nearest-neighbour upsampling of a ``(gh, gw)`` map to ``(H, W)``. With the
    superpixel functions this gives grid pooling (:func:`pool_to_superpixels`), lifting of grid
    labels (:func:`lift_to_pixels`) and majority votes on a grid (:func:`majority_labels`).

    Parameters
    ----------
    image_size : tuple of int
        ``(H, W)``.
    grid_size : tuple of int
        ``(gh, gw)`` with ``1 <= gh <= H`` and ``1 <= gw <= W``.
    device : torch.device or str, optional
        Device of the result (default CPU).

    Returns
    -------
    torch.Tensor
        ``(H, W)`` int64 map with labels ``0 .. gh*gw - 1`` (row-major cells), all present.

    Raises
    ------
    ValueError
        If the sizes are not positive pairs or the grid is finer than the image.

    Examples
    --------
    >>> from matbackprop.data import grid_superpixels
    >>> grid_superpixels((4, 6), (2, 3))
    tensor([[0, 0, 1, 1, 2, 2],
            [0, 0, 1, 1, 2, 2],
            [3, 3, 4, 4, 5, 5],
            [3, 3, 4, 4, 5, 5]])
    """
    for name, size in (("image_size", image_size), ("grid_size", grid_size)):
        if (
            not isinstance(size, tuple | list)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)
        ):
            raise ValueError(f"`{name}` must be a pair of positive ints, got {size!r}")
    (H, W), (gh, gw) = image_size, grid_size
    if gh > H or gw > W:
        raise ValueError(f"`grid_size` must not exceed `image_size` {(H, W)}, got {(gh, gw)}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    rows = _cell_index(H, gh, dev)
    cols = _cell_index(W, gw, dev)
    return rows.view(-1, 1) * gw + cols.view(1, -1)


def pool_to_superpixels(
    features: torch.Tensor,
    superpixels: torch.Tensor,
    *,
    mode: Literal["bilinear", "nearest"] = "bilinear",
    num_superpixels: int | None = None,
) -> torch.Tensor:
    """Mean feature per superpixel (differentiable).

    .. math:: f_s = \\frac{1}{|P_s|} \\sum_{p \\in P_s} \\tilde F(p)

    where :math:`P_s` are the image pixels of superpixel :math:`s` and :math:`\\tilde F` is the
    feature map brought to image resolution.

    Parameters
    ----------
    features : torch.Tensor
        ``(C, h, w)`` or ``(B, C, h, w)`` floating feature map, possibly coarser than the image.
    superpixels : torch.Tensor
        ``(H, W)`` integer map with labels ``0 .. S-1``, each present at least once.
    mode : {"bilinear", "nearest"}, default "bilinear"
        How features reach image resolution when ``(h, w) != (H, W)``: bilinear upsampling
        (``align_corners=False``), or assigning each image pixel to the feature cell that
        contains it (``floor(y h / H)``, i.e. nearest-neighbour upsampling).
    num_superpixels : int, optional
        S; default ``superpixels.max() + 1``.

    Returns
    -------
    torch.Tensor
        ``(S, C)`` or ``(B, S, C)``, dtype and device of ``features``. Gradients flow to
        ``features``.

    Raises
    ------
    ValueError
        On bad shapes or dtypes, non-finite features, a superpixel label >= S, or a superpixel
        with no pixel.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import pool_to_superpixels
    >>> features = torch.arange(6.0).reshape(1, 1, 2, 3)             # (B, C, h, w)
    >>> superpixels = torch.tensor([[0, 0, 1], [0, 1, 1]])
    >>> pool_to_superpixels(features, superpixels, mode="nearest")   # (B, S, C)
    tensor([[[1.3333],
             [3.6667]]])
    """
    if not isinstance(features, torch.Tensor) or features.ndim not in (3, 4):
        shape = (
            tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        )
        raise ValueError(f"`features` must have shape (C, h, w) or (B, C, h, w), got {shape}")
    if not features.is_floating_point():
        raise ValueError(f"`features` must have a floating dtype, got {features.dtype}")
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"`mode` must be 'bilinear' or 'nearest', got {mode!r}")
    sp = _check_superpixels(superpixels).to(features.device)
    S = _num_nodes(sp, num_superpixels)
    H, W = sp.shape
    batched = features.ndim == 4
    x = features if batched else features.unsqueeze(0)
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError("`features` must be finite")
    B, C, h, w = x.shape
    if (h, w) != (H, W):
        if mode == "bilinear":
            x = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False)
            flat = x.reshape(B, C, H * W)
        else:
            cell = grid_superpixels((H, W), (h, w), device=x.device) if h <= H and w <= W else None
            if cell is None:
                raise ValueError(
                    f"`features` ({h}, {w}) must not be finer than `superpixels` {(H, W)} "
                    "with mode='nearest'"
                )
            flat = x.reshape(B, C, h * w).index_select(2, cell.reshape(-1))
    else:
        flat = x.reshape(B, C, H * W)
    index = sp.reshape(-1)
    counts = torch.bincount(index, minlength=S)
    if bool((counts == 0).any()):
        empty = torch.nonzero(counts == 0).reshape(-1)[:5].tolist()
        raise ValueError(
            f"`superpixels` must use every label 0 .. {S - 1}; labels {empty} have no pixel "
            "(relabel with relabel_contiguous)"
        )
    sums = flat.new_zeros(B, C, S).index_add(2, index, flat)
    means = sums / counts.to(flat.dtype)
    out = means.transpose(1, 2)
    return out if batched else out.squeeze(0)


def _num_nodes(sp: torch.Tensor, num: int | None) -> int:
    top = int(sp.max()) + 1
    if num is None:
        return top
    if not isinstance(num, int) or isinstance(num, bool) or num < top:
        raise ValueError(
            f"`num_superpixels` must be an int >= superpixels.max() + 1 = {top}, got {num!r}"
        )
    return num


def lift_to_pixels(node_values: torch.Tensor, superpixels: torch.Tensor) -> torch.Tensor:
    """Paint each superpixel with its node's value: ``out[y, x] = node_values[superpixels[y, x]]``.

    Parameters
    ----------
    node_values : torch.Tensor
        ``(S,)`` node labels (or ``(S, ...)`` node vectors).
    superpixels : torch.Tensor
        ``(H, W)`` integer map with labels in ``0 .. S-1``.

    Returns
    -------
    torch.Tensor
        ``(H, W)`` (or ``(H, W, ...)``), dtype and device of ``node_values``; differentiable in
        ``node_values``.

    Raises
    ------
    ValueError
        If ``node_values`` is 0-d or a superpixel label is >= S.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import lift_to_pixels
    >>> lift_to_pixels(torch.tensor([0.5, 2.0]), torch.tensor([[0, 0, 1], [1, 1, 1]]))
    tensor([[0.5000, 0.5000, 2.0000],
            [2.0000, 2.0000, 2.0000]])
    """
    if not isinstance(node_values, torch.Tensor) or node_values.ndim < 1:
        raise ValueError(
            f"`node_values` must have shape (S,) or (S, ...), got {_shape_of(node_values)}"
        )
    sp = _check_superpixels(superpixels).to(node_values.device)
    S = int(node_values.shape[0])
    if int(sp.max()) >= S:
        raise ValueError(
            f"`superpixels` labels must be < S = {S} (length of `node_values`), "
            f"got max {int(sp.max())}"
        )
    return node_values[sp]


def majority_labels(
    label_map: torch.Tensor,
    superpixels: torch.Tensor,
    *,
    num_superpixels: int | None = None,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Majority label of each superpixel; ties go to the smallest label.

    Parameters
    ----------
    label_map : torch.Tensor
        ``(H, W)`` integer label map (any integer values).
    superpixels : torch.Tensor
        ``(H, W)`` integer map with labels ``0 .. S-1``.
    num_superpixels : int, optional
        S; default ``superpixels.max() + 1``. Superpixels without pixels get ``ignore_index``
        (or raise when it is ``None``).
    ignore_index : int, optional
        Pixels with this label do not vote; a superpixel with only such pixels gets it.

    Returns
    -------
    torch.Tensor
        ``(S,)`` int64 on the device of ``label_map``.

    Raises
    ------
    ValueError
        On shape or dtype mismatch, or an empty superpixel when ``ignore_index`` is ``None``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import majority_labels
    >>> label_map = torch.tensor([[5, 5, 7], [5, 7, 7]])
    >>> majority_labels(label_map, torch.tensor([[0, 0, 1], [0, 1, 1]]))
    tensor([5, 7])
    """
    check_label_map(label_map)
    sp = _check_superpixels(superpixels).to(label_map.device)
    if sp.shape != label_map.shape:
        raise ValueError(
            f"`superpixels` must have the shape of `label_map` {tuple(label_map.shape)}, "
            f"got {tuple(sp.shape)}"
        )
    S = _num_nodes(sp, num_superpixels)
    labels = label_map.long().reshape(-1)
    nodes = sp.reshape(-1)
    if ignore_index is not None:
        keep = labels != ignore_index
        labels, nodes = labels[keep], nodes[keep]
    values, inverse = _unique_inverse(labels)  # sorted ascending
    L = int(values.numel())
    counts = torch.bincount(nodes * max(L, 1) + inverse, minlength=S * max(L, 1)).view(S, max(L, 1))
    empty = counts.sum(dim=1) == 0
    if bool(empty.any()) and ignore_index is None:
        first = torch.nonzero(empty).reshape(-1)[:5].tolist()
        raise ValueError(f"superpixels {first} have no pixel; pass `ignore_index` to allow this")
    if L == 0:
        fill = int(ignore_index)  # type: ignore[arg-type]  # not None: raised above otherwise
        return torch.full((S,), fill, dtype=torch.int64, device=label_map.device)
    # argmax returns the first maximum: the smallest label among ties.
    winner = values[counts.argmax(dim=1)]
    if ignore_index is not None:
        winner = torch.where(empty, torch.full_like(winner, int(ignore_index)), winner)
    return winner
