"""Affinities and degrees for normalized cuts: non-negativity maps, floored degrees, and the
Shi–Malik Gaussian affinity.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as nnf
from torch import Tensor

from matbackprop.validation import (
    check_choice,
    check_finite,
    check_float_dtype,
    check_nonempty,
    check_nonnegative,
    check_number,
    require_tensor,
)

Nonneg = Literal["relu", "softplus", "square", "none"]
NONNEG_CHOICES = ("relu", "softplus", "square", "none")

#: Default relative degree floor: ``dᵢ ← max(dᵢ, τ · mean(d))`` with ``τ = 1e-4``.
DEFAULT_DEGREE_FLOOR = 1e-4


def nonnegative_features(features: Tensor, nonneg: Nonneg, *, check: bool = True) -> Tensor:
    """Map features to ``F >= 0`` so that ``W = FFᵀ`` is a non-negative affinity.

    ``"relu"`` ``max(F, 0)`` (idempotent after a ReLU/softplus in the model; zero rows get a
    floored degree), ``"softplus"`` ``log(1 + eᶠ)`` (smooth, strictly positive), ``"square"``
    ``F ∘ F``, ``"none"`` (``F`` must already be non-negative; with ``check`` that is verified,
    one host sync, ValueError otherwise).
    """
    check_choice(nonneg, "nonneg", NONNEG_CHOICES)
    if check:
        check_nonneg_input(features, nonneg)
    return nonneg_map(features, nonneg)


def check_nonneg_input(features: Tensor, nonneg: Nonneg) -> None:
    """With ``nonneg="none"`` the features themselves must be ``>= 0`` (one host sync)."""
    if nonneg == "none":
        check_nonnegative(
            features,
            "features",
            ' with nonneg="none"; pass nonneg="relu" | "softplus" | "square"',
        )


def nonneg_map(x: Tensor, nonneg: Nonneg) -> Tensor:
    """``φ(x)``, the map of :func:`nonnegative_features` without checks (also on row blocks)."""
    if nonneg == "relu":
        return torch.relu(x)
    if nonneg == "softplus":
        return nnf.softplus(x)
    if nonneg == "square":
        return x * x
    return x


def nonneg_map_into(x: Tensor, nonneg: Nonneg, out: Tensor) -> Tensor:
    """``φ(x)`` written into ``out`` (same shape and dtype; returns ``x`` itself for ``"none"``).

    The streaming passes of the Gram solver reuse one block-sized buffer this way, so no pass
    allocates (and page-faults) a fresh block.
    """
    if nonneg == "relu":
        return torch.clamp_min(x, 0.0, out=out)
    if nonneg == "softplus":
        return torch.ops.aten.softplus.out(x, 1.0, 20.0, out=out)
    if nonneg == "square":
        return torch.mul(x, x, out=out)
    return x


def nonneg_backward_(grad: Tensor, x: Tensor, nonneg: Nonneg) -> Tensor:
    """``grad ← φ′(x) ∘ grad`` in place: the derivative of :func:`nonneg_map`."""
    if nonneg == "relu":  # relu's own backward kernel (x > 0), written into grad
        return torch.ops.aten.threshold_backward.grad_input(grad, x, 0.0, grad_input=grad)
    if nonneg == "softplus":
        return grad.mul_(torch.sigmoid(x))
    if nonneg == "square":
        return grad.mul_(x).mul_(2.0)
    return grad


def degree_floor_value(degrees: Tensor, rel: float, abs_floor: float | None) -> Tensor:
    """The floor ``f = max(rel · mean_j dⱼ, abs)`` per image, shape ``(B, 1)``.

    ``abs_floor=None`` uses the dtype's smallest normal number, which only rules out a division
    by zero.
    """
    floor = rel * degrees.mean(dim=-1, keepdim=True)  # (B, 1)
    return floor.clamp_min(absolute_degree_floor(degrees.dtype, abs_floor))


def absolute_degree_floor(dtype: torch.dtype, abs_floor: float | None) -> float:
    """``abs_floor``, or the smallest normal number of ``dtype`` for ``None``."""
    return torch.finfo(dtype).tiny if abs_floor is None else abs_floor


def floor_degrees(degrees: Tensor, rel: float, abs_floor: float | None) -> Tensor:
    """``d̃ᵢ = max(dᵢ, rel · mean_j dⱼ, abs)`` per image (``degrees (B, m)``).

    The floor is differentiable: where it is active the gradient flows to ``mean(d)``.
    """
    return torch.maximum(degrees, degree_floor_value(degrees, rel, abs_floor))


def lowrank_degrees(features: Tensor) -> Tensor:
    """Degrees of ``W = FFᵀ`` without forming it: ``d = F (Fᵀ 1)``, shape ``(B, m)``. O(md)."""
    return (features @ features.sum(dim=-2).unsqueeze(-1)).squeeze(-1)  # (B, m)


def gaussian_affinity(
    positions: Tensor,
    colors: Tensor,
    sigma_xy: float,
    sigma_rgb: float,
    radius: float | None = None,
) -> Tensor:
    """Shi–Malik affinity on position and colour (a dense ``m × m`` matrix).

    ``Wᵢⱼ = exp(−‖cᵢ − cⱼ‖² / σ_rgb²) · exp(−‖xᵢ − xⱼ‖² / σ_xy²)`` if ``‖xᵢ − xⱼ‖ < r``,
    else 0 (Shi & Malik 2000, eq. 11); ``Wᵢᵢ = 1``.

    Parameters
    ----------
    positions : Tensor, shape (B, m, p) or (m, p)
        Node coordinates (e.g. pixel ``(row, col)`` or superpixel centroids), float32/float64.
    colors : Tensor, shape (B, m, c) or (m, c)
        Node colours/intensities (any feature vector), same leading shape and dtype.
    sigma_xy, sigma_rgb : float
        Positive bandwidths of the position and colour kernels.
    radius : float, optional
        Positive cut-off distance ``r`` (sparsity in Shi & Malik); ``None`` keeps every pair.

    Returns
    -------
    Tensor, shape (B, m, m) or (m, m)
        Symmetric, entries in ``[0, 1]``; a valid input for ``NormalizedCuts(route="affinity")``.

    Raises
    ------
    ValueError
        On mismatched shapes, non-float or non-finite input, or non-positive bandwidths/radius.

    Notes
    -----
    Memory ``O(m²)`` (the classic baseline); distances use ``‖a‖² + ‖b‖² − 2aᵀb`` (clamped at
    0) so no ``m × m × p`` tensor is formed. Differentiable in both inputs.

    References
    ----------
    Shi & Malik, "Normalized Cuts and Image Segmentation", TPAMI 22(8), 2000, eq. (11).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import gaussian_affinity
    >>> positions = torch.tensor([[0.0, 0.0], [0.0, 0.1], [1.0, 1.0]])
    >>> colors = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    >>> W = gaussian_affinity(positions, colors, sigma_xy=0.5, sigma_rgb=0.5)
    >>> W.shape
    torch.Size([3, 3])
    >>> bool(W[0, 1] > W[0, 2])
    True
    """
    positions = require_tensor(positions, "positions")
    colors = require_tensor(colors, "colors")
    for x, name, want in ((positions, "positions", "(B, m, p)"), (colors, "colors", "(B, m, c)")):
        check_float_dtype(x, name)
        if x.ndim not in (2, 3):
            raise ValueError(f"`{name}` must have shape {want} or (m, ...), got {tuple(x.shape)}")
        check_nonempty(x, name, want)
        check_finite(x, name)
    if positions.shape[:-1] != colors.shape[:-1]:
        raise ValueError(
            "`positions` and `colors` must share leading shape (B, m), got "
            f"{tuple(positions.shape)} and {tuple(colors.shape)}"
        )
    if positions.dtype != colors.dtype:
        raise ValueError(
            f"`colors` must have the dtype of `positions` ({positions.dtype}), got {colors.dtype}"
        )
    sigma_xy = check_number(sigma_xy, "sigma_xy", positive=True)
    sigma_rgb = check_number(sigma_rgb, "sigma_rgb", positive=True)
    if radius is not None:
        radius = check_number(radius, "radius", positive=True)
    d_xy = _squared_distances(positions)
    W = torch.exp(-d_xy / sigma_xy**2 - _squared_distances(colors) / sigma_rgb**2)
    if radius is not None:
        W = W * (d_xy < radius**2).to(W.dtype)
    return W


def _squared_distances(x: Tensor) -> Tensor:
    """Symmetric ``‖xᵢ − xⱼ‖²`` with an exact zero diagonal, ``(..., m, m)``."""
    sq = (x * x).sum(dim=-1)
    d = (sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * (x @ x.mT)).clamp_min(0.0)
    d = 0.5 * (d + d.mT)
    eye = torch.eye(x.shape[-2], dtype=torch.bool, device=x.device)
    return d.masked_fill(eye, 0.0)
