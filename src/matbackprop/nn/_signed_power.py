"""Element-wise signed power normalization with a finite derivative at zero.

The O2P descriptors of Carreira et al. (ECCV 2012) are power-normalized element-wise,
``sign(x)|x|^α`` (as in improved Fisher vectors). For ``α < 1`` its derivative
``α|x|^(α−1)`` is infinite at ``x = 0`` -- and exact zeros are common in pooled descriptors
(block-structured or sparse features). We use the shifted form::

    s(x) = sign(x) ((|x| + δ)^α − δ^α),        s′(x) = α (|x| + δ)^(α−1)   (x = 0 included)

which is odd, continuous, ``s(0) = 0``, has the finite slope ``α δ^(α−1)`` at zero, and differs
from ``sign(x)|x|^α`` by at most ``δ^α`` (``α <= 1``). For ``α = 1`` it is the identity.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from matbackprop.validation import check_floating, check_number, require_tensor


class _SignedPower(torch.autograd.Function):
    """``sign(x)((|x|+δ)^α − δ^α)`` with the two-sided derivative ``α(|x|+δ)^(α−1)``.

    Written as a Function because autograd through ``sign(x) · m(|x|)`` returns 0 at exactly
    ``x = 0`` (``sign′ = 0``, ``sign(0) = 0``) instead of the true slope ``α δ^(α−1)``.
    """

    @staticmethod
    def forward(x: Tensor, alpha: float, delta: float) -> Tensor:
        magnitude = (x.abs() + delta).pow(alpha) - delta**alpha
        return torch.sign(x) * magnitude

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        x, alpha, delta = inputs
        ctx.alpha = alpha
        ctx.delta = delta
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor):
        (x,) = ctx.saved_tensors
        # Differentiable ops: double backward works (|x| has a kink at 0, as s″ does).
        slope = ctx.alpha * (x.abs() + ctx.delta).pow(ctx.alpha - 1)
        return grad * slope, None, None


def signed_power(x: Tensor, alpha: float, delta: float = 1e-6) -> Tensor:
    """Element-wise signed power ``sign(x)((|x| + δ)^α − δ^α)`` (finite slope at 0).

    Parameters
    ----------
    x : Tensor, any shape
        Floating tensor.
    alpha : float
        Exponent ``α > 0`` (O2P uses ``α = 0.75``; ``α = 0.5`` is the signed square root).
    delta : float
        Shift ``δ > 0`` that keeps the derivative finite at ``x = 0`` (its value there is
        ``α δ^(α−1)``, e.g. 500 for ``α = 0.5, δ = 1e-6``). The result differs from
        ``sign(x)|x|^α`` by at most ``δ^α`` in absolute value for ``α <= 1``.

    Returns
    -------
    Tensor
        Same shape, dtype and device as ``x``.

    Raises
    ------
    ValueError
        If ``x`` is not a floating tensor, ``alpha`` is not a finite number ``> 0`` or
        ``delta`` is not a finite number ``> 0``.

    References
    ----------
    Carreira, Caseiro, Batista & Sminchisescu, "Semantic Segmentation with Second-Order
    Pooling", ECCV 2012, Sec. 3 (power normalization); Perronnin, Sánchez & Mensink, ECCV 2010.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import signed_power
    >>> signed_power(torch.tensor([-4.0, 0.0, 9.0]), 0.5, delta=1e-30)
    tensor([-2.,  0.,  3.])
    """
    x = require_tensor(x, "x")
    check_floating(x, "x")
    alpha = check_number(alpha, "alpha", positive=True)
    delta = check_number(delta, "delta", positive=True)
    return _SignedPower.apply(x, alpha, delta)
