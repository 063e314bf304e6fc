"""Spectral matrix functions ``F(A) = U f(Σ) Uᵀ`` with the Daleckii–Krein backward.

One kernel (:func:`spectral_function`) owns the forward and every derivative; ``logm``,
``sqrtm``, ``invsqrtm``, ``powm`` and ``expm`` (in :mod:`._matrix_functions`) are a few lines
each: a :class:`~matbackprop.linalg.ScalarFunction` ``(f, f′, f″, stable divided difference)``.

Forward::

    A + εI = U diag(λ + ε) Uᵀ,      F = U f(Σ) Uᵀ,      Σ = diag(max(λ + ε, c))   (optional clamp c)

Backward (Daleckii–Krein; the matrix-function case of Ionescu et al. 2015, Sec. 4, where the
paper composes Prop. 2 with ``f``)::

    ∂ℓ/∂A = U (P ∘ (Uᵀ G_sym U)) Uᵀ,     Pᵢⱼ = (f(σᵢ) − f(σⱼ))/(σᵢ − σⱼ),   Pᵢⱼ = f′(σᵢ) on ties

with ``G = ∂ℓ/∂F``. Unlike composing the eigh backward with ``U f(Σ) Uᵀ``, this is exact and
finite at repeated eigenvalues. The map ``G ↦ U(P∘UᵀGU)Uᵀ`` is self-adjoint on Sym(n), so the
same operator is the forward-mode derivative (``jvp``).

Double backward (when ``f″`` is known) uses the second-order Daleckii–Krein formula
``[D²F(A)[E, G]]~ᵢⱼ = Σₖ f[σᵢ, σₖ, σⱼ](ẼᵢₖG̃ₖⱼ + G̃ᵢₖẼₖⱼ)``; with
``f[a, b, c] = (P_ac − P_bc)/(a − b)`` the adjoint needs only matrix products::

    X̃₁ = ((P∘H̃) G̃ − H̃ (P∘G̃)) ⊘ (σᵢ − σⱼ)       (non-tied i, j)
    X̃₁ = ((Q∘H̃) G̃ + H̃ (Q∘G̃)ᵀ) / 2              (tied i, j; Qᵢₖ = f[σᵢ, σᵢ, σₖ])
    ∂/∂A ⟨H, ∂ℓ/∂A⟩ = U (X̃₁ + X̃₁ᵀ) Uᵀ
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from matbackprop.validation import (
    check_compute_dtype,
    check_float_dtype,
    check_floating,
    check_number,
    check_positive_definite,
    check_positive_semidefinite,
    check_symmetric_matrix,
    definiteness_tolerance,
    require_tensor,
)

from ._divided_differences import (
    DOMAIN_ANY,
    DOMAIN_PD,
    DOMAIN_PSD,
    ScalarFunction,
    confluent_second_differences,
    default_dd_rtol,
    first_divided_differences,
    tie_mask,
)
from ._eigh import sym
from ._solver import symmetric_eigh
from ._traceable import without_jvp


@dataclass(frozen=True)
class SpectralOptions:
    """Options of a spectral matrix function (one frozen object, passed through autograd).

    Parameters
    ----------
    eps : float
        Regularisation ``A + εI`` (applied to the eigenvalues; ``U`` is unchanged), ``>= 0``.
    clamp : float, optional
        Clamp eigenvalues below at ``c``: ``f(max(λ + ε, c))``; the derivative is zero below
        ``c`` (as in ReEig). Disables double backward.
    compute_dtype : torch.dtype, optional
        Run the decomposition and derivatives in this dtype (e.g. float64 for float32 input,
        as the paper did) and cast the result back.
    rtol : float, optional
        Tie tolerance of the divided differences; ``None`` takes the per-dtype default.

    Raises
    ------
    ValueError
        For an option of the wrong type or outside its range (checked at construction).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import SpectralOptions
    >>> SpectralOptions(eps=1e-3, compute_dtype=torch.float64)
    SpectralOptions(eps=0.001, clamp=None, compute_dtype=torch.float64, rtol=None)
    """

    eps: float = 0.0
    clamp: float | None = None
    compute_dtype: torch.dtype | None = None
    rtol: float | None = None

    def __post_init__(self) -> None:
        check_number(self.eps, "eps", minimum=0)
        check_number(self.clamp, "clamp", allow_none=True)
        check_compute_dtype(self.compute_dtype)
        check_number(self.rtol, "rtol", minimum=0, allow_none=True)


def _clamped(fn: ScalarFunction, c: float) -> ScalarFunction:
    """``g(λ) = f(max(λ, c))`` with ``g′ = f′·[λ > c]``.

    With a closed-form ``f[a, b]`` the clamped one is ``g[a, b] = f[μa, μb] (μa − μb)/(a − b)``
    (``μ = max(λ, c)``; 0 when both are clamped). Without one, ``g`` gets none either, so
    near-ties go through the generic tie band of :func:`first_divided_differences` (the plain
    quotient of ``g`` cancels catastrophically there, as that of ``f`` would).
    """

    def g(x: Tensor) -> Tensor:
        return fn.f(x.clamp_min(c))

    def dg(x: Tensor) -> Tensor:
        return torch.where(x > c, fn.df(x.clamp_min(c)), torch.zeros_like(x))

    dd = None
    if fn.divided_difference is not None:
        inner_dd = fn.divided_difference

        def dd(a: Tensor, b: Tensor) -> Tensor:
            ma, mb = a.clamp_min(c), b.clamp_min(c)
            both_clamped = (a <= c) & (b <= c)
            inner = inner_dd(ma, torch.where(both_clamped, mb + 1.0, mb))
            # g[a, b] = f[μa, μb] (μa − μb)/(a − b); the factor is 1 when neither is clamped.
            factor = (ma - mb) / (a - b)
            return torch.where(both_clamped, torch.zeros_like(inner), inner * factor)

    return ScalarFunction(
        f=g, df=dg, d2f=None, divided_difference=dd, name=f"{fn.name}∘clamp", domain=fn.domain
    )


def _effective(fn: ScalarFunction, opts: SpectralOptions) -> ScalarFunction:
    return fn if opts.clamp is None else _clamped(fn, opts.clamp)


def _buffers_allowed() -> bool:
    """``out=`` buffers are used outside ``torch.func`` transforms and ``torch.compile``."""
    return not (torch._C._are_functorch_transforms_active() or torch.compiler.is_compiling())


def daleckii_krein(U: Tensor, P: Tensor, G: Tensor) -> Tensor:
    """``U (P ∘ (Uᵀ G_sym U)) Uᵀ``: the Fréchet derivative of ``F`` applied to ``G``.

    Four batched ``n³`` products. Two ``(..., n, n)`` work buffers are reused for the
    intermediate products and the result (each fresh buffer of a large batch costs page
    faults, as much as a pass over it), and the ½ of ``G_sym`` rides on the last product.
    """
    return _sandwich(U, G, lambda S: S.mul_(P))


# Matrices per chunk of the fused P: each chunk's temporaries stay near 2 MiB (in cache, and
# below glibc's mmap threshold, so they are reused instead of being faulted in afresh).
_DD_CHUNK_BYTES = 1 << 21


def daleckii_krein_fused(
    U: Tensor, lam: Tensor, fn: ScalarFunction, rtol: float | None, G: Tensor
) -> Tensor:
    """:func:`daleckii_krein` with ``P`` applied in batch chunks and never stored whole.

    The once-differentiable backward (``P`` is not saved for a second derivative): the
    divided differences of each chunk of matrices are formed in small temporaries and
    multiplied into ``Uᵀ G_sym U`` at once. On a batch of 64 matrices of 256×256 this saves
    two full-size buffers (their page faults) and the passes over them.
    """

    def scale_by_p(S: Tensor) -> Tensor:
        n = S.shape[-1]
        flat_S = S.reshape(-1, n, n)
        flat_lam = lam.reshape(-1, n)
        per_chunk = max(1, _DD_CHUNK_BYTES // (n * n * S.element_size()))
        for start in range(0, flat_S.shape[0], per_chunk):
            stop = start + per_chunk
            P, _ = first_divided_differences(flat_lam[start:stop], fn, rtol)
            flat_S[start:stop].mul_(P)
        return S

    return _sandwich(U, G, scale_by_p)


def _sandwich(U: Tensor, G: Tensor, scale_in_place) -> Tensor:
    """``U (P ∘ (Uᵀ G_sym U)) Uᵀ`` with ``scale_in_place(S)`` doing ``S ∘= P`` (and returning S)."""
    S = G + G.mT  # 2 G_sym (contiguous)
    if not _buffers_allowed():
        G_tilde = scale_in_place((U.mT @ S @ U).contiguous())
        return (U @ G_tilde @ U.mT).mul_(0.5)
    W = torch.matmul(S, U)
    torch.matmul(U.mT, W, out=S)  # 2 Uᵀ G_sym U
    scale_in_place(S)
    torch.matmul(U, S, out=W)
    return torch.matmul(W, U.mT, out=S).mul_(0.5)


def second_order_adjoint(
    U: Tensor, lam: Tensor, P: Tensor, fn: ScalarFunction, rtol: float, G: Tensor, H: Tensor
) -> Tensor:
    """``U (X̃₁ + X̃₁ᵀ) Uᵀ`` with ``X̃₁ᵢⱼ = Σₖ f[σᵢ, σⱼ, σₖ] H̃ᵢₖ G̃ⱼₖ`` (second-order Daleckii–Krein).

    Both the double backward (``H`` the cotangent of ``∂ℓ/∂A``) and the forward-mode derivative
    of the backward (``H`` the tangent ``dA``: ``D²F(A)[dA, G]``) are this expression.
    """
    if fn.d2f is None:
        raise RuntimeError(
            f"second derivatives of the matrix function {fn.name!r} need f″: pass d2f= to "
            "spectral_function (clamped functions have none)"
        )
    G_t = U.mT @ sym(G) @ U  # (..., n, n): G̃
    H_t = U.mT @ sym(H) @ U  # (..., n, n): H̃
    # Second differences cancel like eps/gap²: tie at the looser generic tolerance.
    generic = default_dd_rtol(lam.dtype, stable=False)
    ties = tie_mask(lam, generic if rtol is None else max(rtol, generic))
    Q = confluent_second_differences(lam, fn, P, ties)  # Qᵢₖ = f[σᵢ, σᵢ, σₖ]
    gaps = lam.unsqueeze(-1) - lam.unsqueeze(-2)  # σᵢ − σⱼ
    safe = torch.where(ties, torch.ones_like(gaps), gaps)
    # Non-tied: Σₖ f[i, j, k] H̃ᵢₖ G̃ⱼₖ = ((P∘H̃)G̃ − H̃(P∘G̃)) / (σᵢ − σⱼ)
    apart = ((P * H_t) @ G_t - H_t @ (P * G_t)) / safe
    # Tied: f[i, j, k] ≈ (Qᵢₖ + Qⱼₖ)/2 (error O(gap²))
    tied = 0.5 * ((Q * H_t) @ G_t + H_t @ (Q * G_t).mT)
    X1 = torch.where(ties, tied, apart)
    return U @ (X1 + X1.mT) @ U.mT


class _FrechetAdjoint(torch.autograd.Function):
    """``(A, G) ↦ U (P ∘ Uᵀ G_sym U) Uᵀ`` as a differentiable function of ``A`` and ``G``.

    ``A`` enters only to carry the graph for double backward; ``U, λ`` are its decomposition.
    The extra output ``P`` is internal (returned so that it can be saved under ``torch.func``).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor, G: Tensor, U: Tensor, lam: Tensor, fn: ScalarFunction, rtol: float):
        P, _ = first_divided_differences(lam, fn, rtol)
        return daleckii_krein(U, P, G), P

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        _, G, U, lam, fn, rtol = inputs
        _, P = output
        ctx.fn = fn
        ctx.rtol = rtol
        ctx.save_for_backward(G, U, lam, P)
        ctx.save_for_forward(G, U, lam, P)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, H: Tensor, _gP: Any):
        G, U, lam, P = ctx.saved_tensors
        grad_A = grad_G = None
        if ctx.needs_input_grad[1]:
            grad_G = daleckii_krein(U, P, H)  # self-adjoint: ⟨H, L(G)⟩ = ⟨L(H), G⟩
        if ctx.needs_input_grad[0]:
            grad_A = second_order_adjoint(U, lam, P, ctx.fn, ctx.rtol, G, H)
        return grad_A, grad_G, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, dA, dG, _dU, _dlam, _fn, _rtol):
        G, U, lam, P = ctx.saved_tensors
        out = torch.zeros_like(G)
        if dG is not None:
            out = out + daleckii_krein(U, P, dG)
        if dA is not None:
            out = out + second_order_adjoint(U, lam, P, ctx.fn, ctx.rtol, G, dA)
        return out, torch.zeros_like(P)


_FrechetAdjointTraced = without_jvp(_FrechetAdjoint)  # applied under torch.compile


class _SpectralFunction(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor, fn: ScalarFunction, opts: SpectralOptions):
        S = A + A.mT  # 2 sym(A): one pass instead of two; halve the eigenvalues below
        if opts.eps:
            # Shift before decomposing: LAPACK on the singular FᵀF (denormals, slow or failing
            # convergence in float32) is avoided, and U is the same.
            S.diagonal(dim1=-2, dim2=-1).add_(2 * opts.eps)
        mu, U = symmetric_eigh(S, exactly_symmetric=True)  # a + b == b + a in floating point
        mu = 0.5 * mu  # eigenvalues of sym(A) + εI
        if fn.domain == DOMAIN_PSD:
            # Numerical zeros (|μ| within rounding of the scale, either sign) are exactly 0:
            # f, the divided differences and the backward then do not depend on which
            # rounding this LAPACK kernel produced (0, +1e-17 or −1e-17).
            zero = mu.abs() <= definiteness_tolerance(mu)
            mu = torch.where(zero, torch.zeros_like(mu), mu)
        f_mu = _effective(fn, opts).f(mu)
        if _buffers_allowed():  # S is free now: it holds U f(Σ), in U's layout
            U_f = torch.mul(U, f_mu.unsqueeze(-2), out=S if U.is_contiguous() else S.mT)
            return torch.matmul(U_f, U.mT), mu, U
        Y = (U * f_mu.unsqueeze(-2)) @ U.mT  # U f(Σ) Uᵀ
        return Y, mu, U

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        A, fn, opts = inputs
        _, mu, U = output
        ctx.fn = _effective(fn, opts)
        ctx.rtol = opts.rtol  # None: the default tie handling of first_divided_differences
        # mu, U are internal outputs (returned so that they can be saved under torch.func);
        # the public functions never expose them, and their incoming gradients are ignored.
        ctx.save_for_backward(A, mu, U)
        ctx.save_for_forward(mu, U)
        ctx.set_materialize_grads(False)  # mu and U get no gradient: no zero-filled (B, n, n)

    @staticmethod
    def backward(ctx: Any, grad_Y: Tensor | None, _g_mu: Any, _g_U: Any):
        if grad_Y is None:
            return None, None, None
        A, mu, U = ctx.saved_tensors
        if not torch.is_grad_enabled() and _buffers_allowed():
            # No graph of the backward is built (create_graph=False): P is not needed later.
            return daleckii_krein_fused(U, mu, ctx.fn, ctx.rtol, grad_Y), None, None
        grad_A, _ = (
            _FrechetAdjointTraced if torch.compiler.is_compiling() else _FrechetAdjoint
        ).apply(A, grad_Y, U, mu, ctx.fn, ctx.rtol)
        return grad_A, None, None

    @staticmethod
    def jvp(ctx: Any, dA: Tensor, _fn: None, _opts: None):
        mu, U = ctx.saved_tensors
        P, _ = first_divided_differences(mu, ctx.fn, ctx.rtol)
        return daleckii_krein(U, P, dA), torch.zeros_like(mu), torch.zeros_like(U)


_SpectralFunctionTraced = without_jvp(_SpectralFunction)  # applied under torch.compile


_REMEDY = "Regularize with eps=... (A + eps*I) or clamp eigenvalues with clamp=..."


def apply_spectral_function(
    A: Tensor, fn: ScalarFunction, opts: SpectralOptions, *, check: bool = True
) -> Tensor:
    """Validate, cast, run the spectral kernel, check ``fn.domain``, cast back.

    The domain check reuses the eigenvalues of the forward (no second decomposition): ``"pd"``
    needs ``λ_min > tol``, ``"psd"`` needs ``λ_min >= −tol`` with the relative tolerance
    ``tol = 4 n eps max|λ|`` of :func:`matbackprop.validation.definiteness_tolerance`.
    """
    A = require_tensor(A, "A")
    if check:
        if opts.compute_dtype is None:
            check_float_dtype(A, "A", hint=" (or pass compute_dtype=torch.float32/float64)")
            check_symmetric_matrix(A, "A", check=True)
        else:
            check_floating(A, "A")
            check_symmetric_matrix(A.to(opts.compute_dtype), "A", check=True)
    out_dtype = A.dtype
    work = A if opts.compute_dtype is None else A.to(opts.compute_dtype)
    Y, mu, _ = (
        _SpectralFunctionTraced if torch.compiler.is_compiling() else _SpectralFunction
    ).apply(work, fn, opts)
    if check and fn.domain != DOMAIN_ANY:
        effective = mu if opts.clamp is None else mu.clamp_min(opts.clamp)
        if fn.domain == DOMAIN_PD:
            check_positive_definite(effective.detach(), "A", fn.name, _REMEDY)
        else:
            check_positive_semidefinite(effective.detach(), "A", fn.name, _REMEDY)
    return Y if Y.dtype == out_dtype else Y.to(out_dtype)


def spectral_function(
    A: Tensor,
    f,
    df,
    *,
    d2f=None,
    divided_difference=None,
    eps: float = 0.0,
    clamp: float | None = None,
    compute_dtype: torch.dtype | None = None,
    rtol: float | None = None,
    check: bool = True,
) -> Tensor:
    """Apply a scalar function to the eigenvalues of symmetric matrices: ``U f(Σ) Uᵀ``.

    Parameters
    ----------
    A : Tensor, shape (..., n, n)
        Symmetric matrices (float32/float64, or any float dtype with ``compute_dtype``).
    f, df : callable
        ``f`` and its derivative ``f′``, elementwise on a tensor of eigenvalues.
    d2f : callable, optional
        ``f″``; enables double backward (gradgradcheck-exact). Without it a second
        differentiation raises ``RuntimeError``.
    divided_difference : callable, optional
        Cancellation-free ``(f(a) − f(b))/(a − b)`` for ``a != b``; improves accuracy for
        close but distinct eigenvalues.
    eps : float
        Add ``eps·I`` first.
    clamp : float, optional
        Evaluate ``f(max(σ, clamp))`` (derivative 0 below ``clamp``).
    compute_dtype : torch.dtype, optional
        Decompose in this dtype and cast the result back (e.g. float64, as the paper did).
    rtol : float, optional
        Tie tolerance of the divided differences (default per dtype, see
        :func:`~matbackprop.linalg.default_dd_rtol`).
    check : bool
        Validate inputs. ``False`` skips it.

    Returns
    -------
    Tensor, shape (..., n, n)
        ``U f(Σ) Uᵀ`` in the dtype of ``A``.

    Raises
    ------
    ValueError
        For non-tensor, wrongly shaped, non-float, non-finite or asymmetric ``A``, or invalid
        options.

    Notes
    -----
    Backward (Daleckii–Krein)::

        ∂ℓ/∂A = U (P ∘ (Uᵀ G_sym U)) Uᵀ,   Pᵢⱼ = (f(σᵢ) − f(σⱼ))/(σᵢ − σⱼ),  Pᵢⱼ = f′(σᵢ) on ties,

    exact and finite at repeated eigenvalues (e.g. the rank-deficient ``FᵀF + εI``). The
    gradient lives in Sym(n). Supports ``torch.func.vmap``, ``grad``, ``jvp``/``jacfwd``;
    double backward when ``d2f`` is given. Cost: one ``eigh``; backward four ``n³`` products.

    References
    ----------
    Ionescu, Vantzos & Sminchisescu, ICCV 2015, Sec. 4 (log / DeepO2P); Daleckii & Krein,
    AMS Transl. 47 (1965); Bhatia, *Matrix Analysis*, Thm. V.3.3.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import spectral_function
    >>> A = torch.eye(2, dtype=torch.float64) * 4
    >>> spectral_function(A, torch.sqrt, lambda x: 0.5 / torch.sqrt(x))
    tensor([[2., 0.],
            [0., 2.]], dtype=torch.float64)
    """
    if not callable(f) or not callable(df):
        raise ValueError("`f` and `df` must be callables on tensors of eigenvalues")
    fn = ScalarFunction(
        f=f, df=df, d2f=d2f, divided_difference=divided_difference, name=getattr(f, "__name__", "f")
    )
    opts = SpectralOptions(eps=eps, clamp=clamp, compute_dtype=compute_dtype, rtol=rtol)
    return apply_spectral_function(A, fn, opts, check=check)
