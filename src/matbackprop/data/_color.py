"""Colour conversion in torch: sRGB in [0, 1] to CIE L*a*b* (D65 white), differentiable.

``rgb → linear``: ``c ≤ 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055)^2.4`` (IEC 61966-2-1);
``linear → XYZ`` by the sRGB matrix (D65); ``XYZ → Lab`` with ``f(t) = t^(1/3)`` above
``0.008856`` and ``7.787 t + 16/116`` below (CIE 15, the rounded constants in common use):

    L = 116 f(Y/Yn) − 16,   a = 500 (f(X/Xn) − f(Y/Yn)),   b = 200 (f(Y/Yn) − f(Z/Zn)).

The same constants as scikit-image's ``rgb2lab`` (illuminant D65, 2° observer), without
importing it, on any device and dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["rgb_to_lab"]

_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_EPSILON = 0.008856
_KAPPA = 7.787


def rgb_to_lab(image: Tensor) -> Tensor:
    """CIE L*a*b* of sRGB images.

    Parameters
    ----------
    image : Tensor, shape (..., 3, H, W)
        sRGB values in ``[0, 1]`` (float32/float64).

    Returns
    -------
    Tensor, shape (..., 3, H, W)
        ``L`` in ``[0, 100]``, ``a`` and ``b`` roughly in ``[−128, 127]``; dtype and device of
        the input.

    Raises
    ------
    ValueError
        If ``image`` is not a floating tensor with 3 channels in dimension ``-3``.
    """
    if not isinstance(image, Tensor) or image.ndim < 3 or image.shape[-3] != 3:
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"`image` must have shape (..., 3, H, W), got {shape}")
    if not image.is_floating_point():
        raise ValueError(f"`image` must be a floating-point tensor, got {image.dtype}")
    c = image.clamp(0.0, 1.0)
    linear = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    M = torch.tensor(_RGB_TO_XYZ, dtype=image.dtype, device=image.device)
    xyz = torch.einsum("ij,...jhw->...ihw", M, linear)
    white = torch.tensor(_WHITE_D65, dtype=image.dtype, device=image.device).view(3, 1, 1)
    t = xyz / white
    f = torch.where(
        t > _EPSILON,
        t.clamp_min(_EPSILON) ** (1.0 / 3.0),
        _KAPPA * t + 16.0 / 116.0,
    )
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=-3)
