"""Regular-grid nodes: the grid counterpart of superpixels.

Grid cell ``(r, c)`` of a ``(gh, gw)`` grid is node ``r * gw + c`` (row-major); an image pixel
``(y, x)`` of an ``(H, W)`` image belongs to cell ``(floor(y gh / H), floor(x gw / W))``, which is
what nearest-neighbour upsampling of a ``(gh, gw)`` map to ``(H, W)`` does. All helpers go
through :func:`~matbackprop.data.grid_superpixels`, so they agree with each other.
"""

from __future__ import annotations

import torch

from ._superpixels import (
    check_label_map,
    grid_superpixels,
    lift_to_pixels,
    majority_labels,
    pool_to_superpixels,
)

__all__ = ["grid_majority_labels", "lift_grid_labels", "pool_to_grid"]


def _grid_pair(grid_size: object) -> tuple[int, int]:
    if (
        not isinstance(grid_size, tuple | list)
        or len(grid_size) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in grid_size)
    ):
        raise ValueError(f"`grid_size` must be a pair of positive ints (gh, gw), got {grid_size!r}")
    return int(grid_size[0]), int(grid_size[1])


def pool_to_grid(features: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """Average a feature map over the cells of a coarser grid (differentiable).

    Parameters
    ----------
    features : torch.Tensor
        ``(C, h, w)`` or ``(B, C, h, w)`` floating tensor with ``h >= gh`` and ``w >= gw``.
    grid_size : tuple of int
        ``(gh, gw)``.

    Returns
    -------
    torch.Tensor
        ``(gh*gw, C)`` or ``(B, gh*gw, C)`` node features, row-major cells.

    Raises
    ------
    ValueError
        On bad shapes or a grid finer than the feature map.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import pool_to_grid
    >>> features = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> pool_to_grid(features, (2, 2))
    tensor([[[ 2.5000],
             [ 4.5000],
             [10.5000],
             [12.5000]]])
    """
    gh, gw = _grid_pair(grid_size)
    if not isinstance(features, torch.Tensor) or features.ndim not in (3, 4):
        shape = (
            tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        )
        raise ValueError(f"`features` must have shape (C, h, w) or (B, C, h, w), got {shape}")
    h, w = int(features.shape[-2]), int(features.shape[-1])
    if gh > h or gw > w:
        raise ValueError(
            f"`grid_size` must not exceed the feature map size {(h, w)}, got {(gh, gw)}"
        )
    cells = grid_superpixels((h, w), (gh, gw), device=features.device)
    return pool_to_superpixels(features, cells)


def lift_grid_labels(
    node_labels: torch.Tensor, image_size: tuple[int, int], grid_size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Nearest-neighbour upsampling of grid node labels to an image.

    Parameters
    ----------
    node_labels : torch.Tensor
        ``(gh, gw)`` map, or ``(gh*gw,)`` node vector together with ``grid_size``.
    image_size : tuple of int
        ``(H, W)`` with ``H >= gh`` and ``W >= gw``.
    grid_size : tuple of int, optional
        ``(gh, gw)``; required for a flat ``node_labels``.

    Returns
    -------
    torch.Tensor
        ``(H, W)``, dtype and device of ``node_labels``.

    Raises
    ------
    ValueError
        On inconsistent shapes.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import lift_grid_labels
    >>> lift_grid_labels(torch.tensor([0, 1, 2, 3]), (4, 4), (2, 2))
    tensor([[0, 0, 1, 1],
            [0, 0, 1, 1],
            [2, 2, 3, 3],
            [2, 2, 3, 3]])
    """
    if not isinstance(node_labels, torch.Tensor) or node_labels.ndim not in (1, 2):
        shape = (
            tuple(node_labels.shape)
            if isinstance(node_labels, torch.Tensor)
            else type(node_labels).__name__
        )
        raise ValueError(f"`node_labels` must have shape (gh, gw) or (gh*gw,), got {shape}")
    if node_labels.ndim == 2:
        shape2 = (int(node_labels.shape[0]), int(node_labels.shape[1]))
        if grid_size is not None and _grid_pair(grid_size) != shape2:
            raise ValueError(
                f"`grid_size` must match `node_labels` shape {shape2}, got {grid_size!r}"
            )
        gh, gw = shape2
        flat = node_labels.reshape(-1)
    else:
        if grid_size is None:
            raise ValueError("`grid_size` is required when `node_labels` has shape (gh*gw,)")
        gh, gw = _grid_pair(grid_size)
        if node_labels.shape[0] != gh * gw:
            raise ValueError(
                f"`node_labels` must have {gh * gw} entries for grid {(gh, gw)}, "
                f"got {node_labels.shape[0]}"
            )
        flat = node_labels
    cells = grid_superpixels(image_size, (gh, gw), device=node_labels.device)
    return lift_to_pixels(flat, cells)


def grid_majority_labels(
    label_map: torch.Tensor, grid_size: tuple[int, int], *, ignore_index: int | None = None
) -> torch.Tensor:
    """Majority label of each grid cell (ties: smallest label).

    Parameters
    ----------
    label_map : torch.Tensor
        ``(H, W)`` integer label map.
    grid_size : tuple of int
        ``(gh, gw)`` with ``gh <= H`` and ``gw <= W``.
    ignore_index : int, optional
        Label that does not vote (see :func:`~matbackprop.data.majority_labels`).

    Returns
    -------
    torch.Tensor
        ``(gh*gw,)`` int64, row-major cells.

    Raises
    ------
    ValueError
        On bad shapes or a grid finer than the label map.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.data import grid_majority_labels
    >>> label_map = torch.tensor([[0, 0, 1, 1],
    ...                       [0, 1, 1, 1]])
    >>> grid_majority_labels(label_map, (1, 2))
    tensor([0, 1])
    """
    check_label_map(label_map)
    gh, gw = _grid_pair(grid_size)
    h, w = label_map.shape
    cells = grid_superpixels((h, w), (gh, gw), device=label_map.device)
    return majority_labels(label_map, cells, ignore_index=ignore_index)
