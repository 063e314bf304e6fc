"""Scalar functions of the low-rank (Gram) route of second-order pooling.

The identity
------------
For ``X`` of shape ``p × C`` (rows: weighted pixel features), ``ε > 0`` and a scalar function
``f`` on ``[ε, ∞)``::

    f(XᵀX + εI) = f(ε) I + Xᵀ g(XXᵀ) X,        g(t) = (f(ε + t) − f(ε)) / t,   g(0) = f′(ε).

Derivation: with the thin SVD ``X = V S Wᵀ`` (``V`` p × r, ``W`` C × r), ``XᵀX + εI =
W (S² + εI) Wᵀ + ε (I − WWᵀ)``, so ``f(XᵀX + εI) = f(ε) I + W (f(ε + S²) − f(ε)) Wᵀ
= f(ε) I + W S g(S²) S Wᵀ = f(ε) I + Xᵀ V g(S²) Vᵀ X = f(ε) I + Xᵀ g(K) X`` with
``K = XXᵀ = V S² Vᵀ`` (zero eigenvalues of ``K`` contribute nothing since the matching rows of
``X`` in that basis vanish). ``g`` is the first divided difference ``f[ε, ε + t]``; it is
analytic at ``t = 0``, so zero Gram eigenvalues (zero-padded rows, duplicated pixels) are
harmless, and ``g`` is a spectral function of the small ``p × p`` matrix ``K``: its gradient is
the exact Daleckii–Krein form on the ``p × p`` problem
(:func:`matbackprop.linalg.spectral_function`).

Normalised variable
-------------------
With ``u = t/ε`` and ``F(u) = f(ε(1 + u))`` rescaled, every supported ``f`` gives
``g(t) = ε^q h(u)`` with ``h(u) = F[0, u]`` (first divided difference at 0)::

    log:   h(u) = log1p(u) / u,                     q = −1,        f(ε) = log ε
    x^p:   h(u) = expm1(p log1p(u)) / u,            q = p − 1,     f(ε) = ε^p
    sqrt:  h(u) = 1 / (1 + √(1 + u)),               q = −1/2,      f(ε) = √ε

and ``g′(t) = ε^(q−1) h′(u)``, ``g″(t) = ε^(q−2) h″(u)``, ``g[a, b] = ε^(q−1) h[uₐ, u_b]``.
Since ``h = F[0, ·]``, ``h′(u) = F[0, u, u]``, ``h″(u) = 2F[0, u, u, u]`` and
``h[x, y] = F[0, x, y]``; in closed form (``x > y``)::

    h′(u) = (F′(u) − h(u)) / u,     h″(u) = (F″(u) − 2h′(u)) / u,
    h[x, y] = (F[x, y] − h(y)) / x,  F[x, y] from a cancellation-free log1p/expm1 form.

The closed forms cancel like ``1/u`` (``1/u²`` for ``h″``) as ``u → 0``; for ``|u| < 0.05``
the Taylor series of ``h`` (coefficients of ``log1p`` / the binomial series, 20 terms, error
below ``1e-23`` relative) is used instead, and ``h[x, y] = Σₖ aₖ (xᵏ − yᵏ)/(x − y)`` with the
complete homogeneous polynomials ``(xᵏ − yᵏ)/(x − y) = Σⱼ xʲ y^(k−1−j)`` (no cancellation for
``x, y >= 0``). The square root needs no series: all its forms are cancellation-free.
Negative ``u`` (rounding of a positive semi-definite ``K``) is clamped to 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from matbackprop.validation import check_choice, check_number

SERIES_RADIUS = 0.05
SERIES_TERMS = 20
# (radius, terms) for u >= 0 inside the series region: the truncation error of
# Σₖ aₖ (xᵏ − yᵏ)/(x − y) is about K·radius^(K−1)·|a_K|, below 1e-18 relative in every tier.
SERIES_TIERS = ((1e-4, 6), (1e-2, 11), (SERIES_RADIUS, SERIES_TERMS))

Fn = Callable[[Tensor], Tensor]
Fn2 = Callable[[Tensor, Tensor], Tensor]


# ----------------------------------------------------------------------------- series


def _horner(coefficients: tuple[float, ...], u: Tensor) -> Tensor:
    """``Σₖ cₖ uᵏ``."""
    acc = torch.full_like(u, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        acc = acc * u + c
    return acc


def _derivative_coefficients(coefficients: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(k * c for k, c in enumerate(coefficients))[1:]


def _series_divided_difference(coefficients: tuple[float, ...], x: Tensor, y: Tensor) -> Tensor:
    """``Σₖ aₖ (xᵏ − yᵏ)/(x − y)`` via ``e₁ = 1, eₖ₊₁ = x eₖ + yᵏ`` (exact at ``x = y``)."""
    acc = torch.zeros_like(x)
    e = torch.ones_like(x)
    y_power = torch.ones_like(y)
    for a in coefficients[1:]:
        acc = acc + a * e
        y_power = y_power * y
        e = x * e + y_power
    return acc


def _log_coefficients(terms: int) -> tuple[float, ...]:
    # log1p(u)/u = Σₖ (−1)ᵏ uᵏ / (k + 1)
    return tuple((-1.0) ** k / (k + 1) for k in range(terms))


def _power_coefficients(p: float, terms: int) -> tuple[float, ...]:
    # ((1 + u)^p − 1)/u = Σₖ C(p, k + 1) uᵏ,  C(p, k + 1) = C(p, k) (p − k)/(k + 1)
    out = []
    binom = 1.0
    for k in range(terms):
        binom = binom * (p - k) / (k + 1)
        out.append(binom)
    return tuple(out)


# ----------------------------------------------------------------------------- families


@dataclass(frozen=True)
class _Family:
    """``h = F[0, ·]`` of one scalar function: closed forms plus Taylor coefficients of ``h``."""

    h: Fn  # closed form, u away from 0
    F1: Fn  # F′(u)
    F2: Fn  # F″(u)
    F_dd: Fn2  # F[x, y], x > y, cancellation-free
    coefficients: tuple[float, ...]  # Taylor coefficients of h


def _log_family() -> _Family:
    def F_dd(x: Tensor, y: Tensor) -> Tensor:
        d = x - y
        return torch.log1p(d / (1 + y)) / d

    return _Family(
        h=lambda u: torch.log1p(u) / u,
        F1=lambda u: torch.reciprocal(1 + u),
        F2=lambda u: -torch.reciprocal((1 + u) ** 2),
        F_dd=F_dd,
        coefficients=_log_coefficients(SERIES_TERMS),
    )


def _power_family(p: float) -> _Family:
    def F_dd(x: Tensor, y: Tensor) -> Tensor:
        base = 1 + y
        delta = (x - y) / base
        return base.pow(p - 1) * torch.expm1(p * torch.log1p(delta)) / delta

    return _Family(
        h=lambda u: torch.expm1(p * torch.log1p(u)) / u,
        F1=lambda u: p * (1 + u).pow(p - 1),
        F2=lambda u: p * (p - 1) * (1 + u).pow(p - 2),
        F_dd=F_dd,
        coefficients=_power_coefficients(p, SERIES_TERMS),
    )


class _NormalizedH:
    """``h, h′, h″, h[·, ·]`` of a family on ``u >= 0`` (series near 0, closed forms elsewhere)."""

    def __init__(self, family: _Family, piecewise: bool = True) -> None:
        self.family = family
        self.piecewise = piecewise
        c = family.coefficients
        self.c0 = c
        self.c1 = _derivative_coefficients(c)
        self.c2 = _derivative_coefficients(self.c1)

    @staticmethod
    def _split(u: Tensor) -> tuple[Tensor, Tensor]:
        small = u < SERIES_RADIUS
        return small, torch.where(small, torch.full_like(u, 2 * SERIES_RADIUS), u)

    def h(self, u: Tensor) -> Tensor:
        small, far = self._split(u)
        return torch.where(small, _horner(self.c0, u), self.family.h(far))

    def dh(self, u: Tensor) -> Tensor:
        small, far = self._split(u)
        closed = (self.family.F1(far) - self.family.h(far)) / far
        return torch.where(small, _horner(self.c1, u), closed)

    def d2h(self, u: Tensor) -> Tensor:
        small, far = self._split(u)
        h = self.family.h(far)
        dh = (self.family.F1(far) - h) / far
        closed = (self.family.F2(far) - 2 * dh) / far
        return torch.where(small, _horner(self.c2, u), closed)

    def dd(self, x: Tensor, y: Tensor) -> Tensor:
        hi, lo = torch.maximum(x, y), torch.minimum(x, y)
        small = hi < SERIES_RADIUS
        if not self.piecewise or torch._C._are_functorch_transforms_active():
            return self._dd_where(hi, lo, small)
        # Evaluated piecewise on boolean subsets (this runs on every p × p pair in the
        # backward): smaller arguments need fewer series terms (SERIES_TIERS).
        out = torch.empty_like(hi)
        lower = torch.full_like(hi, -1.0)
        for radius, terms in SERIES_TIERS:
            tier = (hi > lower) & (hi <= radius) if radius < SERIES_RADIUS else (hi > lower) & small
            lower = torch.full_like(hi, radius)
            if bool(tier.any()):
                out[tier] = _series_divided_difference(self.c0[:terms], hi[tier], lo[tier])
        far = ~small
        if bool(far.any()):
            hf, lf = hi[far], lo[far]
            out[far] = (self.family.F_dd(hf, lf) - self._h_piecewise(lf)) / hf
        return out

    def _h_piecewise(self, u: Tensor) -> Tensor:
        """``h(u)`` on boolean subsets (tiered series, closed form)."""
        out = torch.empty_like(u)
        lower = -1.0
        for radius, terms in SERIES_TIERS:
            tier = (
                (u > lower) & (u <= radius)
                if radius < SERIES_RADIUS
                else (u > lower) & (u < SERIES_RADIUS)
            )
            lower = radius
            if bool(tier.any()):
                out[tier] = _horner(self.c0[:terms], u[tier])
        far = u >= SERIES_RADIUS
        if bool(far.any()):
            out[far] = self.family.h(u[far])
        return out

    def _dd_closed(self, hi: Tensor, lo: Tensor) -> Tensor:
        # F[0, hi, lo] = (F[hi, lo] − F[0, lo]) / hi, with hi >= SERIES_RADIUS
        return (self.family.F_dd(hi, lo) - self.h(lo)) / hi

    def _dd_where(self, hi: Tensor, lo: Tensor, small: Tensor) -> Tensor:
        safe_hi = torch.where(small, torch.full_like(hi, 2 * SERIES_RADIUS), hi)
        safe_lo = torch.where(small, torch.zeros_like(lo), lo)
        series = _series_divided_difference(self.c0, hi, lo)
        return torch.where(small, series, self._dd_closed(safe_hi, safe_lo))


class _SqrtH:
    """``h(u) = 1/(1 + √(1+u))`` and its derivatives: cancellation-free everywhere."""

    @staticmethod
    def h(u: Tensor) -> Tensor:
        return torch.reciprocal(1 + torch.sqrt(1 + u))

    @staticmethod
    def dh(u: Tensor) -> Tensor:
        s = torch.sqrt(1 + u)
        return -0.5 / (s * (1 + s) ** 2)

    @staticmethod
    def d2h(u: Tensor) -> Tensor:
        s = torch.sqrt(1 + u)
        return (1 + 3 * s) / (4 * s**3 * (1 + s) ** 3)

    @staticmethod
    def dd(x: Tensor, y: Tensor) -> Tensor:
        sx, sy = torch.sqrt(1 + x), torch.sqrt(1 + y)
        return -torch.reciprocal((1 + sx) * (1 + sy) * (sx + sy))


# ----------------------------------------------------------------------------- public object


GRAM_NORMALIZATIONS = ("log", "sqrt", "pow")


@dataclass(frozen=True)
class GramFunction:
    """``f`` and its Gram-route companion ``g(t) = (f(ε + t) − f(ε))/t`` for one normalization.

    Parameters
    ----------
    normalization : {"log", "sqrt", "pow"}
    eps : float
        ``ε > 0``.
    power : float
        Exponent ``p`` for ``"pow"`` (ignored otherwise).
    piecewise : bool
        Evaluate ``g[a, b]`` on boolean subsets of the pairs (fewer series terms where the
        arguments are small; reads the subsets' sizes back: host syncs). ``False``: one
        ``torch.where`` over all pairs (the full series), no host sync; same accuracy.

    Notes
    -----
    ``g``, ``dg``, ``d2g`` and ``divided_difference`` are elementwise on tensors of Gram
    eigenvalues ``t >= 0`` (negative rounding noise is treated as 0); together they are the
    ``(f, f′, f″, f[a, b])`` that :func:`matbackprop.linalg.spectral_function` needs.
    """

    normalization: str
    eps: float
    power: float = 0.5
    piecewise: bool = True

    def __post_init__(self) -> None:
        check_choice(self.normalization, "normalization", GRAM_NORMALIZATIONS)
        object.__setattr__(self, "eps", check_number(self.eps, "eps", positive=True))
        if self.normalization == "pow":
            object.__setattr__(self, "power", check_number(self.power, "power", nonzero=True))

    @property
    def _q(self) -> float:
        return {"log": -1.0, "sqrt": -0.5, "pow": float(self.power) - 1.0}[self.normalization]

    @property
    def _h(self):
        if self.normalization == "sqrt":
            return _SqrtH
        family = _log_family() if self.normalization == "log" else _power_family(float(self.power))
        return _NormalizedH(family, self.piecewise)

    def f_eps(self) -> float:
        """``f(ε)``."""
        if self.normalization == "log":
            return math.log(self.eps)
        if self.normalization == "sqrt":
            return math.sqrt(self.eps)
        return self.eps ** float(self.power)

    def scalar_functions(self, shifted: bool = False) -> tuple[Fn, Fn, Fn, Fn2]:
        """``(g, g′, g″, g[a, b])`` as closures sharing one ``h`` object.

        With ``shifted=True`` they take the eigenvalues ``s = t + ε`` of ``K + εI`` instead of
        those of ``K`` (``u = s/ε − 1``): the same function of ``K``, but the decomposed matrix
        has no (near-)zero eigenvalues, which keeps float32 LAPACK off its slow denormal paths.
        """
        h = self._h
        eps, q = float(self.eps), self._q
        s0, s1, s2 = eps**q, eps ** (q - 1), eps ** (q - 2)
        offset = 1.0 if shifted else 0.0

        def u_of(t: Tensor) -> Tensor:
            return (t / eps - offset).clamp_min(0)

        def g(t: Tensor) -> Tensor:
            return s0 * h.h(u_of(t))

        def dg(t: Tensor) -> Tensor:
            return s1 * h.dh(u_of(t))

        def d2g(t: Tensor) -> Tensor:
            return s2 * h.d2h(u_of(t))

        def divided_difference(a: Tensor, b: Tensor) -> Tensor:
            return s1 * h.dd(u_of(a), u_of(b))

        g.__name__ = f"gram_{self.normalization}"
        return g, dg, d2g, divided_difference
