"""The Daleckii–Krein matrix P against 50-digit references: every built-in function over pairs of
eigenvalues from equal to 1e20 apart, in float32 and float64; P's symmetry; user functions with
``clamp`` (tie protection); ``expm`` for eigenvalue spreads beyond ``log(max float)``."""

from __future__ import annotations

import math

import pytest
import torch

from matbackprop.linalg import expm, first_divided_differences, logm, spectral_function
from matbackprop.linalg._matrix_functions import EXP, INVSQRT, LOG, SQRT, power_function

from .. import references as ref

F64, F32 = torch.float64, torch.float32

# (name, p, ScalarFunction)
FUNCTIONS = [
    ("log", None, LOG),
    ("sqrt", None, SQRT),
    ("invsqrt", None, INVSQRT),
    ("exp", None, EXP),
    ("pow", 0.7, power_function(0.7)),
    ("pow", -0.3, power_function(-0.3)),
    ("pow", 1.5, power_function(1.5)),
    ("pow", 2.5, power_function(2.5)),
]
FUNCTION_IDS = [n if p is None else f"pow({p})" for n, p, _ in FUNCTIONS]

# Ratios b/a from "two ulps apart" to twenty orders of magnitude (the log1p/expm1 forms and the
# direct quotient meet at a ratio of 2: both sides of that boundary are here).
RATIOS = [1.0, 1 + 1e-15, 1 + 1e-12, 1 + 1e-8, 1 + 1e-4, 1.5, 1.999, 2.001, 3.0, 10.0, 1e4, 1e8,
          1e12, 1e17, 1e20]  # fmt: skip
BASES = {F64: [1e-12, 1e-3, 1.0, 7.0, 1e6], F32: [1e-6, 1e-2, 1.0, 7.0, 1e3]}


def _pairs(name, p, dtype):
    """Pairs (a, b) whose f(a), f(b) and f′ are finite in ``dtype`` (else the forward overflows)."""
    big = torch.finfo(dtype).max
    f, df, _ = ref.scalar(name, p)
    out = []
    for a in BASES[dtype]:
        for r in RATIOS:
            b = a * r
            if name == "exp":  # exp needs |λ| moderate: map the pair to a spread of arguments
                a_, b_ = math.log(a), math.log(a) + math.log(r) * 5
                if max(abs(a_), abs(b_)) > math.log(big) - 1:
                    continue
                out.append((a_, b_))
            elif b < big / 10:
                out.append((a, b))
    return [
        (a, b)
        for a, b in out
        if all(abs(float(g(ref.mp.mpf(x)))) < big / 1e3 for g in (f, df) for x in (a, b))
    ]


def _tolerance(name, dtype, a, b):
    """Relative accuracy of the stable forms: a few ulps, times the condition number of the
    scalar quotient with respect to its rounded arguments (|x f′(x)/f| terms)."""
    eps = float(torch.finfo(dtype).eps)
    if name == "exp":  # exp(x) carries the relative error of x times |x|
        return 16 * eps * (1 + abs(a) + abs(b))
    if name == "log":  # the direct quotient divides |log| sized terms by log(hi/lo) >= log 2
        return 16 * eps * (1 + abs(math.log(a)) + abs(math.log(b)))
    return 32 * eps


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "p", "fn"), FUNCTIONS, ids=FUNCTION_IDS)
def test_first_divided_differences_match_50_digits(name, p, fn, dtype):
    """Each off-diagonal entry of P for λ = (a, b) against mpmath, in both orders."""
    worst = []
    for a, b in _pairs(name, p, dtype):
        lam = torch.tensor([a, b], dtype=dtype)
        P, _ = first_divided_differences(lam, fn)
        x, y = float(lam[0]), float(lam[1])  # the arguments as rounded to dtype
        expected = ref.divided_difference(name, x, y, p)
        for got in (float(P[0, 1]), float(P[1, 0])):
            err = abs(got - expected) / abs(expected)
            if not err <= _tolerance(name, dtype, x, y):
                worst.append((x, y, got, expected, err))
    assert not worst, worst[:5]


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize(("name", "p", "fn"), FUNCTIONS, ids=FUNCTION_IDS)
def test_P_is_exactly_symmetric(name, p, fn, dtype):
    g = torch.Generator().manual_seed(3)
    lam = 10.0 ** (4 * torch.rand(32, generator=g, dtype=F64) - 2)
    if name == "exp":
        lam = 40 * torch.randn(32, generator=g, dtype=F64)
    lam = lam.to(dtype)
    P, _ = first_divided_differences(lam, fn)
    assert torch.equal(P, P.mT)
    assert torch.isfinite(P).all()


def test_logm_gradient_for_widely_separated_eigenvalues_known_answer():
    """Issue 8 §2.1: λ = (1e-17, 1) gave P = [[1e17, inf], [39.14, 1]]. For a diagonal A the
    gradient of ⟨G, logm(A)⟩ is P ∘ G_sym exactly (``check=False``: 1e-17 is numerically
    singular at scale 1, which the domain check would reject)."""
    G = torch.tensor([[0.3, 1.0], [1.0, -0.2]], dtype=F64)
    for lam in ([1e-17, 1.0], [1e-12, 1.0], [1.0, 1e-12]):
        A = torch.diag(torch.tensor(lam, dtype=F64)).requires_grad_()
        (logm(A, check=False) * G).sum().backward()
        expected = torch.from_numpy(ref.divided_difference_matrix("log", lam)) * G
        torch.testing.assert_close(A.grad, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("lam", [[1e-2, 1e4], [1e-3, 5e4]])
def test_logm_divided_difference_float32_far_apart(lam):
    """Issue 8 §2.1 (float32): 1.3863e-3 instead of 1.3816e-3, and NaN/inf for (1e-3, 5e4)."""
    x = torch.tensor(lam, dtype=F32)
    P, _ = first_divided_differences(x, LOG)
    expected = ref.divided_difference("log", float(x[0]), float(x[1]))
    got = P[0, 1].double()
    torch.testing.assert_close(got, torch.tensor(expected, dtype=F64), rtol=1e-6, atol=0)
    assert torch.equal(P, P.mT)


@pytest.mark.parametrize("gap", [1e-9, 1e-7, 1e-6, 5e-6])
def test_user_function_tie_band_is_second_order(gap):
    """Without a closed-form quotient, pairs inside the tie band (relative gap <= 1e-5 in
    float64) take the mean of the derivatives, O(gap²) from the exact divided difference; a
    one-sided f′ would be O(gap) off (8e-8 relative at gap 1e-6 for atan at 2)."""
    a = 2.0
    lam = torch.tensor([a, a + gap * a], dtype=F64)
    A = torch.diag(lam).requires_grad_()
    G = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=F64)
    (spectral_function(A, torch.atan, lambda x: 1 / (1 + x * x)) * G).sum().backward()
    expected = ref.divided_difference("atan", float(lam[0]), float(lam[1]))
    # mean rule: |f‴| h²/12 with h = a·gap (1e-10 relative at gap 5e-6); one-sided: |f″| h/2
    tol = max(1e-13, (a * gap) ** 2)
    assert abs(float(A.grad[0, 1]) - expected) <= tol * abs(expected)


# ----------------------------------------------------------------------------- clamp


def _two_ulps_above(x: float) -> float:
    t = torch.tensor(x, dtype=F64)
    up = torch.tensor(math.inf, dtype=F64)
    return float(torch.nextafter(torch.nextafter(t, up), up))


@pytest.mark.parametrize("gap", [0.0, "2ulp", 1e-12, 1e-9, 1e-6, 1e-3, 0.5])
def test_clamp_keeps_tie_protection_for_user_functions(gap):
    """Issue 8 §2.3: ``spectral_function(A, exp, exp, clamp=0.5)`` on diag(2, 2 + gap) gave an
    off-diagonal gradient 7.0 instead of e² at a gap of 2 ulps (1.8e-6 relative at 1e-12)."""
    b = _two_ulps_above(2.0) if gap == "2ulp" else 2.0 + gap
    A = torch.diag(torch.tensor([2.0, b], dtype=F64)).requires_grad_()
    G = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=F64)
    (spectral_function(A, torch.exp, torch.exp, clamp=0.5) * G).sum().backward()
    expected = ref.divided_difference("exp", 2.0, b)
    assert abs(float(A.grad[0, 1]) - expected) <= 1e-9 * expected
    torch.testing.assert_close(A.grad, A.grad.mT, rtol=0, atol=0)


def test_clamp_divided_differences_across_the_clamp():
    """Pairs with one eigenvalue below the clamp: g[a, b] = (f(b) − f(c))/(b − a); both below: 0."""
    c = 0.5
    lam = torch.tensor([0.1, 0.2, 1.0, 3.0], dtype=F64)
    A = torch.diag(lam).requires_grad_()
    G = torch.ones(4, 4, dtype=F64)
    (spectral_function(A, torch.sin, torch.cos, clamp=c) * G).sum().backward()
    mu = lam.clamp_min(c)
    expected = torch.empty(4, 4, dtype=F64)
    for i in range(4):
        for j in range(4):
            if i == j:
                expected[i, j] = math.cos(lam[i]) if lam[i] > c else 0.0
            else:
                expected[i, j] = (math.sin(mu[i]) - math.sin(mu[j])) / (lam[i] - lam[j])
    torch.testing.assert_close(A.grad, expected, rtol=1e-13, atol=1e-15)


# ----------------------------------------------------------------------------- expm spread


@pytest.mark.parametrize(
    ("dtype", "lam"),
    [(F64, [-400.0, 400.0]), (F64, [-700.0, 10.0, 700.0]), (F32, [-60.0, 60.0])],
    ids=["f64_pm400", "f64_pm700", "f32_pm60"],
)
def test_expm_gradient_finite_beyond_exp_overflow_of_the_spread(dtype, lam):
    """Issue 8 §2.5: expm's gradient was inf/NaN for spreads above log(max float) (~709 in
    float64, ~88 in float32) although the exact gradient is finite (6.5e170 for ±400)."""
    G = torch.ones(len(lam), len(lam), dtype=dtype)
    A = torch.diag(torch.tensor(lam, dtype=dtype)).requires_grad_()
    (expm(A) * G).sum().backward()
    expected = torch.from_numpy(ref.divided_difference_matrix("exp", lam)).to(dtype)
    assert torch.isfinite(A.grad).all()
    torch.testing.assert_close(A.grad, expected, rtol=64 * torch.finfo(dtype).eps * 700, atol=0)


@pytest.mark.parametrize(
    ("dtype", "scale"),
    [(F32, 1e-35), (F32, 1e-30), (F32, 1e30), (F64, 1e-300), (F64, 1e-280), (F64, 1e290)],
)
def test_log_divided_differences_at_extreme_scales(dtype, scale):
    """``log[a, b]`` is homogeneous of degree −1, so the same relative spectrum at any scale
    gives the same relative accuracy: exact ties (``1/λ``), near pairs and far pairs of a
    spectrum whose eigenvalues are all near the bottom (or top) of the dtype's range, against
    50 digits. (A form dividing by ``t·lo`` with ``t`` floored at ``eps`` would overflow here.)"""
    rel = [1.0, 1.0, 1.0 + 1e-6, 3.0, 1e3]
    lam = torch.tensor([scale * r for r in rel], dtype=dtype)
    P, _ = first_divided_differences(lam, LOG)
    expected = torch.from_numpy(ref.divided_difference_matrix("log", lam.tolist()))
    assert torch.isfinite(P).all()
    rtol = 64 * float(torch.finfo(dtype).eps)
    torch.testing.assert_close(P.double(), expected, rtol=rtol, atol=0)
