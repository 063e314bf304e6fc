"""``logm``, ``sqrtm``, ``invsqrtm``, ``powm`` and ``expm`` of symmetric matrices.

Each is a :class:`ScalarFunction` ``(f, f′, f″, f[a, b])`` handed to the one spectral kernel
(:func:`matbackprop.linalg.spectral_function`), so all share its Daleckii–Krein backward,
forward mode and double backward. The divided differences are written in cancellation-free
forms, on the ordered pair ``lo <= hi`` with ``d = hi − lo``::

    log:      f[a, b] = log1p(t) / (t lo),  t = d/lo  (every pair; t >= 0, so no cancellation)
    sqrt:     f[a, b] = 1 / (√a + √b)
    x^(-1/2): f[a, b] = −1 / (√a √b (√a + √b))
    x^p:      f[a, b] = lo^(p−1) expm1(p log1p(t)) / t  (hi <= 2 lo, t = d/lo),   (hiᵖ − loᵖ) / d
    exp:      f[a, b] = exp(hi) · (−expm1(−d)) / d

Each form is exactly symmetric in ``(a, b)``. The ``log1p`` arguments are ``t >= 0`` (never near
−1, which lost every digit of the old ``log1p((a − b)/b)`` for far pairs), the power form is
chosen by the ratio ``hi/lo``, and the ``exp`` form cannot overflow unless ``exp(hi)`` does. The
log, square-root and inverse-square-root forms are also exact at ties (``exact_at_ties``), so
their ``P`` costs no tie mask: the log form is one ``log1p`` and eight cheap in-place passes
over two buffers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from matbackprop.validation import check_number

from ._divided_differences import DOMAIN_ANY, DOMAIN_PD, DOMAIN_PSD, ScalarFunction
from ._spectral import SpectralOptions, apply_spectral_function


def _log_dd(a: Tensor, b: Tensor) -> Tensor:
    # log[a, b] = log1p(t)/(t·lo) with lo = min(a, b), t = |a − b|/lo >= 0: exactly symmetric,
    # and no cancellation anywhere (|a − b| is exact for near pairs, log1p is accurate on
    # [0, ∞); the old log1p((a − b)/b) form had t → −1 for far pairs: λ = (1e-17, 1) gave
    # inf). t is clamped to [eps, max]: below eps log1p(t)/t is 1 to rounding, so exact ties
    # give 1/lo = f′ (no tie mask), and log1p(t)/t stays finite where hi/lo would overflow
    # (only for lo = 0 or denormal: then P is inf, as log is). The pair is scaled by the
    # largest eigenvalue s first (log[a, b] = log[a/s, b/s]/s), so that s/(t·lo) cannot
    # overflow for any matrix that is numerically definite, and 1/s is applied last (at a tie
    # at the bottom of the range 1/(eps·lo) overflows although P = 1/lo does not). Two
    # (..., n, n) buffers, the second becoming P in place: on a large batch every fresh buffer
    # costs page faults, about as much as three passes over it.
    finfo = torch.finfo(a.dtype)
    inv_s = torch.maximum(a.amax(dim=-2, keepdim=True), b.amax(dim=-1, keepdim=True))
    inv_s = inv_s.reciprocal_()  # (..., 1, 1)
    a, b = a * inv_s, b * inv_s  # (..., n, 1), (..., 1, n): cheap
    scale = torch.maximum(a.reciprocal(), b.reciprocal())  # s/lo
    t = torch.sub(a, b).abs_().mul_(scale).clamp_min_(finfo.eps).clamp_max_(finfo.max)
    scale.div_(t)  # s/(t·lo) <= s/(eps·lo)
    return t.log1p_().mul_(scale).mul_(inv_s)


LOG = ScalarFunction(
    f=torch.log,
    df=torch.reciprocal,
    d2f=lambda x: -torch.reciprocal(x * x),
    divided_difference=_log_dd,
    exact_at_ties=True,
    name="logm",
    domain=DOMAIN_PD,
)


def _positive_part(x: Tensor, value: Tensor, at_zero: float) -> Tensor:
    """``value`` where ``x > 0``, else the constant ``at_zero`` (the documented value at the
    numerical zeros, which the PSD functions evaluate as exactly 0)."""
    return torch.where(x > 0, value, torch.full_like(value, at_zero))


def _sqrt(x: Tensor) -> Tensor:
    return torch.sqrt(x.clamp_min(0))


def _sqrt_dd(a: Tensor, b: Tensor) -> Tensor:
    # 1/(√a + √b): exact at ties (1/(2√a) = f′(a)); at a = b = 0 (numerical zeros are exactly
    # 0) it is 1/0 = inf, replaced by the convention 0 (no finite entry is ever inf: √a + √b
    # of a positive eigenvalue is far above 1/max float).
    return (_sqrt(a) + _sqrt(b)).reciprocal_().nan_to_num_(posinf=0.0)


# f′(0) = +∞ and f″(0) = −∞: the one-sided derivatives are infinite, so the null-null block of
# P (both eigenvalues numerically 0) is set to 0 (docs/numerics.md, "Zero eigenvalues").
SQRT = ScalarFunction(
    f=_sqrt,
    df=lambda x: _positive_part(x, 0.5 * torch.rsqrt(x), 0.0),
    d2f=lambda x: _positive_part(x, -0.25 * x.pow(-1.5), 0.0),
    divided_difference=_sqrt_dd,
    exact_at_ties=True,
    name="sqrtm",
    domain=DOMAIN_PSD,
)


def _invsqrt_dd(a: Tensor, b: Tensor) -> Tensor:
    ra, rb = torch.sqrt(a), torch.sqrt(b)
    return (ra + rb).mul_(ra * rb).reciprocal_().neg_()  # −1/(√a√b(√a + √b))


INVSQRT = ScalarFunction(
    f=torch.rsqrt,
    df=lambda x: -0.5 * x.pow(-1.5),
    d2f=lambda x: 0.75 * x.pow(-2.5),
    divided_difference=_invsqrt_dd,
    exact_at_ties=True,
    name="invsqrtm",
    domain=DOMAIN_PD,
)


def _exp_dd(a: Tensor, b: Tensor) -> Tensor:
    d = (a - b).abs_()
    # exp(max) · (−expm1(−d)) / d with d = |a − b|: the factor −expm1(−d)/d lies in (0, 1], so
    # nothing overflows unless exp(max) itself does (exp(min) · expm1(d) overflowed for spreads
    # d above log(max float), 709 in float64, although the product is finite).
    return torch.expm1(d.neg()).neg_().div_(d).mul_(torch.exp(torch.maximum(a, b)))


EXP = ScalarFunction(
    f=torch.exp,
    df=torch.exp,
    d2f=torch.exp,
    divided_difference=_exp_dd,
    name="expm",
    domain=DOMAIN_ANY,
)


def power_function(p: float) -> ScalarFunction:
    """``x ↦ x^p`` on ``x >= 0`` (``x > 0`` for ``p <= 0``) with a stable divided difference.

    At a (numerical) zero eigenvalue ``f′(0) = p·0^(p−1)`` is 0 for ``p > 1``, 1 for ``p = 1``
    and infinite for ``p < 1``, where 0 is used instead (likewise ``f″(0)``): see
    docs/numerics.md, "Zero eigenvalues".
    """

    def f(x: Tensor) -> Tensor:
        return x.clamp_min(0).pow(p)

    def floor(x: Tensor) -> Tensor:
        return x.clamp_min(torch.finfo(x.dtype).tiny)

    def df(x: Tensor) -> Tensor:
        return _positive_part(x, p * floor(x).pow(p - 1), 1.0 if p == 1 else 0.0)

    def d2f(x: Tensor) -> Tensor:
        return _positive_part(x, p * (p - 1) * floor(x).pow(p - 2), 2.0 if p == 2 else 0.0)

    def dd(a: Tensor, b: Tensor) -> Tensor:
        lo, hi = floor(torch.minimum(a, b)), floor(torch.maximum(a, b))
        far = hi > 2 * lo  # no cancellation: the plain quotient is accurate
        direct = (hi.pow(p) - lo.pow(p)) / (hi - lo)
        t = ((hi - lo) / lo).clamp_max(1.0)
        # (hi^p − lo^p)/(hi − lo) = lo^(p−1) · expm1(p log1p(t)) / t,  t = (hi − lo)/lo
        near = lo.pow(p - 1) * torch.expm1(p * torch.log1p(t)) / t
        return torch.where(far, direct, near)

    return ScalarFunction(
        f=f,
        df=df,
        d2f=d2f,
        divided_difference=dd,
        name=f"powm(p={p:g})",
        domain=DOMAIN_PSD if p > 0 else DOMAIN_PD,
    )


def _options(eps, clamp, compute_dtype) -> SpectralOptions:
    return SpectralOptions(eps=eps, clamp=clamp, compute_dtype=compute_dtype)


def logm(
    A: Tensor,
    *,
    eps: float = 0.0,
    clamp: float | None = None,
    compute_dtype: torch.dtype | None = None,
    check: bool = True,
) -> Tensor:
    """Matrix logarithm of symmetric positive definite matrices: ``U log(Σ) Uᵀ``.

    The log-tangent map of O2P / DeepO2P: ``log(FᵀF + εI)`` maps covariance descriptors to a
    flat space where Euclidean distances approximate the log-Euclidean metric.

    Parameters
    ----------
    A : Tensor, shape (..., n, n)
        Symmetric positive definite (after ``eps`` / ``clamp``).
    eps : float
        Add ``eps·I`` (the paper's ``εI``), making rank-deficient ``FᵀF`` definite.
    clamp : float, optional
        Clamp eigenvalues below at ``clamp > 0``.
    compute_dtype : torch.dtype, optional
        Decompose in this dtype (e.g. ``torch.float64``) and cast back.
    check : bool
        Validate (symmetry, finiteness, positive definiteness from the eigenvalues computed
        anyway). ``False`` skips it.

    Returns
    -------
    Tensor, shape (..., n, n)

    Raises
    ------
    ValueError
        If ``A`` is malformed or, after ``eps``/``clamp``, not positive definite.

    Notes
    -----
    Backward: Daleckii–Krein with ``Pᵢⱼ = (log σᵢ − log σⱼ)/(σᵢ − σⱼ)``, ``Pᵢᵢ = 1/σᵢ``; exact
    and finite at the repeated eigenvalue ``ε`` of a rank-deficient ``FᵀF + εI``. Double
    backward supported (without ``clamp``).

    References
    ----------
    Ionescu, Vantzos & Sminchisescu, ICCV 2015, Sec. 4.1 (DeepO2P, the log-tangent layer);
    Carreira et al., "Semantic segmentation with second-order pooling", ECCV 2012.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import logm
    >>> logm(torch.diag(torch.tensor([1.0, 2.718281828459045], dtype=torch.float64)))
    tensor([[0., 0.],
            [0., 1.]], dtype=torch.float64)
    """
    return apply_spectral_function(A, LOG, _options(eps, clamp, compute_dtype), check=check)


def sqrtm(
    A: Tensor,
    *,
    eps: float = 0.0,
    clamp: float | None = None,
    compute_dtype: torch.dtype | None = None,
    check: bool = True,
) -> Tensor:
    """Principal square root of symmetric positive semi-definite matrices: ``U Σ^½ Uᵀ``.

    Parameters
    ----------
    A : Tensor, shape (..., n, n)
        Symmetric positive semi-definite (eigenvalues ``>= −64 eps max|σ|`` are accepted and
        rounding negatives are treated as 0).
    eps, clamp, compute_dtype, check
        As in :func:`logm`.

    Returns
    -------
    Tensor, shape (..., n, n)

    Raises
    ------
    ValueError
        If ``A`` is malformed or has a clearly negative eigenvalue.

    Notes
    -----
    Backward: Daleckii–Krein with the exact ``Pᵢⱼ = 1/(√σᵢ + √σⱼ)``. At a singular ``A`` the
    derivative along the null space is unbounded (``f′(0) = ∞``); the backward floors ``σ`` at
    the dtype's ``tiny`` there, so pass ``eps > 0`` for meaningful gradients (as MPN-COV does).

    References
    ----------
    Li et al., "Is Second-order Information Helpful for Large-scale Visual Recognition?"
    (MPN-COV), ICCV 2017; Ionescu et al., ICCV 2015, Sec. 4.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import sqrtm
    >>> sqrtm(torch.tensor([[4.0, 0.0], [0.0, 9.0]], dtype=torch.float64))
    tensor([[2., 0.],
            [0., 3.]], dtype=torch.float64)
    """
    return apply_spectral_function(A, SQRT, _options(eps, clamp, compute_dtype), check=check)


def invsqrtm(
    A: Tensor,
    *,
    eps: float = 0.0,
    clamp: float | None = None,
    compute_dtype: torch.dtype | None = None,
    check: bool = True,
) -> Tensor:
    """Inverse square root of symmetric positive definite matrices: ``U Σ^(−½) Uᵀ``.

    Parameters
    ----------
    A : Tensor, shape (..., n, n)
        Symmetric positive definite (after ``eps`` / ``clamp``).
    eps, clamp, compute_dtype, check
        As in :func:`logm`.

    Returns
    -------
    Tensor, shape (..., n, n)

    Raises
    ------
    ValueError
        If ``A`` is malformed or not positive definite after ``eps`` / ``clamp``.

    Notes
    -----
    Backward: Daleckii–Krein with ``Pᵢⱼ = −1/(√σᵢ √σⱼ (√σᵢ + √σⱼ))``. Used for whitening and
    for ``D^(−½)`` normalisations.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import invsqrtm
    >>> invsqrtm(torch.tensor([[4.0, 0.0], [0.0, 0.25]], dtype=torch.float64))
    tensor([[0.5000, 0.0000],
            [0.0000, 2.0000]], dtype=torch.float64)
    """
    return apply_spectral_function(A, INVSQRT, _options(eps, clamp, compute_dtype), check=check)


def powm(
    A: Tensor,
    p: float,
    *,
    eps: float = 0.0,
    clamp: float | None = None,
    compute_dtype: torch.dtype | None = None,
    check: bool = True,
) -> Tensor:
    """Real power of symmetric positive (semi-)definite matrices: ``U Σ^p Uᵀ``.

    Parameters
    ----------
    A : Tensor, shape (..., n, n)
        Positive semi-definite for ``p > 0``; positive definite for ``p <= 0``.
    p : float
        The exponent (finite).
    eps, clamp, compute_dtype, check
        As in :func:`logm`.

    Returns
    -------
    Tensor, shape (..., n, n)

    Raises
    ------
    ValueError
        If ``p`` is not a finite real number, or ``A`` is malformed or outside the domain.

    Notes
    -----
    Backward: Daleckii–Krein with ``Pᵢⱼ = (σᵢᵖ − σⱼᵖ)/(σᵢ − σⱼ)`` in a cancellation-free form.
    ``p = 1/2`` is MPN-COV's normalisation.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import powm
    >>> powm(torch.tensor([[8.0, 0.0], [0.0, 27.0]], dtype=torch.float64), 1 / 3)
    tensor([[2., 0.],
            [0., 3.]], dtype=torch.float64)
    """
    p = check_number(p, "p")
    return apply_spectral_function(
        A, power_function(float(p)), _options(eps, clamp, compute_dtype), check=check
    )


def expm(
    A: Tensor,
    *,
    eps: float = 0.0,
    compute_dtype: torch.dtype | None = None,
    check: bool = True,
) -> Tensor:
    """Matrix exponential of symmetric matrices: ``U exp(Σ) Uᵀ`` (inverse of :func:`logm`).

    Parameters
    ----------
    A : Tensor, shape (..., n, n)
        Symmetric.
    eps, compute_dtype, check
        As in :func:`logm`.

    Returns
    -------
    Tensor, shape (..., n, n)
        Symmetric positive definite.

    Raises
    ------
    ValueError
        If ``A`` is malformed.

    Notes
    -----
    Backward: Daleckii–Krein with ``Pᵢⱼ = exp(σⱼ) expm1(σᵢ − σⱼ)/(σᵢ − σⱼ)``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import expm
    >>> expm(torch.zeros(2, 2, dtype=torch.float64))
    tensor([[1., 0.],
            [0., 1.]], dtype=torch.float64)
    """
    return apply_spectral_function(A, EXP, _options(eps, None, compute_dtype), check=check)
