"""SecondOrderPooling / second_order_pooling: smoke, exceptions, cardinality, known answers,
the region path against a per-region loop, gradchecks (random and degenerate input), and the
comparison with autograd through torch.linalg.eigh on rank-deficient regions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from matbackprop.nn import SecondOrderPooling
from matbackprop.nn.functional import second_order_pooling, signed_power, vectorize_symmetric

from .. import builders
from .. import references as ref

F64 = torch.float64
NORMALIZATIONS = ["log", "sqrt", "newton_schulz", "pow", None]


def loop_reference(features, masks, fn, *, center=False):
    """Per-region Python loop: C_r = Σ w f fᵀ / Σ w over the selected pixels, then ``fn``."""
    B, C = features.shape[:2]
    out = []
    for b in range(B):
        per_image = []
        for r in range(masks.shape[1]):
            w = masks[b, r].reshape(-1)
            keep = w > 0
            f = features[b].reshape(C, -1)[:, keep]  # (C, p)
            wk = w[keep] / w[keep].sum()
            if center:
                f = f - (f * wk).sum(-1, keepdim=True)
            per_image.append(fn((f * wk) @ f.T))
        out.append(torch.stack(per_image))
    return torch.stack(out)


def numpy_newton_schulz(A, iterations):
    """The coupled Newton–Schulz iteration (iSQRT-COV, eqs. 2–4), written again in numpy."""
    t = np.trace(A)
    Y, Z, eye = A / t, np.eye(A.shape[0]), np.eye(A.shape[0])
    for _ in range(iterations):
        T = 0.5 * (3 * eye - Z @ Y)
        Y, Z = Y @ T, T @ Z
    return np.sqrt(t) * Y


def scipy_matrix_function(normalization, eps, power=0.5, iterations=5):
    """``f(M + εI)`` by SciPy / numpy on a float64 array: independent of matbackprop."""

    def fn(M):
        shifted = M + eps * np.eye(M.shape[-1])
        if normalization == "log":
            return ref.scipy_logm(shifted)
        if normalization == "sqrt":
            return ref.scipy_sqrtm(shifted)
        if normalization == "pow":
            return ref.scipy_power(shifted, power)
        if normalization == "newton_schulz":
            return numpy_newton_schulz(shifted, iterations)
        return shifted

    return fn


def scipy_reference(features, masks, fn, *, center=False):
    """Per-region loop in numpy: ``C_r`` over the selected pixels, then ``fn`` (SciPy)."""
    moments = loop_reference(features.detach(), masks, lambda M: M, center=center)
    return torch.from_numpy(np.stack([[fn(M) for M in image] for image in moments.numpy()]))


# ----------------------------------------------------------------------------- smoke


def test_smoke_module_with_masks_and_backward():
    x = builders.conv_features(dtype=torch.float32).requires_grad_()
    pool = SecondOrderPooling("log")
    out = pool(x, builders.region_masks(dtype=torch.float32))
    assert out.shape == (2, 4, 21) and torch.isfinite(out).all()
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_smoke_module_without_masks_and_repr():
    pool = SecondOrderPooling("pow", power=0.7, signed_power=0.5, center=True)
    assert pool(builders.conv_features()).shape == (2, 21)
    text = repr(pool)
    assert "power=0.7" in text and "signed_power=0.5" in text and "center=True" in text


def test_smoke_bool_and_integer_masks_equal_float_masks():
    x, masks = builders.conv_features(), builders.region_masks()
    binary = masks[:, [0, 1, 3]] > 0
    ref = second_order_pooling(x, binary.to(F64))
    torch.testing.assert_close(second_order_pooling(x, binary), ref)
    torch.testing.assert_close(second_order_pooling(x, binary.to(torch.int64)), ref)


# ----------------------------------------------------------------------------- exceptions


def _bad_feature_cases():
    x = builders.conv_features()
    return {
        "not_tensor": (x.numpy(), None, "`features` must be a torch.Tensor"),
        "3d": (x[0], None, r"`features` must have shape \(B, C, H, W\)"),
        "5d": (x[None], None, r"`features` must have shape \(B, C, H, W\)"),
        "int": (x.to(torch.int64), None, "`features` must have dtype"),
        "empty_dim": (x[:, :, :0], None, "`features` must have non-empty"),
        "nan": (x.clone().index_fill_(1, torch.tensor([2]), math.nan), None, "finite"),
    }


@pytest.mark.parametrize("case", list(_bad_feature_cases()))
def test_invalid_features_raise(case):
    x, masks, match = _bad_feature_cases()[case]
    with pytest.raises(ValueError, match=match):
        second_order_pooling(x, masks)


def _bad_mask_cases():
    masks = builders.region_masks()
    negative = masks.clone()
    negative[0, 2, 0, 0] = -0.5
    nan = masks.clone()
    nan[1, 2, 1, 1] = math.nan
    inf = masks.clone()
    inf[1, 2, 1, 1] = math.inf
    empty = masks.clone()
    empty[1, 3] = 0.0
    return {
        "not_tensor": (masks.numpy(), "`masks` must be a torch.Tensor"),
        "3d": (masks[0], r"`masks` must have shape \(B, R, H, W\)"),
        "batch_mismatch": (masks[:1], r"`masks` must have shape \(2, R, 4, 5\)"),
        "height_mismatch": (masks[:, :, :3], r"`masks` must have shape \(2, R, 4, 5\)"),
        "width_mismatch": (masks[..., :2], r"`masks` must have shape \(2, R, 4, 5\)"),
        "no_regions": (masks[:, :0], r"R >= 1"),
        "complex": (masks.to(torch.complex128), "`masks` must be real"),
        "negative": (negative, "`masks` must be non-negative"),
        "nan": (nan, "`masks` must be finite"),
        "inf": (inf, "`masks` must be finite"),
        "empty_region": (empty, "region 3 of image 1"),
    }


@pytest.mark.parametrize("case", list(_bad_mask_cases()))
def test_invalid_masks_raise(case):
    masks, match = _bad_mask_cases()[case]
    with pytest.raises(ValueError, match=match):
        second_order_pooling(builders.conv_features(), masks)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"normalization": "logm"}, "`normalization` must be one of"),
        ({"normalization": "LOG"}, "`normalization` must be one of"),
        ({"eps": -1e-3}, "`eps` must be a finite number >= 0"),
        ({"eps": math.nan}, "`eps` must be a finite number >= 0"),
        ({"eps": "1e-3"}, "`eps` must be a finite number >= 0"),
        ({"normalization": "pow", "power": 0.0}, "`power` must be a finite non-zero"),
        ({"normalization": "pow", "power": math.inf}, "`power` must be a finite non-zero"),
        (
            {"normalization": "newton_schulz", "iterations": 0},
            "`iterations` must be a positive int",
        ),
        ({"normalization": "newton_schulz", "iterations": 2.0}, "`iterations` must be a positive"),
        ({"signed_power": -0.5}, "`signed_power` must be a finite number > 0"),
        ({"signed_power": 0.5, "signed_power_delta": 0.0}, "`signed_power_delta`"),
        ({"route": "fast"}, "`route` must be one of"),
        ({"gram_ratio": 0.0}, "`gram_ratio` must be a finite number > 0"),
        ({"gram_ratio": "half"}, "`gram_ratio` must be a finite number > 0"),
        ({"route": "gram", "normalization": "newton_schulz"}, "route`='gram' needs"),
        ({"route": "gram", "normalization": None}, "route`='gram' needs"),
        ({"route": "gram", "eps": 0.0}, "`eps` must be > 0 for route='gram'"),
        ({"compute_dtype": torch.float16}, "`compute_dtype` must be"),
        ({"center": 1}, "`center` must be a bool"),
        ({"vectorize": "yes"}, "`vectorize` must be a bool"),
    ],
)
def test_invalid_options_raise_in_functional_and_module(options, match):
    with pytest.raises(ValueError, match=match):
        second_order_pooling(builders.conv_features(), builders.region_masks(), **options)
    module_options = dict(options)
    normalization = module_options.pop("normalization", "log")
    with pytest.raises(ValueError, match=match):
        SecondOrderPooling(normalization, **module_options)


def test_log_with_zero_eps_on_rank_deficient_region_raises_naming_eps():
    with pytest.raises(ValueError, match="eps"):
        second_order_pooling(
            builders.conv_features(), builders.region_masks(), normalization="log", eps=0.0
        )


def test_zero_eps_is_fine_for_full_rank_regions_and_sqrt():
    """``eps = 0``: log on full-rank regions and sqrt on rank-deficient ones (whose zero
    eigenvalues are exact zeros of √·) equal the SciPy values (this checked finiteness only)."""
    x = builders.conv_features(C=3)
    full = torch.ones(2, 1, 4, 5, dtype=F64)
    out = second_order_pooling(x, full, eps=0.0, vectorize=False)
    expected = scipy_reference(x, full, scipy_matrix_function("log", 0.0))
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=1e-10)
    masks = builders.region_masks()
    out = second_order_pooling(x, masks, normalization="sqrt", eps=0, vectorize=False)
    expected = scipy_reference(x, masks, scipy_matrix_function("sqrt", 0.0))
    # numerical zeros (|λ| <= 4 n eps max|λ|) are evaluated as 0: √ differs by <= √(12 eps)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_gram_route_refuses_masks_that_require_grad():
    masks = builders.region_masks().requires_grad_()
    with pytest.raises(ValueError, match="`masks` must not require grad with route='gram'"):
        second_order_pooling(builders.conv_features(), masks, route="gram")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reduce_dim": 4}, "`in_channels` must be given with `reduce_dim`"),
        ({"in_channels": 6, "reduce_dim": 0}, "`reduce_dim` must be a positive int"),
        ({"in_channels": True}, "`in_channels` must be a positive int"),
        ({"check": "no"}, "`check` must be a bool"),
    ],
)
def test_module_construction_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SecondOrderPooling("log", **kwargs)


def test_module_checks_channels_and_descriptor_size():
    pool = SecondOrderPooling("log", in_channels=7)
    with pytest.raises(ValueError, match="`features` must have 7 channels"):
        pool(builders.conv_features(C=6))
    assert pool.descriptor_size() == 28
    with pytest.raises(ValueError, match="`channels` must be a positive int"):
        SecondOrderPooling("log").descriptor_size()


# ----------------------------------------------------------------------------- cardinality


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("vectorize", [True, False])
@pytest.mark.parametrize("with_masks", [True, False])
def test_output_shapes(normalization, vectorize, with_masks):
    B, C = 2, 6
    x = builders.conv_features(B=B, C=C)
    masks = builders.region_masks() if with_masks else None
    out = second_order_pooling(
        x, masks, normalization=normalization, vectorize=vectorize, center=True,
        signed_power=0.75,
    )  # fmt: skip
    lead = (B, 4) if with_masks else (B,)
    tail = (C * (C + 1) // 2,) if vectorize else (C, C)
    assert out.shape == lead + tail
    assert out.dtype == F64 and torch.isfinite(out).all()


@pytest.mark.parametrize("route", ["auto", "gram", "covariance"])
def test_reduce_dim_output_shape_and_gradient_to_conv(route):
    pool = SecondOrderPooling("log", in_channels=6, reduce_dim=3, route=route).double()
    out = pool(builders.conv_features(C=6), builders.region_masks())
    assert out.shape == (2, 4, 6)
    out.sum().backward()
    assert pool.reduce.weight.grad is not None and torch.isfinite(pool.reduce.weight.grad).all()


# ----------------------------------------------------------------------------- known answers


def test_second_moment_and_covariance_of_known_vectors():
    # one image, 2 channels, 2 pixels: f1 = (1, 0), f2 = (0, 2); weights 1 and 3
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=F64).reshape(1, 2, 1, 2)
    masks = torch.tensor([[1.0, 3.0]], dtype=F64).reshape(1, 1, 1, 2)
    moment = second_order_pooling(x, masks, normalization=None, eps=0.0, vectorize=False)
    torch.testing.assert_close(moment[0, 0], torch.tensor([[0.25, 0.0], [0.0, 3.0]], dtype=F64))
    cov = second_order_pooling(x, masks, normalization=None, eps=0.0, vectorize=False, center=True)
    # μ = (1/4, 3/2); Σ w (f − μ)(f − μ)ᵀ / Σ w = [[3/16, −3/8], [−3/8, 3/4]]
    expected = torch.tensor([[3 / 16, -3 / 8], [-3 / 8, 3 / 4]], dtype=F64)
    torch.testing.assert_close(cov[0, 0], expected)
    uniform = second_order_pooling(x, normalization=None, eps=0.0, vectorize=False)
    torch.testing.assert_close(uniform[0], torch.tensor([[0.5, 0.0], [0.0, 2.0]], dtype=F64))


@pytest.mark.parametrize("route", ["auto", "gram", "covariance"])
def test_identity_like_features_give_scaled_identity(route):
    # C pixels f_i = √C e_i with uniform weights: C_r = I, so f(I + εI) = f(1 + ε) I
    C, eps = 4, 0.25
    x = (math.sqrt(C) * torch.eye(C, dtype=F64)).reshape(1, C, 2, 2)
    for normalization, value in [
        ("log", math.log(1 + eps)),
        ("sqrt", math.sqrt(1 + eps)),
        ("pow", (1 + eps) ** 0.3),
    ]:
        out = second_order_pooling(
            x, normalization=normalization, eps=eps, power=0.3, vectorize=False, route=route
        )
        torch.testing.assert_close(out[0], value * torch.eye(C, dtype=F64))


def test_log_matches_scipy_on_one_region():
    x, masks = builders.conv_features(), builders.region_masks()
    eps = 1e-2
    ours = second_order_pooling(x, masks, eps=eps, vectorize=False)
    C_r = loop_reference(x, masks, lambda M: M)[1, 3].numpy()
    expected = ref.scipy_logm(C_r + eps * np.eye(6))
    np.testing.assert_allclose(ours[1, 3].numpy(), expected, atol=1e-10)


@pytest.mark.parametrize(
    ("normalization", "route"),
    [(n, r) for n in ["log", "sqrt", "pow", None] for r in ["auto", "gram", "covariance"]
     if not (r == "gram" and n is None)],
)  # fmt: skip
def test_whole_image_region_equals_no_mask_result(normalization, route):
    x = builders.conv_features()
    whole = torch.ones(2, 1, 4, 5, dtype=F64)
    kwargs = {"normalization": normalization, "route": route, "center": True}
    torch.testing.assert_close(
        second_order_pooling(x, whole, **kwargs)[:, 0], second_order_pooling(x, **kwargs)
    )


def test_mask_scale_does_not_matter():
    x, masks = builders.conv_features(), builders.region_masks()
    torch.testing.assert_close(second_order_pooling(x, 7.5 * masks), second_order_pooling(x, masks))


def test_vectorize_and_signed_power_compose_as_documented():
    x, masks = builders.conv_features(), builders.region_masks()
    kwargs = {"normalization": "sqrt", "center": True}
    matrices = second_order_pooling(x, masks, vectorize=False, **kwargs)
    vectors = second_order_pooling(x, masks, signed_power=0.6, **kwargs)
    torch.testing.assert_close(vectors, vectorize_symmetric(signed_power(matrices, 0.6)))


def test_newton_schulz_approaches_the_exact_square_root():
    x, whole = builders.conv_features(C=3), torch.ones(2, 1, 4, 5, dtype=F64)
    exact = second_order_pooling(x, whole, normalization="sqrt", eps=0.1)
    for iterations, tol in [(3, 1e-1), (20, 1e-10)]:
        approx = second_order_pooling(
            x, whole, normalization="newton_schulz", eps=0.1, iterations=iterations
        )
        assert (approx - exact).abs().max() < tol


# ----------------------------------------------------------------------------- region path


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("center", [False, True])
def test_region_path_matches_per_region_loop_forward_and_gradient(normalization, center):
    """Forward against a per-region SciPy loop; the gradient against a fourth-order difference
    of the forward along a random direction (issue 8 §3: the reference used our own logm)."""
    eps = 0.05
    x = builders.conv_features().requires_grad_()
    masks = builders.region_masks()
    G = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(5), dtype=F64)
    kwargs = {"normalization": normalization, "eps": eps, "power": 0.7, "center": center}
    out = second_order_pooling(x, masks, vectorize=False, **kwargs)
    (grad,) = torch.autograd.grad((out * G).sum(), x)
    expected = scipy_reference(
        x, masks, scipy_matrix_function(normalization, eps, 0.7), center=center
    )
    torch.testing.assert_close(out.detach(), expected, atol=1e-10, rtol=1e-10)
    E = torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=F64)

    def loss(y):
        return (second_order_pooling(y, masks, vectorize=False, **kwargs) * G).sum()

    fd = ref.richardson_difference(loss, x.detach(), E, 1e-3)
    torch.testing.assert_close((grad * E).sum(), fd, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("route", ["auto", "gram", "covariance"])
def test_regions_keep_their_order_when_grouped_by_support(route):
    # supports 4, 1, 2 (and 2, 4, 1): one support group, processed in sorted order
    x = builders.conv_features(B=2, C=6)
    masks = torch.zeros(2, 3, 4, 5, dtype=F64)
    masks[0, 0, 0, :4] = masks[0, 1, 1, 0] = masks[0, 2, 2, :2] = 1.0
    masks[1, 0, 3, 1:3] = masks[1, 1, 0, :4] = masks[1, 2, 2, 4] = 1.0
    out = second_order_pooling(x, masks, route=route, vectorize=False)
    expected = scipy_reference(x, masks, scipy_matrix_function("log", 1e-3))
    torch.testing.assert_close(out, expected, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("route", ["auto", "gram", "covariance"])
@pytest.mark.parametrize("center", [False, True])
def test_plan_without_host_syncs_equals_the_grouped_plan(normalization, route, center):
    """``check=False`` pools all regions in one group of ``max_support`` rows (or H·W); the
    result and the gradient equal the grouped plan of ``check=True`` (float64)."""
    if route == "gram" and normalization in ("newton_schulz", None):
        pytest.skip("the Gram route needs a spectral normalization")
    x = builders.conv_features(C=12).requires_grad_()
    masks = torch.zeros(2, 3, 4, 5, dtype=F64)
    masks[:, 0, 0, :3] = 1.0
    masks[:, 1, 1:3, :] = 0.5  # 10 pixels
    masks[:, 2, 3, 1] = 1.0
    G = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(7), dtype=F64)
    kwargs = {"normalization": normalization, "route": route, "center": center, "eps": 0.05}

    def value_and_grad(**extra):
        out = second_order_pooling(x, masks, vectorize=False, **kwargs, **extra)
        return out.detach(), torch.autograd.grad((out * G).sum(), x)[0]

    expected = value_and_grad()
    for max_support in (None, 10, 15):  # rows: 20 >= C (covariance), 10 < C (Gram), 15 >= C
        got = value_and_grad(check=False, max_support=max_support)
        for value, want in zip(got, expected, strict=True):
            torch.testing.assert_close(value, want, atol=1e-10, rtol=1e-10)
    with pytest.raises(ValueError, match="max_support"):
        second_order_pooling(x, masks, max_support=5, **kwargs)


# ----------------------------------------------------------------------------- gradcheck


def _gradcheck_features(x, masks, **kwargs):
    def fn(x):
        return second_order_pooling(x, masks, check=False, **kwargs)

    return gradcheck(fn, (x.clone().requires_grad_(),))


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_gradcheck_random_full_rank(normalization):
    x = builders.conv_features(B=1, C=3, H=3, W=3, seed=2)
    masks = torch.zeros(1, 2, 3, 3, dtype=F64)
    masks[0, 0, :2] = 1.0  # 6 pixels > C
    masks[0, 1] = torch.rand(3, 3, generator=torch.Generator().manual_seed(1), dtype=F64) + 0.1
    assert _gradcheck_features(x, masks, normalization=normalization, eps=0.01, center=True)


def _degenerate_cases():
    x = builders.conv_features(B=1, C=5, H=3, W=3, seed=3)
    repeated = x.clone()
    repeated[0, :, 0, :] = repeated[0, :, 0, :1]  # three identical pixels in row 0
    masks = torch.zeros(1, 3, 3, 3, dtype=F64)
    masks[0, 0, 0, :] = 1.0  # 3 pixels (identical in `repeated`) < C = 5
    masks[0, 1, 1, 1] = 1.0  # a single pixel
    masks[0, 2, 1:, :2] = torch.tensor([[1.0, 2.0], [0.5, 1.0]], dtype=F64)  # 4 soft pixels
    return {"fewer_pixels_than_channels": (x, masks), "repeated_pixels": (repeated, masks)}


@pytest.mark.parametrize("case", list(_degenerate_cases()))
@pytest.mark.parametrize("normalization", ["log", "sqrt", "pow"])
@pytest.mark.parametrize("route", ["gram", "covariance"])
@pytest.mark.parametrize("center", [False, True])
def test_gradcheck_degenerate_regions(case, normalization, route, center):
    x, masks = _degenerate_cases()[case]
    assert _gradcheck_features(
        x, masks, normalization=normalization, route=route, center=center, eps=0.05, power=0.6
    )


def test_gradcheck_newton_schulz_and_signed_power_on_degenerate_regions():
    x, masks = _degenerate_cases()["repeated_pixels"]
    assert _gradcheck_features(x, masks, normalization="newton_schulz", eps=0.05, iterations=4)
    assert _gradcheck_features(x, masks, eps=0.05, signed_power=0.5, signed_power_delta=0.01)


@pytest.mark.parametrize("center", [False, True])
def test_gradcheck_soft_masks_covariance_route(center):
    x = builders.conv_features(B=1, C=4, H=2, W=3, seed=4)
    masks = 0.2 + torch.rand(1, 2, 2, 3, generator=torch.Generator().manual_seed(6), dtype=F64)

    def fn(x, masks):
        return second_order_pooling(x, masks, eps=0.05, center=center, check=False)

    assert gradcheck(fn, (x.requires_grad_(), masks.requires_grad_()), fast_mode=True)


def test_auto_route_differentiates_masks_like_covariance_route():
    x, masks = builders.conv_features(), builders.region_masks()
    masks[:, 2] = masks[:, 2] * (masks[:, 2] > 0.5)  # soft with exact zeros
    grads = {}
    for route in ("auto", "covariance"):
        m = masks.clone().requires_grad_()
        second_order_pooling(x, m, route=route).sum().backward()
        grads[route] = m.grad
    torch.testing.assert_close(grads["auto"], grads["covariance"])
    assert (grads["auto"][masks == 0] != 0).any()  # zero weights get their one-sided derivative


def test_finite_gradients_where_torch_eigh_autograd_fails():
    """A rank-deficient region whose features vanish on some channels (common after a ReLU):
    ε is an exactly repeated eigenvalue of C_r + εI, torch's eigh backward divides by the zero
    gaps (NaN); ours (Daleckii–Krein) is finite and matches finite differences."""
    x, masks = _degenerate_cases()["fewer_pixels_than_channels"]
    x = x.clone()
    x[0, 3:, 0, :] = 0.0  # channels 3, 4 are exactly zero on the region's pixels
    eps = 0.05
    region = masks[:, :1]

    x_torch = x.clone().requires_grad_()
    C_r = loop_reference(x_torch, region, lambda M: M)[0, 0]
    lam, U = torch.linalg.eigh(C_r + eps * torch.eye(5, dtype=F64))
    torch_log = (U * torch.log(lam).unsqueeze(-2)) @ U.mT
    (torch_grad,) = torch.autograd.grad(torch_log.sum(), x_torch)
    assert not torch.isfinite(torch_grad).all()

    for route in ("gram", "covariance"):
        x_ours = x.clone().requires_grad_()
        ours = second_order_pooling(x_ours, region, eps=eps, route=route, vectorize=False)[0, 0]
        torch.testing.assert_close(ours, torch_log.detach(), atol=1e-10, rtol=0)
        (grad,) = torch.autograd.grad(ours.sum(), x_ours)
        assert torch.isfinite(grad).all()
        assert _gradcheck_features(x, region, eps=eps, route=route)


# ----------------------------------------------------------------------------- dtype / device


@pytest.mark.parametrize("route", ["auto", "gram", "covariance"])
def test_float32_in_float32_out_on_input_device(route):
    x = builders.conv_features(dtype=torch.float32).requires_grad_()
    masks = builders.region_masks(dtype=torch.float32)
    out = second_order_pooling(x, masks, route=route)
    assert out.dtype == torch.float32 and out.device == x.device
    out.sum().backward()
    assert x.grad.dtype == torch.float32
    ref = second_order_pooling(x.detach().double(), masks.double(), route="covariance")
    torch.testing.assert_close(out.double(), ref, atol=2e-3, rtol=1e-4)


def test_compute_dtype_float64_is_cast_back_and_more_accurate():
    x, masks = builders.conv_features(C=12, H=5, W=5, seed=8), None
    x = x.relu() * 10  # large non-negative features: the null space of C_r is hard in float32
    x32 = x.float()
    ref = second_order_pooling(x, masks, route="covariance", eps=1e-4)
    plain = second_order_pooling(x32, masks, route="covariance", eps=1e-4)
    promoted = second_order_pooling(
        x32, masks, route="covariance", eps=1e-4, compute_dtype=torch.float64
    )
    assert promoted.dtype == torch.float32
    err_plain = (plain.double() - ref).abs().max()
    err_promoted = (promoted.double() - ref).abs().max()
    assert err_promoted < err_plain


def test_compute_dtype_float64_on_the_gram_route():
    x = builders.conv_features(C=12, H=5, W=5, seed=8).relu() * 10
    masks = builders.region_masks(H=5, W=5)
    ref = second_order_pooling(x, masks, route="gram", eps=1e-4)
    out = second_order_pooling(
        x.float().requires_grad_(), masks.float(), route="gram", eps=1e-4,
        compute_dtype=torch.float64,
    )  # fmt: skip
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-6)


def test_float16_masks_follow_features_dtype():
    x = builders.conv_features()
    masks = builders.region_masks().to(torch.float16)
    out = second_order_pooling(x, masks)
    assert out.dtype == F64
