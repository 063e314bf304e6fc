"""Second-order pooling routes by accuracy (issue 8 §2.2, §2.7, §2.8).

float32 pooling on rank-deficient regions (fewer pixels than channels) at feature scales 1 to
1000 against a float64 SciPy reference; the mirror case (more pixels than channels on the Gram
route); singular pooled matrices are either computed (float64) or named with what to change;
``sqrt``/``pow`` with ``eps = 0`` at exactly singular regions have finite, exact gradients.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from matbackprop.nn.functional import second_order_pooling

from .. import references as ref

F64, F32 = torch.float64, torch.float32
C = 16
SCALES = [1.0, 10.0, 30.0, 100.0, 300.0, 1000.0]


def relu_features(scale: float, seed: int = 0) -> torch.Tensor:
    """Post-ReLU features ``(1, C, 8, 8)`` (half the entries exactly 0), times ``scale``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, C, 8, 8, generator=g, dtype=F64).relu() * scale


def first_pixels(p: int) -> torch.Tensor:
    masks = torch.zeros(1, 1, 8, 8, dtype=F64)
    masks.view(-1)[:p] = 1.0
    return masks


def scipy_log_descriptor(x: torch.Tensor, masks: torch.Tensor, eps: float) -> np.ndarray:
    """``logm(C_r + εI)`` of the single region, by numpy and SciPy (float64)."""
    F = x[0].reshape(C, -1).numpy()[:, masks[0, 0].reshape(-1).numpy() > 0]  # (C, p)
    moment = F @ F.T / F.shape[1]
    return ref.scipy_logm(moment + eps * np.eye(C))


def max_error(ours: torch.Tensor, reference: np.ndarray) -> float:
    return float(np.abs(ours.double().numpy() - reference).max())


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("p", [3, 13], ids=["3px", "13px"])
def test_float32_auto_route_is_accurate_on_rank_deficient_regions(scale, p):
    """§2.7: with C = 16 a 13-pixel region (p >= 0.75 C) went to the covariance route in float32:
    error 6.7e-3 at scale 10, 5.5e-2 at 30, a ValueError at 100."""
    x, masks = relu_features(scale), first_pixels(p)
    expected = scipy_log_descriptor(x, masks, 1e-3)
    ours = second_order_pooling(x.float(), masks.float(), eps=1e-3, vectorize=False)[0, 0]
    # measured: at most 3e-5 of max|log| (Gram route); the covariance route errs by 1e-3 .. 1
    assert max_error(ours, expected) <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("route", ["auto", "gram"])
def test_float32_more_pixels_than_channels_is_accurate_on_every_route(scale, route):
    """§2.7, mirror case: the forced Gram route with p > C decomposed a singular p × p Gram
    matrix (6.5e-2 error at scale 100); such regions take the covariance route."""
    x, masks = relu_features(scale), first_pixels(40)
    expected = scipy_log_descriptor(x, masks, 1e-3)
    ours = second_order_pooling(x.float(), masks.float(), eps=1e-3, route=route, vectorize=False)
    assert max_error(ours[0, 0], expected) <= 1e-4 * np.abs(expected).max()


@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_float32_gradient_on_rank_deficient_regions_is_close_to_float64(scale):
    x, masks = relu_features(scale, seed=1), first_pixels(13)
    G = torch.randn(1, 1, 136, generator=torch.Generator().manual_seed(2), dtype=F64)
    grads = {}
    for dtype in (F64, F32):
        xd = x.to(dtype).clone().requires_grad_()
        (second_order_pooling(xd, masks.to(dtype), eps=1e-3) * G.to(dtype)).sum().backward()
        grads[dtype] = xd.grad.double()
    err = float((grads[F32] - grads[F64]).abs().max())
    # float32 rounding amplified by the conditioning of log at eps (1/ε = 1e3): measured
    # below 1e-4 relative; the covariance route was 1e-2 .. NaN
    assert err <= 1e-3 * float(grads[F64].abs().max())


@pytest.mark.parametrize("scale", [10.0, 100.0])
def test_forced_covariance_route_recomputes_what_float32_cannot_resolve(scale):
    """§2.8: instead of a ValueError for a matrix the user cannot fix (C_r + εI numerically
    singular in float32), the library computes the answer (in float64, cast back)."""
    x, masks = relu_features(scale), first_pixels(13)
    expected = scipy_log_descriptor(x, masks, 1e-3)
    ours = second_order_pooling(
        x.float(), masks.float(), eps=1e-3, route="covariance", vectorize=False
    )
    assert ours.dtype == F32
    assert max_error(ours[0, 0], expected) <= 1e-5 * np.abs(expected).max()


def test_singular_pooled_matrices_name_the_regions_and_the_remedy():
    """§2.8: when even float64 cannot help (eps = 0 on regions of fewer pixels than channels),
    the error says which regions and what to change."""
    x = torch.randn(2, C, 4, 5, generator=torch.Generator().manual_seed(3), dtype=F64)
    masks = torch.ones(2, 3, 4, 5, dtype=F64)
    masks[1, 2] = 0.0
    masks[1, 2, 0, :3] = 1.0  # region 2 of image 1: 3 pixels < 16 channels
    masks[0, 1] = 0.0
    masks[0, 1, 1, :4] = 1.0  # region 1 of image 0: 4 pixels
    with pytest.raises(ValueError) as info:
        second_order_pooling(x, masks, eps=0.0)
    message = str(info.value)
    assert "region 1 of image 0" in message and "region 2 of image 1" in message
    assert "region 0 of image 0" not in message  # 20 pixels: full rank
    assert "`eps`" in message and "[3, 4] pixels" in message


@pytest.mark.parametrize("normalization", ["sqrt", "pow"])
def test_sqrt_and_pow_with_zero_eps_at_singular_regions_have_exact_gradients(normalization):
    """§2.2: ``normalization="sqrt"|"pow", eps=0`` on a 3-pixel region with C = 8 gave 24 NaN
    gradient entries; the moment is singular but ``√(XᵀX)`` is smooth in full-row-rank X."""
    x = torch.randn(1, 8, 2, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    masks = torch.zeros(1, 1, 2, 3, dtype=F64)
    masks[0, 0, 0] = 1.0  # 3 pixels
    kwargs = {"normalization": normalization, "eps": 0.0, "power": 0.5}
    X = x.clone().requires_grad_()
    second_order_pooling(X, masks, **kwargs).square().sum().backward()
    assert torch.isfinite(X.grad).all()
    assert gradcheck(lambda x: second_order_pooling(x, masks, **kwargs), (x.requires_grad_(),))
