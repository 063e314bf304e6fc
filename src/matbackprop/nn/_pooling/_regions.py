"""Regions of second-order pooling: input checks, the weighted rows of each region, grouping by
support size, and the choice of route per region."""

from __future__ import annotations

from typing import overload

import torch
from torch import Tensor

from matbackprop.validation import (
    check_finite,
    check_float_dtype,
    check_ndim,
    check_nonempty,
    check_nonnegative,
    require_tensor,
)

# ----------------------------------------------------------------------------- inputs


def check_features(features: object) -> Tensor:
    """``features (B, C, H, W)``, float32/float64, non-empty (no host sync)."""
    features = require_tensor(features, "features")
    check_ndim(features, "features", 4, "(B, C, H, W)")
    check_nonempty(features, "features", "(B, C, H, W)")
    check_float_dtype(features, "features")
    return features


def check_masks(masks: object, features: Tensor) -> Tensor:
    """``masks (B, R, H, W)`` matching ``features``, real, on its device (no host sync)."""
    if not isinstance(masks, Tensor):
        raise ValueError(f"`masks` must be a torch.Tensor or None, got {type(masks).__name__}")
    B, _, H, W = features.shape
    check_ndim(masks, "masks", 4, "(B, R, H, W)")
    if masks.shape[0] != B or masks.shape[2:] != (H, W):
        raise ValueError(
            f"`masks` must have shape ({B}, R, {H}, {W}) to match `features` "
            f"{tuple(features.shape)}, got {tuple(masks.shape)}"
        )
    if masks.shape[1] < 1:
        raise ValueError(
            f"`masks` must hold at least one region (R >= 1), got {tuple(masks.shape)}"
        )
    if masks.is_complex():
        raise ValueError(f"`masks` must be real (bool, integer or floating), got {masks.dtype}")
    if masks.device != features.device:
        raise ValueError(
            f"`masks` must be on the device of `features` ({features.device}), got {masks.device}"
        )
    return masks


def check_values(features: Tensor, masks: Tensor | None, sums: Tensor | None) -> None:
    """Finite features; finite, non-negative weights; a positive total weight per region."""
    check_finite(features, "features")
    if masks is None or sums is None:
        return
    if masks.dtype.is_floating_point:
        check_finite(masks, "masks")
    check_nonnegative(masks, "masks", " (region weights)")
    empty = (sums <= 0).nonzero()
    if empty.numel():
        raise ValueError(
            f"`masks` must give every region a positive total weight; empty: {name_regions(empty)}"
        )


def name_regions(image_region: Tensor, limit: int = 5) -> str:
    """``"region r of image b, ..."`` for ``(k, 2)`` pairs ``(b, r)`` (at most ``limit``)."""
    pairs = image_region.tolist()
    listed = ", ".join(f"region {int(r)} of image {int(b)}" for b, r in pairs[:limit])
    more = f" (and {len(pairs) - limit} more)" if len(pairs) > limit else ""
    return listed + more


# ----------------------------------------------------------------------------- rows


def region_rows(
    pixels: Tensor, weights: Tensor, image: Tensor, support: int, center: bool
) -> Tensor:
    """Rows ``√w̃_p (f_p − μ)`` of each region over its (padded) support.

    ``pixels (B, N, C)``, normalized weights ``weights (n, N)`` (sum 1 per region), ``image
    (n,)`` the image of each region. Returns ``X (n, support, C)`` with ``XᵀX = C_r``; pixels
    outside the support get weight 0, so the padding rows of ``X`` are exactly zero.
    """
    N = pixels.shape[1]
    if support >= N:
        rows = pixels.index_select(0, image)  # (n, N, C)
        w = weights
    else:
        idx = torch.topk(weights, support, dim=-1, sorted=False).indices  # (n, p)
        flat = (image.unsqueeze(-1) * N + idx).reshape(-1)
        # index_select (backward: index_add) rather than advanced indexing (index_put)
        rows = pixels.reshape(-1, pixels.shape[-1]).index_select(0, flat)
        rows = rows.reshape(*idx.shape, pixels.shape[-1])  # (n, p, C)
        w = weights.gather(-1, idx)  # (n, p)
    if center:
        mu = (w.unsqueeze(-1) * rows).sum(-2, keepdim=True)  # (n, 1, C)
        rows = rows - mu
    return torch.sqrt(w).unsqueeze(-1) * rows


def dense_moment(pixels: Tensor, weights: Tensor, image: Tensor, center: bool) -> Tensor:
    """``C_r = Σ_p w̃_p f_p f_pᵀ`` over all pixels, linear in the weights (differentiable masks)."""
    F = pixels.index_select(0, image)  # (n, N, C)
    w = weights.unsqueeze(-1)  # (n, N, 1)
    if center:
        F = F - (w * F).sum(-2, keepdim=True)
    return (w * F).mT @ F  # (n, C, C)


# ----------------------------------------------------------------------------- routes


def support_buckets(
    sel: Tensor, support: Tensor, growth: float = 1.25, slack: int = 8
) -> list[tuple[Tensor, int]]:
    """Split the regions ``sel`` into groups of similar support size (less zero padding).

    Sorted by support; a group closes when the next support exceeds ``growth · first + slack``.
    Returns ``(indices, largest support)`` per group, indices ascending within a group.
    """
    sizes = support.index_select(0, sel)
    order = torch.argsort(sizes)
    sorted_sizes = sizes.index_select(0, order).tolist()
    groups, start = [], 0
    for i in range(1, len(sorted_sizes) + 1):
        if i == len(sorted_sizes) or sorted_sizes[i] > growth * sorted_sizes[start] + slack:
            members = sel.index_select(0, order[start:i]).sort().values  # keep region order
            groups.append((members, int(sorted_sizes[i - 1])))
            start = i
    return groups


@overload
def plan_routes(
    support: int, channels: int, route: str, gram_available: bool, gram_ratio: float = ...
) -> bool: ...


@overload
def plan_routes(
    support: Tensor, channels: int, route: str, gram_available: bool, gram_ratio: float = ...
) -> Tensor: ...


def plan_routes(
    support: Tensor | int,
    channels: int,
    route: str,
    gram_available: bool,
    gram_ratio: float = 1.0,
) -> Tensor | bool:
    """Which regions take the Gram route (accuracy first): boolean ``(Q,)`` for a tensor of
    supports, a ``bool`` for one support known on the host (a plan without host sync).

    A region with ``p`` pixels (support) and ``C`` channels has a rank-``min(p, C)`` moment:
    the ``C × C`` matrix ``C_r`` is singular when ``p < C`` and the ``p × p`` Gram matrix when
    ``p > C``; each route is exact in floating point only where its matrix has no null space.

    - Gram unavailable (normalization, ``eps = 0``, masks that require grad) or
      ``"covariance"``: none;
    - ``"gram"``: every region with ``p < C``;
    - ``"auto"``: every region with ``p < min(gram_ratio, 1) · C``.
    """
    if route == "covariance" or not gram_available:
        return support < 0  # none (supports are >= 0): False, or a tensor of False
    rank_deficient = support < channels
    if route == "gram":
        return rank_deficient
    return rank_deficient & (support < gram_ratio * channels)
