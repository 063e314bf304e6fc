"""The low-rank (Gram) route: g, g′, g″, g[a, b] against high-precision references, the
identity f(XᵀX + εI) = f(ε)I + Xᵀg(XXᵀ)X, and gram vs covariance (forward and gradients)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from matbackprop.linalg import logm, powm, spectral_function, sqrtm
from matbackprop.nn._pooling._gram import SERIES_RADIUS, GramFunction
from matbackprop.nn._pooling._regions import plan_routes, support_buckets
from matbackprop.nn.functional import second_order_pooling

from .. import builders

mp = pytest.importorskip("mpmath")

F64 = torch.float64
FAMILIES = [("log", 0.5), ("sqrt", 0.5), ("pow", 0.5), ("pow", 0.75), ("pow", -0.3), ("pow", 2.5)]
FAMILY_IDS = [f"{n}" if n != "pow" else f"pow({p})" for n, p in FAMILIES]


# ----------------------------------------------------------------------------- references


def _mp_f(normalization, power):
    if normalization == "log":
        return mp.log
    if normalization == "sqrt":
        return mp.sqrt
    return lambda x: x ** mp.mpf(power)


def _mp_g(normalization, power, eps, t):
    """g(t), g′(t), g″(t) at 60 digits; at t = 0 the limits f′(ε), f″(ε)/2, f‴(ε)/3."""
    f = _mp_f(normalization, power)
    e = mp.mpf(eps)
    t = mp.mpf(t)
    if t == 0:
        return mp.diff(f, e), mp.diff(f, e, 2) / 2, mp.diff(f, e, 3) / 3

    def g(s):
        return (f(e + s) - f(e)) / s

    return g(t), mp.diff(g, t), mp.diff(g, t, 2)


def _rel(value, reference):
    return abs(float(value) - float(reference)) / abs(float(reference))


# Normalized arguments u = t/ε spanning the series region, its boundary and the far field.
U_GRID = [0.0, 1e-14, 1e-6, 0.01, 0.99 * SERIES_RADIUS, 1.01 * SERIES_RADIUS, 0.3, 2.0, 30.0,
          1e4, 1e7]  # fmt: skip
PAIRS = [(0.0, 0.01), (1e-3, 2e-3), (0.04, 0.045), (0.04, 0.06), (0.5, 0.5 + 1e-7), (3.0, 5.0),
         (1e3, 1e3 * (1 + 1e-8)), (0.0, 100.0), (1e-9, 2e-9), (0.0, 5e-5), (1e-5, 0.03),
         (2e-5, 0.2), (9e-5, 1e-4 + 1e-12)]  # fmt: skip


@pytest.mark.parametrize(("normalization", "power"), FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("eps", [1e-3, 1.0, 1e-8])
def test_g_and_derivatives_match_high_precision(normalization, power, eps):
    mp.mp.dps = 60
    g, dg, d2g, _ = GramFunction(normalization, eps, power).scalar_functions()
    t = torch.tensor([u * eps for u in U_GRID], dtype=F64)
    ours = [g(t), dg(t), d2g(t)]
    for i, u in enumerate(U_GRID):
        ref = _mp_g(normalization, power, eps, mp.mpf(u) * mp.mpf(eps))
        assert _rel(ours[0][i], ref[0]) < 1e-14, ("g", u)
        assert _rel(ours[1][i], ref[1]) < 1e-13, ("g'", u)
        # g″ (double backward only) loses ~1/u² digits at the edge of the series region
        assert _rel(ours[2][i], ref[2]) < 5e-12, ("g''", u)


@pytest.mark.parametrize(("normalization", "power"), FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("eps", [1e-3, 1.0])
def test_divided_difference_matches_high_precision(normalization, power, eps):
    mp.mp.dps = 60
    *_, dd = GramFunction(normalization, eps, power).scalar_functions()
    e = mp.mpf(eps)
    for ua, ub in PAIRS:
        a, b = mp.mpf(ua) * e, mp.mpf(ub) * e
        ref = (_mp_g(normalization, power, eps, a)[0] - _mp_g(normalization, power, eps, b)[0]) / (
            a - b
        )
        ours = dd(torch.tensor([float(a)], dtype=F64), torch.tensor([float(b)], dtype=F64))
        assert _rel(ours[0], ref) < 1e-12, (ua, ub)


@pytest.mark.parametrize(("normalization", "power"), FAMILIES, ids=FAMILY_IDS)
def test_divided_difference_vmap_friendly_form_agrees(normalization, power):
    """The torch.where form (used under torch.func transforms) equals the piecewise one."""
    *_, dd = GramFunction(normalization, 1e-2, power).scalar_functions()
    u = torch.tensor([0.0, 3e-7, 2e-5, 0.01, 0.04, 0.3, 7.0], dtype=F64) * 1e-2
    a, b = u.unsqueeze(-1).expand(7, 7), (u.flip(0) * 1.5).unsqueeze(0).expand(7, 7)
    mask = a != b
    piecewise = dd(a, b)[mask]
    vmapped = torch.func.vmap(dd)(a, b)[mask]
    torch.testing.assert_close(vmapped, piecewise, rtol=1e-13, atol=0)
    # the same form without host syncs (check=False), outside torch.func
    *_, dd_where = GramFunction(normalization, 1e-2, power, piecewise=False).scalar_functions()
    torch.testing.assert_close(dd_where(a, b)[mask], piecewise, rtol=1e-13, atol=0)


def test_g_float32_close_to_float64():
    for normalization, power in FAMILIES:
        fns = GramFunction(normalization, 1e-3, power).scalar_functions()
        t = torch.tensor([u * 1e-3 for u in U_GRID[:-1]], dtype=F64)
        for fn in fns[:2]:
            torch.testing.assert_close(fn(t.float()).double(), fn(t), rtol=1e-5, atol=0)


def test_sqrt_closed_forms_equal_power_one_half_family():
    t = torch.tensor([u * 0.1 for u in U_GRID], dtype=F64)
    sqrt = GramFunction("sqrt", 0.1).scalar_functions()
    half = GramFunction("pow", 0.1, 0.5).scalar_functions()
    for a, b, rtol in zip(sqrt[:3], half[:3], (1e-14, 1e-13, 5e-12), strict=True):
        torch.testing.assert_close(a(t), b(t), rtol=rtol, atol=0)


def test_negative_rounding_eigenvalues_are_treated_as_zero():
    g, dg, *_ = GramFunction("log", 1e-3).scalar_functions()
    t = torch.tensor([-1e-18, 0.0], dtype=F64)
    assert torch.equal(g(t)[0], g(t)[1]) and torch.equal(dg(t)[0], dg(t)[1])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("logm", 1e-3), "`normalization` must be one of"),
        (("log", 0.0), "`eps` must be a finite number > 0"),
        (("pow", 1e-3, 0.0), "`power` must be a finite non-zero"),
    ],
)
def test_gram_function_validation(args, match):
    with pytest.raises(ValueError, match=match):
        GramFunction(*args)


# ----------------------------------------------------------------------------- the identity


@pytest.mark.parametrize(("normalization", "power"), FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("p", [2, 5, 9])  # fewer, equal and more rows than columns
def test_gram_identity_against_linalg(normalization, power, p):
    C, eps = 5, 0.05
    X = torch.randn(p, C, generator=torch.Generator().manual_seed(p), dtype=F64)
    X[-1] = X[0]  # a duplicated row: K is singular
    fn = {"log": logm, "sqrt": sqrtm, "pow": lambda A, eps: powm(A, power, eps=eps)}
    direct = fn[normalization](X.mT @ X, eps=eps)
    gram = GramFunction(normalization, eps, power)
    g, dg, d2g, dd = gram.scalar_functions()
    G = spectral_function(X @ X.mT, g, dg, d2f=d2g, divided_difference=dd)
    low_rank = gram.f_eps() * torch.eye(C, dtype=F64) + X.mT @ G @ X
    torch.testing.assert_close(low_rank, direct, atol=1e-11, rtol=1e-11)


# ----------------------------------------------------------------------------- routes


def _cases():
    x = builders.conv_features(seed=11)
    masks = builders.region_masks()
    repeated = x.clone()
    repeated[:, :, 0, 1:3] = repeated[:, :, 0, :1]  # region 0's three pixels are identical
    zeros = masks.clone()
    zeros[:, 2] = zeros[:, 2] * (zeros[:, 2] > 0.6)  # soft mask with exact zeros
    return {
        "random": (x, masks),
        "rank_deficient_repeated_pixels": (repeated, masks),
        "soft_with_zeros": (x, zeros),
        "no_masks": (x, None),
    }


@pytest.mark.parametrize("case", list(_cases()))
@pytest.mark.parametrize(("normalization", "power"), FAMILIES[:4], ids=FAMILY_IDS[:4])
@pytest.mark.parametrize("center", [False, True])
def test_gram_route_matches_covariance_route(case, normalization, power, center):
    x, masks = _cases()[case]
    kwargs = {"normalization": normalization, "power": power, "center": center, "eps": 1e-3}
    G = torch.randn(2, 4, 21, generator=torch.Generator().manual_seed(0), dtype=F64)
    G = G if masks is not None else G[:, 0]
    outs, grads = {}, {}
    for route in ("gram", "covariance", "auto"):
        xr = x.clone().requires_grad_()
        outs[route] = second_order_pooling(xr, masks, route=route, **kwargs)
        (grads[route],) = torch.autograd.grad((outs[route] * G).sum(), xr)
    scale = float(outs["covariance"].detach().abs().max())
    gscale = float(grads["covariance"].abs().max())
    for route in ("gram", "auto"):
        torch.testing.assert_close(outs[route], outs["covariance"], atol=1e-10 * scale, rtol=0)
        torch.testing.assert_close(grads[route], grads["covariance"], atol=1e-9 * gscale, rtol=0)


def test_gram_route_is_more_accurate_in_float32_on_rank_deficient_regions():
    x = builders.conv_features(C=32, H=4, W=5, seed=12).relu() * 5
    masks = builders.region_masks()  # every region has fewer than 32 pixels
    ref = second_order_pooling(x, masks, route="covariance")

    def error(route, check):
        out = second_order_pooling(x.float(), masks.float(), route=route, check=check)
        return float(torch.nan_to_num((out.double() - ref).abs(), nan=math.inf).max())

    errors = {(route, check): error(route, check) for route in ("gram", "covariance")
              for check in (True, False)}  # fmt: skip
    # float32 on the covariance route, as computed (check=False: no recompute), loses what
    # the Gram route keeps
    assert errors["gram", True] == errors["gram", False] < errors["covariance", False]
    # with checks the covariance route sees that C_r + εI is numerically singular in float32
    # and recomputes the group in float64 (issue 8 §2.8: the library computes the answer)
    assert errors["covariance", True] < 1e-5 * float(ref.abs().max())


def test_gradgradcheck_gram_route():
    x = builders.conv_features(B=1, C=4, H=2, W=2, seed=13)
    masks = torch.zeros(1, 2, 2, 2, dtype=F64)
    masks[0, 0, 0] = 1.0
    masks[0, 1, :, 1] = torch.tensor([1.0, 2.0], dtype=F64)

    def fn(x):
        return second_order_pooling(x, masks, route="gram", eps=0.1, check=False)

    assert gradgradcheck(fn, (x.requires_grad_(),))


def test_gradcheck_gram_route_with_zero_padding_and_single_pixels():
    x = builders.conv_features(B=2, C=4, H=2, W=3, seed=14)
    masks = torch.zeros(2, 3, 2, 3, dtype=F64)
    masks[:, 0, 0, 0] = 1.0  # 1 pixel: padded with 2 zero rows
    masks[:, 1, 1, :] = 1.0  # 3 pixels
    masks[:, 2, 0, 1:] = torch.tensor([0.5, 2.0], dtype=F64)

    def fn(x):
        return second_order_pooling(x, masks, route="gram", eps=0.05, center=True, check=False)

    assert gradcheck(fn, (x.requires_grad_(),), fast_mode=True)


def test_plan_routes():
    """Accuracy first: the Gram route for rank-deficient regions (support p < C), the
    covariance route for p >= C, where the Gram matrix would be the singular one (forced
    "gram" sent every region there: issue 8 §2.7, 6.5e-2 error at scale 100 in float32)."""
    support = torch.tensor([3, 10, 7, 12, 5])
    assert plan_routes(support, 8, "auto", True).tolist() == [True, False, True, False, True]
    assert plan_routes(support, 8, "auto", True, 0.75).tolist() == [True, False, False, False, True]
    assert plan_routes(support, 8, "auto", True, 2.0).tolist() == [True, False, True, False, True]
    assert plan_routes(support, 8, "auto", False).tolist() == [False] * 5
    assert plan_routes(support, 8, "gram", True).tolist() == [True, False, True, False, True]
    assert plan_routes(support, 8, "covariance", True).tolist() == [False] * 5
    # one support known on the host: a plain bool, by the same rule
    for p in support.tolist():
        for route, ratio, available in (
            ("auto", 0.75, True),
            ("gram", 1.0, True),
            ("auto", 1.0, False),
        ):
            host = plan_routes(p, 8, route, available, ratio)
            assert isinstance(host, bool)
            assert host == bool(plan_routes(torch.tensor([p]), 8, route, available, ratio)[0])


def test_support_buckets_cover_every_region_once_in_ascending_order():
    support = torch.tensor([40, 3, 12, 200, 9, 41, 190])
    sel = torch.tensor([0, 1, 2, 3, 4, 5, 6])
    groups = support_buckets(sel, support)
    seen = torch.cat([indices for indices, _ in groups])
    assert sorted(seen.tolist()) == list(range(7))
    for indices, size in groups:
        assert indices.tolist() == sorted(indices.tolist())
        assert size == int(support[indices].max())
        assert size <= 1.25 * int(support[indices].min()) + 8
