"""Resizing of images and label maps, keeping them aligned.

Images are float tensors ``(C, H, W)`` or ``(B, C, H, W)`` in ``[0, 1]``; label maps are integer
(or boolean) tensors ``(H, W)`` or ``(..., H, W)``. Images are resized with antialiased bilinear
interpolation, label maps with nearest neighbour (pixel-centre convention), so that both stay
aligned. (Input normalization belongs to each backbone: see
:class:`matbackprop.models.ImageNormalization`.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "keep_aspect_size",
    "resize_image",
    "resize_keep_aspect",
    "resize_labels",
]

def _check_image(image: object, name: str = "image") -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim not in (3, 4):
        raise ValueError(
            f"`{name}` must have shape (C, H, W) or (B, C, H, W), got {tuple(image.shape)}"
        )
    if not image.is_floating_point():
        raise ValueError(f"`{name}` must have a floating dtype, got {image.dtype}")
    if image.shape[-1] == 0 or image.shape[-2] == 0:
        raise ValueError(f"`{name}` must have a non-empty spatial size, got {tuple(image.shape)}")
    return image


def _check_size(size: object, name: str = "size") -> tuple[int, int]:
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        raise ValueError(f"`{name}` must be a pair of ints (H, W), got {size!r}")
    if size[0] < 1 or size[1] < 1:
        raise ValueError(f"`{name}` must be positive, got {tuple(size)}")
    return int(size[0]), int(size[1])


def keep_aspect_size(
    height: int, width: int, *, max_side: int | None = None, short_side: int | None = None
) -> tuple[int, int]:
    """Output size ``(h, w)`` that keeps the aspect ratio of ``(height, width)``.

    With ``max_side`` the longer side becomes ``max_side``; with ``short_side`` the shorter side
    becomes ``short_side``. The other side is ``round(side * scale)`` (at least 1).

    Parameters
    ----------
    height, width : int
        Input size, positive.
    max_side, short_side : int, optional
        Exactly one must be given, positive.

    Returns
    -------
    tuple of int
        ``(h, w)``.

    Raises
    ------
    ValueError
        If the sizes are not positive ints or not exactly one target is given.

    Examples
    --------
    >>> from matbackprop.data import keep_aspect_size
    >>> keep_aspect_size(321, 481, max_side=240)
    (160, 240)
    >>> keep_aspect_size(321, 481, short_side=160)
    (160, 240)
    """
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    if (max_side is None) == (short_side is None):
        raise ValueError(
            "exactly one of `max_side` and `short_side` must be given, "
            f"got max_side={max_side!r}, short_side={short_side!r}"
        )
    target = max_side if max_side is not None else short_side
    name = "max_side" if max_side is not None else "short_side"
    if not isinstance(target, int) or isinstance(target, bool) or target < 1:
        raise ValueError(f"`{name}` must be a positive int, got {target!r}")
    reference = max(height, width) if max_side is not None else min(height, width)
    scale = target / reference
    h = max(1, int(math.floor(height * scale + 0.5)))
    w = max(1, int(math.floor(width * scale + 0.5)))
    # The side that defines the scale is hit exactly.
    if reference == height:
        h = target
    if reference == width:
        w = target
    return h, w


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize an image to ``size`` with bilinear interpolation (antialiased when shrinking).

    Parameters
    ----------
    image : torch.Tensor
        ``(C, H, W)`` or ``(B, C, H, W)`` floating tensor.
    size : tuple of int
        Output ``(h, w)``.

    Returns
    -------
    torch.Tensor
        ``(C, h, w)`` or ``(B, C, h, w)``, same dtype and device. Returned unchanged when the
        size already matches.

    Raises
    ------
    ValueError
        If ``image`` is not a floating 3-D/4-D tensor or ``size`` is not a positive pair.

    Notes
    -----
    Uses ``align_corners=False`` (pixel-centre convention), the same convention as
    :func:`resize_labels`. Antialiasing uses a triangle filter with positive weights, so values
    stay within the input range up to float rounding (clamp when an exact range matters).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import resize_image
    >>> resize_image(torch.rand(3, 321, 481), (160, 240)).shape
    torch.Size([3, 160, 240])
    """
    image = _check_image(image)
    size = _check_size(size)
    if tuple(image.shape[-2:]) == size:
        return image
    batched = image.ndim == 4
    x = image if batched else image.unsqueeze(0)
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out if batched else out.squeeze(0)


def resize_keep_aspect(
    image: torch.Tensor, *, max_side: int | None = None, short_side: int | None = None
) -> torch.Tensor:
    """Resize an image keeping its aspect ratio (bilinear, antialiased).

    Parameters
    ----------
    image : torch.Tensor
        ``(C, H, W)`` or ``(B, C, H, W)`` floating tensor.
    max_side, short_side : int, optional
        Exactly one: the target length of the longer (resp. shorter) side. Images are scaled up
        as well as down.

    Returns
    -------
    torch.Tensor
        The resized image, same dtype and device; size from :func:`keep_aspect_size`.

    Raises
    ------
    ValueError
        On a bad ``image`` or target.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import resize_keep_aspect
    >>> resize_keep_aspect(torch.rand(3, 321, 481), max_side=240).shape
    torch.Size([3, 160, 240])
    """
    image = _check_image(image)
    h, w = keep_aspect_size(
        int(image.shape[-2]), int(image.shape[-1]), max_side=max_side, short_side=short_side
    )
    return resize_image(image, (h, w))


def _nearest_indices(n_in: int, n_out: int, device: torch.device) -> torch.Tensor:
    # Pixel-centre nearest neighbour: output pixel i samples input floor((i + 0.5) * n_in / n_out).
    idx = ((torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out)).floor()
    return idx.long().clamp_(0, n_in - 1)


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a label map (or a stack of masks) with nearest-neighbour sampling.

    Output pixel ``(i, j)`` takes the input pixel ``(floor((i + .5) H / h), floor((j + .5) W / w))``
    (the pixel containing its centre), the convention of ``mode="nearest-exact"``, which keeps
    label maps aligned with images resized by :func:`resize_image`. Values and dtype are kept
    exactly (no float round trip).

    Parameters
    ----------
    labels : torch.Tensor
        ``(H, W)`` or ``(..., H, W)`` tensor of any dtype (typically int64 or bool).
    size : tuple of int
        Output ``(h, w)``.

    Returns
    -------
    torch.Tensor
        ``(..., h, w)``, same dtype and device.

    Raises
    ------
    ValueError
        If ``labels`` has fewer than 2 dimensions or ``size`` is not a positive pair.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import resize_labels
    >>> resize_labels(torch.tensor([[0, 1], [2, 3]]), (4, 4))
    tensor([[0, 0, 1, 1],
            [0, 0, 1, 1],
            [2, 2, 3, 3],
            [2, 2, 3, 3]])
    """
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}")
    if labels.ndim < 2:
        raise ValueError(f"`labels` must have shape (..., H, W), got {tuple(labels.shape)}")
    size = _check_size(size)
    H, W = int(labels.shape[-2]), int(labels.shape[-1])
    if H == 0 or W == 0:
        raise ValueError(f"`labels` must have a non-empty spatial size, got {tuple(labels.shape)}")
    if (H, W) == size:
        return labels
    rows = _nearest_indices(H, size[0], labels.device)
    cols = _nearest_indices(W, size[1], labels.device)
    return labels.index_select(-2, rows).index_select(-1, cols)
