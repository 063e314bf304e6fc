"""Singular value decomposition ``X = UΣVᵀ`` with the matrix-backpropagation gradient.

For ``X`` of shape ``(m, n)``, ``k = min(m, n)``, thin factors ``U (m, k)``, ``σ (k)``
(descending), ``V (n, k)``. With ``J = UᵀŪ``, ``L = VᵀV̄`` (``Ū, V̄, Σ̄`` the incoming gradients)
and ``Kᵢⱼ = 1/(σᵢ² − σⱼ²)`` (Ionescu et al. 2015, Prop. 2, the SVD case)::

    ∂ℓ/∂X = U [ (Σ̄)_diag + (Kᵀ ∘ (J − Jᵀ)) Σ + Σ (Kᵀ ∘ (L − Lᵀ)) ] Vᵀ
            + (I − UUᵀ) Ū Σ⁻¹ Vᵀ                      (the D-term, m > k)
            + U Σ⁻¹ V̄ᵀ (I − VVᵀ)                      (its transpose twin, n > k)

The paper writes the same with a full ``U`` and its "D" block ``D = (∂ℓ/∂U)₁ Σₙ⁻¹``; the two
forms agree. With ``full_matrices=True`` the complement columns ``U₂`` (or ``V₂``) depend on ``X``
only through their span ``range(U₁)^⊥``; for a loss invariant to rotations of ``U₂``, their
gradient folds into ``Ū₁ ← Ū₁ − U₂ Ū₂ᵀ U₁`` (from ``U₁ᵀ dU₂ = −dU₁ᵀ U₂``).

Degenerate pairs and numerically zero singular values (in ``Σ⁻¹``) follow the
:class:`~matbackprop.linalg.DegeneracyPolicy`, relative to ``σ_max``. The policy acts on the
factors of ``Kᵢⱼ = 1/((σᵢ − σⱼ)(σᵢ + σⱼ))`` separately, by writing
``Kᵀ∘(AΣ + ΣB) = ½(A + B)/(σⱼ − σᵢ) + ½(A − B)/(σⱼ + σᵢ)`` (elementwise): only the first is
singular at a tie, and for losses invariant to joint rotations of tied singular vectors its
numerator ``A + B`` vanishes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from matbackprop.validation import (
    check_bool,
    check_finite,
    check_float_dtype,
    check_matrix,
    require_tensor,
)

from ._policy import DEFAULT_POLICY, DegeneracyPolicy
from ._traceable import without_jvp


class SVDResult(NamedTuple):
    """``(U, S, Vh)`` of :func:`svd`, as ``torch.linalg.svd`` returns them.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import svd
    >>> result = svd(torch.tensor([[3.0, 0.0], [0.0, -2.0], [0.0, 0.0]]))
    >>> result.S
    tensor([3., 2.])
    >>> U, S, Vh = result
    >>> (U.shape, Vh.shape)
    (torch.Size([3, 2]), torch.Size([2, 2]))
    """

    U: Tensor
    S: Tensor
    Vh: Tensor


def svd_coupling(S: Tensor, policy: DegeneracyPolicy) -> tuple[Tensor, Tensor, Tensor]:
    """The two factors of ``Kᵀᵢⱼ = 1/(σⱼ² − σᵢ²) = 1/((σⱼ − σᵢ)(σⱼ + σᵢ))``, and ``Σ⁻¹``.

    Returns ``(1/(σⱼ − σᵢ), 1/(σⱼ + σᵢ), 1/σ)``, each regularised by ``policy`` (relative to
    ``σ_max``). Splitting ``K`` matters at ties: for a gauge-invariant loss only the
    ``1/(σⱼ − σᵢ)`` part is singular (and its numerator vanishes), while the ``1/(σⱼ + σᵢ)``
    part is a genuine, finite contribution that zeroing all of ``K`` would lose.
    """
    smax = S.amax(dim=-1, keepdim=True).unsqueeze(-1).clamp_min(torch.finfo(S.dtype).tiny)
    straddle = policy.straddles(S.shape[-1], descending=True, device=S.device)
    diff_inv = policy.inverse_gaps(S.unsqueeze(-2) - S.unsqueeze(-1), smax, straddle)  # 1/(σⱼ−σᵢ)
    sum_inv = policy.inverse_gaps(S.unsqueeze(-2) + S.unsqueeze(-1), smax)  # 1/(σⱼ + σᵢ)
    sum_inv = sum_inv - torch.diag_embed(torch.diagonal(sum_inv, dim1=-2, dim2=-1))
    S_inv = policy.inverse_values(S.unsqueeze(-1), smax).squeeze(-1)  # (..., k)
    return diff_inv, sum_inv, S_inv


def coupled_rotation(A_skew: Tensor, B_skew: Tensor, S: Tensor, policy: DegeneracyPolicy):
    """``Kᵀ ∘ (A Σ + Σ B)`` for antisymmetric ``A, B`` (the paper's SVD coupling), tie-safe.

    With ``Kᵀᵢⱼ = 1/(σⱼ² − σᵢ²)``: ``(Aᵢⱼσⱼ + σᵢBᵢⱼ)/(σⱼ² − σᵢ²)
    = ½(A + B)ᵢⱼ/(σⱼ − σᵢ) + ½(A − B)ᵢⱼ/(σⱼ + σᵢ)``.
    """
    diff_inv, sum_inv, _ = svd_coupling(S, policy)
    return 0.5 * (A_skew + B_skew) * diff_inv + 0.5 * (A_skew - B_skew) * sum_inv


class _SVD(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(A: Tensor, full_matrices: bool, policy: DegeneracyPolicy):
        U, S, Vh = torch.linalg.svd(A, full_matrices=full_matrices)
        return U, S, Vh

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        A, full_matrices, policy = inputs
        U, S, Vh = output
        ctx.policy = policy
        ctx.full_matrices = full_matrices
        ctx.shape = A.shape[-2:]
        ctx.save_for_backward(U, S, Vh)
        ctx.save_for_forward(U, S, Vh)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_U: Tensor | None, grad_S: Tensor | None, grad_Vh: Tensor | None):
        U, S, Vh = ctx.saved_tensors
        m, n = ctx.shape
        k = S.shape[-1]
        U1, V1 = U[..., :, :k], Vh[..., :k, :].mT  # (..., m, k), (..., n, k)
        gU1 = grad_U[..., :, :k] if grad_U is not None else None
        gV1 = grad_Vh[..., :k, :].mT if grad_Vh is not None else None
        if ctx.full_matrices:
            # Complement columns: Ū₁ ← Ū₁ − U₂ Ū₂ᵀ U₁ (likewise for V).
            if grad_U is not None and m > k:
                U2, gU2 = U[..., :, k:], grad_U[..., :, k:]
                gU1 = gU1 - U2 @ (gU2.mT @ U1)
            if grad_Vh is not None and n > k:
                V2, gV2 = Vh[..., k:, :].mT, grad_Vh[..., k:, :].mT
                gV1 = gV1 - V2 @ (gV2.mT @ V1)
        _, _, S_inv = svd_coupling(S, ctx.policy)
        zeros = torch.zeros(*S.shape, k, dtype=S.dtype, device=S.device)  # (..., k, k)
        J_skew = L_skew = zeros
        grad_A = None
        if gU1 is not None:
            J = U1.mT @ gU1  # (..., k, k): J = UᵀŪ
            J_skew = J - J.mT
            if m > k:  # D-term: (I − UUᵀ) Ū Σ⁻¹ Vᵀ
                D = (gU1 - U1 @ J) * S_inv.unsqueeze(-2)  # (..., m, k)
                grad_A = D @ V1.mT
        if gV1 is not None:
            L = V1.mT @ gV1  # (..., k, k): L = VᵀV̄
            L_skew = L - L.mT
            if n > k:  # U Σ⁻¹ V̄ᵀ (I − VVᵀ)
                E = (gV1 - V1 @ L) * S_inv.unsqueeze(-2)  # (..., n, k)
                term = U1 @ E.mT
                grad_A = term if grad_A is None else grad_A + term
        # Paper, Prop. 2: (Kᵀ ∘ (J − Jᵀ)) Σ + Σ (Kᵀ ∘ (L − Lᵀ)), Kᵢⱼ = 1/(σᵢ² − σⱼ²)
        inner = coupled_rotation(J_skew, L_skew, S, ctx.policy)
        if grad_S is not None:
            inner = inner + torch.diag_embed(grad_S)  # + (Σ̄)_diag
        core = U1 @ inner @ V1.mT
        grad_A = core if grad_A is None else grad_A + core
        return grad_A, None, None

    @staticmethod
    def jvp(ctx: Any, dA: Tensor, _full: None, _policy: None):
        if ctx.full_matrices:
            raise NotImplementedError(
                "forward-mode AD of svd(full_matrices=True) is not supported; "
                "use full_matrices=False"
            )
        U, S, Vh = ctx.saved_tensors
        V = Vh.mT
        diff_inv, sum_inv, S_inv = svd_coupling(S, ctx.policy)
        dP = U.mT @ dA @ V  # (..., k, k): Uᵀ dX V
        dS = torch.diagonal(dP, dim1=-2, dim2=-1)
        # dU = U (Kᵀ ∘ (dP Σ + Σ dPᵀ)), dV = V (Kᵀ ∘ (Σ dP + dPᵀ Σ)), split as in coupled_rotation
        sym_part = 0.5 * (dP + dP.mT) * diff_inv
        skew_part = 0.5 * (dP - dP.mT) * sum_inv
        dU = U @ (sym_part + skew_part)
        dV = V @ (sym_part - skew_part)
        m, n = ctx.shape
        if m > S.shape[-1]:
            dAV = dA @ V
            dU = dU + (dAV - U @ (U.mT @ dAV)) * S_inv.unsqueeze(-2)
        if n > S.shape[-1]:
            dAtU = dA.mT @ U
            dV = dV + (dAtU - V @ (V.mT @ dAtU)) * S_inv.unsqueeze(-2)
        return dU, dS, dV.mT


_SVDTraced = without_jvp(_SVD)  # applied under torch.compile


def svd(
    A: Tensor,
    full_matrices: bool = False,
    *,
    policy: DegeneracyPolicy | None = None,
    check: bool = True,
) -> SVDResult:
    """Singular value decomposition with the paper's backward, for any ``m, n``.

    ``A = U diag(S) Vh`` with ``S`` descending (as :func:`torch.linalg.svd`).

    Parameters
    ----------
    A : Tensor, shape (..., m, n)
        float32 or float64, any device.
    full_matrices : bool
        Return ``U (m, m)`` and ``Vh (n, n)`` instead of the thin ``(m, k)`` / ``(k, n)``.
        Gradients with respect to complement columns are correct for losses invariant to
        rotations of the complement (the only well-defined case).
    policy : DegeneracyPolicy, optional
        Handling of (near-)repeated singular values (``Kᵢⱼ`` of the paper) and of zero singular
        values (``Σ⁻¹`` in the D-term). Default ``"zero"`` with the per-dtype tolerance,
        relative to ``σ_max``.
    check : bool
        Validate ``A`` (shape, dtype, finiteness). ``False`` skips it.

    Returns
    -------
    SVDResult
        A named tuple ``(U, S, Vh)`` like ``torch.linalg.svd``'s (``U, S, Vh = svd(A)``):

        U : Tensor, shape (..., m, k) or (..., m, m)
        S : Tensor, shape (..., k)
        Vh : Tensor, shape (..., k, n) or (..., n, n)

    Raises
    ------
    ValueError
        If ``A`` is not a float32/float64 tensor of shape ``(..., m, n)`` or is not finite.

    Notes
    -----
    Backward (Ionescu et al. 2015, Prop. 2 for the SVD; ``Kᵢⱼ = 1/(σᵢ² − σⱼ²)``)::

        ∂ℓ/∂A = U[(Σ̄)_diag + (Kᵀ∘(J−Jᵀ))Σ + Σ(Kᵀ∘(L−Lᵀ))]Vᵀ + (I−UUᵀ)ŪΣ⁻¹Vᵀ + UΣ⁻¹V̄ᵀ(I−VVᵀ)

    with ``J = UᵀŪ`` and ``L = VᵀV̄``. Exact for losses invariant to the joint rotation of
    singular vectors of repeated singular values; never inf/NaN for finite input. Supports
    ``torch.func`` transforms (forward mode for ``full_matrices=False``); once differentiable.

    Differences from ``torch.linalg.svd``: ``full_matrices`` defaults to ``False`` (torch:
    ``True``), because the complement columns are not a differentiable function of ``A`` and
    the thin factors are what the backward (and every caller here) needs; there is no
    ``driver`` argument; the backward follows ``policy`` at (near-)repeated and zero singular
    values, where torch's is inf/NaN.

    References
    ----------
    Ionescu, Vantzos & Sminchisescu, ICCV 2015 (arXiv:1509.07838), Proposition 2.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import svd
    >>> A = torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    >>> U, S, Vh = svd(A)
    >>> S
    tensor([3., 2.], dtype=torch.float64)
    >>> svd(A).Vh.shape
    torch.Size([2, 2])
    """
    A = require_tensor(A, "A")
    if check:
        check_float_dtype(A, "A")
        check_matrix(A, "A", square=False)
        check_finite(A, "A")
        check_bool(full_matrices, "full_matrices")
    if policy is None:
        policy = DEFAULT_POLICY
    elif not isinstance(policy, DegeneracyPolicy):
        raise ValueError(f"`policy` must be a DegeneracyPolicy, got {type(policy).__name__}")
    return SVDResult(
        *(_SVDTraced if torch.compiler.is_compiling() else _SVD).apply(A, full_matrices, policy)
    )
