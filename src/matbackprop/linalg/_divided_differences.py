"""Divided differences of a scalar function on a spectrum: the Daleckii–Krein matrices.

For a symmetric ``A = U diag(λ) Uᵀ`` and a scalar function ``f``, the Fréchet derivative of the
matrix function ``F(A) = U f(Λ) Uᵀ`` is (Daleckii & Krein 1965; Bhatia, *Matrix Analysis*,
Thm. V.3.3)::

    dF = U (P ∘ (Uᵀ dA U)) Uᵀ,      Pᵢⱼ = f[λᵢ, λⱼ] = (f(λᵢ) − f(λⱼ)) / (λᵢ − λⱼ),   Pᵢᵢ = f′(λᵢ),

and its second derivative uses the second divided differences ``f[λᵢ, λₖ, λⱼ]``. This module
computes ``P`` (and the pieces of the second order) in exactly one place; the forward-mode
``jvp``, the backward, the double backward and the tests all call it.

Ties
----
At ``λᵢ = λⱼ`` the quotient is ``0/0``; for nearby values the plain quotient cancels
catastrophically. Functions may supply a *stable* closed form of the divided difference (e.g.
``1/(√a + √b)`` for the square root, ``log1p(d/b)/d`` for the logarithm), accurate for every
``a != b``: then only exact ties take ``f′``. Without one, pairs with
``|λᵢ − λⱼ| <= rtol · max(|λᵢ|, |λⱼ|)`` (or within a few ulps of the spectral scale) use the mean
of the derivatives, ``(f′(λᵢ) + f′(λⱼ)) / 2``, which equals ``f′(λᵢ)`` at exact ties and differs
from the true divided difference by ``O(gap²)`` nearby; the default tolerance
(:func:`default_dd_rtol`) balances cancellation ``eps/gap`` against that ``gap²`` error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

TensorFn = Callable[[Tensor], Tensor]
PairFn = Callable[[Tensor, Tensor], Tensor]


DOMAIN_ANY, DOMAIN_PSD, DOMAIN_PD = "any", "psd", "pd"


@dataclass(frozen=True)
class ScalarFunction:
    """A scalar function of the eigenvalues, with what the Daleckii–Krein calculus needs.

    Parameters
    ----------
    f, df : callable
        ``f(λ)`` and ``f′(λ)``, elementwise torch functions.
    d2f : callable, optional
        ``f″(λ)``. Needed for double backward (second-order Daleckii–Krein); without it the
        backward is marked once-differentiable and a second differentiation raises.
    divided_difference : callable, optional
        A cancellation-free closed form of ``(f(a) − f(b)) / (a − b)`` valid for ``a != b``
        (it may be ``nan``/``inf`` at ``a == b``; those entries are replaced).
    exact_at_ties : bool
        The closed form is also right at ``a == b`` (it returns ``f′(a)`` there, and the
        documented convention at zero), so ``P`` needs no tie mask: one elementwise select over
        ``(..., n, n)`` fewer in every backward. Only with ``divided_difference``.
    name : str
        Used in messages.
    domain : {"any", "psd", "pd"}
        Where ``f`` is defined: everywhere, on ``[0, ∞)`` or on ``(0, ∞)``. On ``"psd"``
        eigenvalues within rounding of zero (:func:`matbackprop.validation.definiteness_tolerance`)
        are evaluated as exactly 0, so ``f``, ``df`` and ``d2f`` must accept 0 and return a
        finite value there (the documented one-sided value, or 0 where it is infinite).
    """

    f: TensorFn
    df: TensorFn
    d2f: TensorFn | None = None
    divided_difference: PairFn | None = None
    exact_at_ties: bool = False
    name: str = "f"
    domain: str = DOMAIN_ANY


def default_dd_rtol(dtype: torch.dtype, stable: bool) -> float:
    """Relative gap below which the mean-derivative rule replaces the quotient.

    Generic quotient: ``eps^(1/3)``-like (float64 ``1e-5``, float32 ``1e-2``), where the
    cancellation error ``eps/gap`` and the rule's ``gap²/12`` error meet (both ~1e-11 in
    float64, ~1e-5 in float32). Stable closed form: ``sqrt(eps)``-like (``1e-8`` / ``3e-4``),
    only to avoid ``0/0``.
    """
    if dtype == torch.float64:
        return 1e-8 if stable else 1e-5
    return 3e-4 if stable else 1e-2


def tie_mask(lam: Tensor, rtol: float) -> Tensor:
    """Boolean ``(..., n, n)`` mask of pairs treated as ties.

    ``|λᵢ − λⱼ| <= rtol · max(|λᵢ|, |λⱼ|)`` or ``<= 16 eps · max|λ|`` (rounding-level ties of
    eigenvalues near zero). The diagonal is always a tie.
    """
    a = lam.unsqueeze(-1)  # (..., n, 1)
    b = lam.unsqueeze(-2)  # (..., 1, n)
    gap = (a - b).abs()
    local = torch.maximum(a.abs(), b.abs())
    floor = 16 * torch.finfo(lam.dtype).eps * lam.abs().amax(dim=-1, keepdim=True).unsqueeze(-1)
    return (gap <= rtol * local) | (gap <= floor)


def first_divided_differences(
    lam: Tensor, fn: ScalarFunction, rtol: float | None = None, *, f_lam: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The Daleckii–Krein matrix ``P`` of ``fn`` on ``lam``, and its tie mask.

    ``Pᵢⱼ = (f(λᵢ) − f(λⱼ)) / (λᵢ − λⱼ)``, and ``Pᵢⱼ = f′`` on ties (so ``Pᵢᵢ = f′(λᵢ)``).

    Two regimes:

    - ``fn`` has a cancellation-free ``divided_difference`` and ``rtol`` is None (the
      built-ins): the closed form is accurate for every ``λᵢ != λⱼ``, however close, so only
      *exact* ties (``0/0``) take ``f′(λᵢ)``. This is the fast path: a few elementwise passes
      over ``(..., n, n)``; with ``fn.exact_at_ties`` (log, sqrt, inverse sqrt) the closed form
      covers the ties too and no tie mask is formed.
    - otherwise (a user ``f`` without a closed form, or an explicit ``rtol``): pairs with
      ``|λᵢ − λⱼ| <= rtol · max(|λᵢ|, |λⱼ|)`` (or within ``16 eps · max|λ|``) take the mean
      ``(f′(λᵢ) + f′(λⱼ)) / 2``, ``O(gap²)`` from the true quotient; the others the quotient
      (plain or closed form). ``rtol`` defaults to :func:`default_dd_rtol`.

    Parameters
    ----------
    lam : Tensor, shape (..., n)
        Eigenvalues.
    fn : ScalarFunction
    rtol : float, optional
        Tie tolerance (see above).
    f_lam : Tensor, optional
        ``f(lam)`` if already computed (the forward has it).

    Returns
    -------
    P : Tensor, shape (..., n, n)
        Symmetric (up to rounding in the closed forms).
    ties : Tensor, shape (..., n, n), bool, or None
        ``None`` when ``fn.exact_at_ties`` made a mask unnecessary (the fast path).
    """
    a = lam.unsqueeze(-1)  # (..., n, 1)
    b = lam.unsqueeze(-2)  # (..., 1, n)
    if fn.divided_difference is not None and rtol is None and fn.exact_at_ties:
        return fn.divided_difference(a, b), None  # (..., n, n), ties included
    df = fn.df(lam)
    if fn.divided_difference is not None and rtol is None:
        quotient = fn.divided_difference(a, b)  # (..., n, n); nan/inf on exact ties only
        ties = a == b
        return torch.where(ties, df.unsqueeze(-1), quotient), ties
    stable = fn.divided_difference is not None
    if rtol is None:
        rtol = default_dd_rtol(lam.dtype, stable)
    ties = tie_mask(lam, rtol)
    on_ties = 0.5 * (df.unsqueeze(-1) + df.unsqueeze(-2))  # (..., n, n)
    # Keep the quotient's arguments away from 0/0 on ties; those entries are discarded.
    b_safe = torch.where(ties, b - 1.0, b.expand_as(on_ties))
    if stable:
        quotient = fn.divided_difference(a.expand_as(on_ties), b_safe)
    else:
        if f_lam is None:
            f_lam = fn.f(lam)
        fb = torch.where(ties, torch.zeros_like(on_ties), f_lam.unsqueeze(-2).expand_as(on_ties))
        fa = torch.where(ties, torch.ones_like(on_ties), f_lam.unsqueeze(-1).expand_as(on_ties))
        quotient = (fa - fb) / (a - b_safe)
    P = torch.where(ties, on_ties, quotient)
    return 0.5 * (P + P.mT), ties


def confluent_second_differences(
    lam: Tensor, fn: ScalarFunction, P: Tensor, ties: Tensor
) -> Tensor:
    """``Qᵢₖ = f[λᵢ, λᵢ, λₖ]``, the confluent second divided differences.

    ``f[a, a, c] = (f′(a) − f[a, c]) / (a − c)``; on ties (where that quotient cancels) the
    midpoint rule of the Hermite–Genocchi integral, ``f[a, a, c] = ½ f″((2a + c)/3) + O(gap²)``
    (the centroid of the simplex with nodes ``a, a, c``; the mean ``(f″(a) + f″(c))/4`` is only
    ``O(gap)`` accurate). Used by the double backward, where ``f[a, b, c] ≈ (Q_ac + Q_bc)/2`` for
    tied ``a, b`` (also ``O(gap²)``). Not symmetric.
    """
    if fn.d2f is None:
        raise RuntimeError(f"second divided differences of {fn.name} need its second derivative")
    a = lam.unsqueeze(-1)  # (..., n, 1)
    c = lam.unsqueeze(-2)  # (..., 1, n)
    on_ties = 0.5 * fn.d2f((2 * a + c) / 3)  # (..., n, n)
    gap = torch.where(ties, torch.ones_like(P), a - c)
    quotient = (fn.df(lam).unsqueeze(-1) - P) / gap
    return torch.where(ties, on_ties, quotient)
