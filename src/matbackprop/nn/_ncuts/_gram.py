"""The Gram solver of the low-rank route: top-k eigenpairs of ``M = D̃^-½ ΦΦᵀ D̃^-½`` from the
``d × d`` matrix ``C = GᵀG``, fused into a few streaming passes over the features.

Notation: features ``F (m, d)`` per image, ``Φ = φ(F) >= 0`` (the ``nonneg`` map), column sums
``c = Φᵀ1``, degrees ``δ = Φc`` (``= W1`` for ``W = ΦΦᵀ``), floored ``d̃ = max(δ, f)`` with
``f = max(τ·mean(δ), τ_abs)``, ``s = d̃^-½``, ``G = diag(s) Φ`` and ``M = GGᵀ``.

Forward
-------
``C = GᵀG = V Λ Vᵀ`` (``λ₁ >= … >= λ_d``, ``σ = √λ``), ``Z = G V_k Λ_k^-½``: the top-``k``
eigenvectors of ``M`` are the left singular vectors of ``G``, obtained from the right ones.
For float32 features ``C`` is accumulated in float64 from exact products of the float32 rows
(a product of two float32 numbers is exact in float64), and decomposed in float64: then the only
float32 rounding is that of ``G`` itself, whose effect on the eigenvectors,
``eps (σᵢ + σⱼ)/(λᵢ − λⱼ) = eps/(σᵢ − σⱼ)``, is the SVD's. (Rounding ``C`` to float32 would add
``eps λ₁/(λᵢ − λⱼ)``: the squared condition number the Gram route is known for.)

Backward
--------
With ``H = GᵀZ̄`` (``d × k``) and ``H̃ = VᵀH``, first-order perturbation theory for the simple
eigenpairs of ``M`` (``dzᵢ = Σ_{j≠i} uⱼuⱼᵀ dM zᵢ/(λᵢ − λⱼ)`` over *all* ``m`` eigenvectors,
the ``m − d`` null vectors included, and ``dλᵢ = zᵢᵀ dM zᵢ``) gives
``M̄ = W Zᵀ + Σᵢ λ̄ᵢ zᵢzᵢᵀ`` with::

    W = (Z̄ + G V Ĉ) Λ_k⁻¹,   Ĉⱼᵢ = H̃ⱼᵢ/(λᵢ − λⱼ)  (j ≠ i),   Ĉᵢᵢ = −H̃ᵢᵢ/λᵢ

(the projector onto the null space, ``(I − UUᵀ)/λᵢ``, combines with the range terms so that no
``1/λⱼ`` of a small eigenvalue appears), and from ``dM = dG Gᵀ + G dGᵀ`` and ``ZᵀG = Λ_k^½V_kᵀ``::

    Ḡ = (M̄ + M̄ᵀ) G = Y V_kᵀ + Z E,
    Y = Z̄ Λ_k^-½ + G (V Ĉ Λ_k^-½),    E = Λ_k⁻¹ (Hᵀ + Ĉᵀ Λ Vᵀ) + 2 diag(λ̄) Λ_k^½ V_kᵀ.

This is the SVD backward of Ionescu et al. (2015, Prop. 2) for the left singular vectors of
``G``, written in the ``d × d`` basis. The couplings ``1/(λᵢ − λⱼ)`` follow the
:class:`~matbackprop.linalg.DegeneracyPolicy` on the *singular values*, as
:func:`matbackprop.linalg.svd` does: ``1/(λᵢ − λⱼ) = (1/(σᵢ − σⱼ) + 1/(σᵢ + σⱼ))/(2σᵢ)`` with
only the first term regularised, and pairs straddling the top-``k`` boundary regularised only
at true ties (the policy's ``block = k``). A regularised pair enters ``Ĉ`` through the
antisymmetric part of its coefficient, as it enters the svd's backward only through
``J − Jᵀ``; so the two solvers are the same function with the same gradient for any tolerance
(see :func:`_spectral_factors`). Then ``s̄ = rowsum(Ḡ ∘ Φ)``, the degrees' gradient (the loss's
``d̃̄`` plus ``−½ s³ s̄``, through the floor as ``torch.maximum``/``clamp_min`` route it), and::

    Φ̄ = s ∘ Ḡ + δ̄ cᵀ + 1 (Φᵀδ̄)ᵀ,        F̄ = φ′(F) ∘ Φ̄.

Passes
------
Row blocks of ``F`` are streamed; ``φ`` is applied to each block on the fly into one reused
block buffer, so neither ``Φ`` nor ``G`` nor any other ``m × d`` temporary exists. Forward:
column sums ``c``; then degrees and ``C`` together (the floor needs only
``mean(δ) = cᵀc/m``); then ``Z`` (three reads of ``F``). Backward: ``H``; one product
``Φ [VĈΛ^-½ | V_k | Eᵀ]`` giving ``Y``, ``s̄`` and ``Φᵀδ̄``; one product
``[sY | sZ | δ̄ | 1] [V_kᵀ; E; cᵀ; (Φᵀδ̄)ᵀ]`` written straight into ``F̄`` (two reads of ``F``
for ``Φ``, one for ``φ′``, one write of ``F̄``). Memory: ``F̄`` plus ``O(m k)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from matbackprop.linalg import DegeneracyPolicy
from matbackprop.validation import check_finite

from ._affinity import (
    Nonneg,
    absolute_degree_floor,
    nonneg_backward_,
    nonneg_map_into,
)
from ._lowrank import block_policy
from ._result import column_signs

#: Elements of ``F`` per streamed block (2 MiB in float32): large enough for efficient
#: products, small enough that a block and its reused buffers stay in cache between the
#: non-negativity map and the product that reads it.
BLOCK_ELEMENTS = 1 << 19

_DEFAULT_POLICY = DegeneracyPolicy()


def _blocks(B: int, m: int, d: int) -> Iterator[tuple[slice, slice]]:
    """``(images, rows)`` slices covering ``(B, m)``: the whole batch at once when it is small,
    else one image at a time in row blocks of about :data:`BLOCK_ELEMENTS` entries."""
    if B * m * d <= 2 * BLOCK_ELEMENTS:
        yield slice(0, B), slice(0, m)
        return
    rows = max(1, BLOCK_ELEMENTS // d)
    for b in range(B):
        for start in range(0, m, rows):
            yield slice(b, b + 1), slice(start, min(start + rows, m))


def _resolved(policy: DegeneracyPolicy, dtype: torch.dtype) -> DegeneracyPolicy:
    """``policy`` with the tolerances of ``dtype`` fixed, to apply to float64 quantities."""
    return DegeneracyPolicy(
        policy.mode, rtol=policy.resolved_rtol(dtype), broadening=policy.resolved_broadening(dtype)
    )


def _eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps)


def _spectral_factors(lam: Tensor, K: int, policy: DegeneracyPolicy, eps: float):
    """``σ⁻¹`` of the top ``K`` (regularised) and the couplings ``1/(λᵢ − λⱼ)``, ``i < K``.

    ``lam (B, d)`` descending, float64. Returns ``sigma_inv (B, K)`` and ``coupling (B, K, d)``
    with a zero diagonal (the caller sets ``j = i`` itself). The pairs ``j >= K`` straddle the
    top-``K`` block (the policy's ``block = K``): they are dropped only when tied to within
    ``STRADDLE_ULPS · eps`` (``eps`` of the features' dtype), as :func:`matbackprop.linalg.svd`
    does for ``DegeneracyPolicy(block=K)``.
    """
    sigma = lam.clamp_min(0).sqrt()  # (B, d)
    smax = sigma[..., :1].unsqueeze(-1).clamp_min(torch.finfo(sigma.dtype).tiny)  # (B, 1, 1)
    sigma_K = sigma[..., :K]
    sigma_inv = policy.inverse_values(sigma_K.unsqueeze(-1), smax).squeeze(-1)  # (B, K)
    a, b = sigma_K.unsqueeze(-1), sigma.unsqueeze(-2)  # (B, K, 1), (B, 1, d)
    # D = 1/(σᵢ − σⱼ) regularised by the policy (as the svd does), S = 1/(σᵢ + σⱼ) exact
    straddle = block_policy(policy, K).straddles(lam.shape[-1], descending=True, device=lam.device)
    straddle = None if straddle is None else straddle[:K]  # rows i < K: the columns j >= K
    diff_inv = policy.inverse_gaps(a - b, smax, straddle, eps=eps)
    # T = 1/(λᵢ − λⱼ) = (D + S)/(2σᵢ), the coefficient of uⱼuⱼᵀz̄ᵢ in W
    sum_inv = 1.0 / (a + b).clamp_min(torch.finfo(sigma.dtype).tiny)
    total = (diff_inv + sum_inv) * (0.5 * sigma_inv.unsqueeze(-1))
    # A regularised pair (its 1/(σᵢ − σⱼ) dropped or broadened) takes the antisymmetric part
    # ½(Tᵢⱼ − Tⱼᵢ) = (D(σᵢ + σⱼ) + S(σⱼ − σᵢ))/(4σᵢσⱼ): the svd's backward sees such a pair only
    # through J − Jᵀ (J = ZᵀZ̄), and in this basis that is the antisymmetric part of T (equal to
    # T when D is exact). W writes the coefficient as 1/λᵢ (the identity part, from the
    # null-space projector) plus λⱼcᵢⱼ/λᵢ (through Ĉ), so the coupling is cᵢⱼ = (λᵢT − 1)/λⱼ,
    # which is T itself for an exact pair (used as such: the identity cancels for small λⱼ).
    if policy.mode == "zero":
        regularised = diff_inv == 0
    else:
        beta = policy.resolved_broadening(lam.dtype) * smax
        regularised = (a - b).abs() < 100 * beta
    regularised = regularised & (b > torch.finfo(sigma.dtype).tiny ** 0.25)
    sigma_j = torch.where(regularised, b, torch.ones_like(b))
    antisymmetric = (diff_inv * (a + b) + sum_inv * (b - a)) * (0.25 * sigma_inv.unsqueeze(-1))
    antisymmetric = antisymmetric / sigma_j
    lam_i = lam[..., :K].unsqueeze(-1)
    adjusted = (lam_i * antisymmetric - 1.0) / (sigma_j * sigma_j)
    coupling = torch.where(regularised, adjusted, total)
    eye = torch.eye(K, lam.shape[-1], dtype=torch.bool, device=lam.device)
    return sigma_inv, coupling.masked_fill(eye, 0.0)


def _phi_blocks(
    F: Tensor, nonneg: Nonneg, blocks: list[tuple[slice, slice]]
) -> Iterator[tuple[slice, slice, Tensor]]:
    """``(images, rows, φ(F[images, rows]))`` per block, ``φ`` written into one reused buffer.

    The block a step yields is overwritten by the next one: use it before advancing.
    """
    first_images, first_rows = blocks[0]
    shape = (first_images.stop - first_images.start, first_rows.stop - first_rows.start)
    buffer = None if nonneg == "none" else F.new_empty(*shape, F.shape[-1])
    for images, rows in blocks:
        block = F[images, rows]
        if buffer is not None:
            block = nonneg_map_into(block, nonneg, buffer[:, : block.shape[1]])
        yield images, rows, block


def _block_buffer(F: Tensor, blocks: list[tuple[slice, slice]], width: int, dtype=None) -> Tensor:
    """A ``(images, rows, width)`` buffer the size of the first (largest) block."""
    images, rows = blocks[0]
    shape = (images.stop - images.start, rows.stop - rows.start, width)
    return F.new_empty(shape, dtype=F.dtype if dtype is None else dtype)


#: Rows per partial sum of :func:`_long_product`.
PARTIAL_ROWS = 128


def _long_product(A_t: Tensor, Bm: Tensor, acc: torch.dtype) -> Tensor:
    """``A_t @ Bm`` for a product whose inner dimension is a block's rows, returned in ``acc``.

    ``A_t (b, p, r)`` (e.g. a transposed row block ``Φᵀ``), ``Bm (b, r, q)``. The inner sum is
    cut into partial sums of :data:`PARTIAL_ROWS` rows, computed in the working dtype in one
    batched product and added in ``acc``. A float32 product that sums thousands of rows in one
    call is, on some BLAS kernels (MKL on AMD Zen 4), as far off as the SVD route's whole
    gradient error: ∂loss/∂F of tests/nn/test_ncuts_accuracy.py at m = 4096 was off by 3.1e-4
    (the SVD route: 1.5e-4), and is off by 2.2e-5 with partial sums, for about the same time.
    """
    b, d, r = A_t.shape
    q = r // PARTIAL_ROWS
    if A_t.dtype == acc or q < 2:
        return (A_t @ Bm).to(acc)
    cut = q * PARTIAL_ROWS
    A_parts = A_t[..., :cut].unflatten(-1, (q, PARTIAL_ROWS)).transpose(-3, -2)  # (b, q, d, c)
    B_parts = Bm[:, :cut].unflatten(-2, (q, PARTIAL_ROWS))  # (b, q, c, K)
    total = (A_parts @ B_parts).sum(-3, dtype=acc)  # (b, d, K)
    if cut < r:
        total += (A_t[..., cut:] @ Bm[:, cut:]).to(acc)
    return total


def _mean_degree(c: Tensor, dtype: torch.dtype, m: int) -> Tensor:
    """``mean(δ) = cᵀc/m`` (``1ᵀΦc = cᵀc``), float64 ``(B, 1)``: known after the first pass."""
    c = c.squeeze(-2)
    return (c * c.to(dtype).to(c.dtype)).sum(-1, keepdim=True) / m


class _GramEigh(torch.autograd.Function):
    """``F ↦ (Z, λ_k, d̃, spectrum)`` of the normalized low-rank affinity (module docstring)."""

    @staticmethod
    def forward(
        F: Tensor,
        K: int,
        nonneg: Nonneg,
        floor_rel: float,
        floor_abs: float | None,
        policy: DegeneracyPolicy,
        check: bool,
    ):
        B, m, d = F.shape
        dtype, acc = F.dtype, torch.float64
        blocks = list(_blocks(B, m, d))
        c = F.new_zeros(B, 1, d, dtype=acc)  # Φᵀ1: per-block sums accumulated in float64
        # with check, the finiteness of F rides on this pass: a NaN or ±inf makes its column
        # sum non-finite (φ may map −inf to 0, hence the sums of F itself unless φ = id)
        raw = F.new_zeros(B, 1, d, dtype=acc) if check and nonneg != "none" else None
        for ib, rows, Phi in _phi_blocks(F, nonneg, blocks):
            c[ib] += Phi.sum(-2, keepdim=True).to(acc)
            if raw is not None:
                raw[ib] += F[ib, rows].sum(-2, keepdim=True).to(acc)
        if check and not bool(torch.isfinite(c if raw is None else raw).all()):
            check_finite(F, "features")  # the exact test and message (or an overflowed sum)
        c_w = c.to(dtype).mT  # (B, d, 1)
        # the floor f = max(τ·mean(δ), τ_abs) needs only c, so δ and C share one pass
        floor_abs_value = absolute_degree_floor(dtype, floor_abs)
        floor = (floor_rel * _mean_degree(c, dtype, m)).clamp_min(floor_abs_value).to(dtype)
        degrees = F.new_empty(B, m, 1)
        C = F.new_zeros(B, d, d, dtype=acc)  # GᵀG from exact products, in float64
        G_buffer = _block_buffer(F, blocks, d)
        G_wide = None if dtype == acc else _block_buffer(F, blocks, d, acc)
        for ib, rows, Phi in _phi_blocks(F, nonneg, blocks):
            degree = torch.bmm(Phi, c_w[ib], out=degrees[ib, rows])  # δ = Φc
            s_r = torch.maximum(degree, floor[ib].unsqueeze(-1)).rsqrt_()
            G = torch.mul(Phi, s_r, out=G_buffer[:, : Phi.shape[1]])
            if G_wide is not None:  # exact float64 copies of the rounded float32 G
                G = G_wide[:, : G.shape[1]].copy_(G)
            C[ib].baddbmm_(G.mT, G)
        degrees = degrees.squeeze(-1)  # (B, m)
        floored = torch.maximum(degrees, floor)  # d̃
        s = floored.rsqrt().unsqueeze(-1)  # (B, m, 1)
        lam, V = torch.linalg.eigh(C)
        lam, V = lam.flip(-1), V.flip(-1)  # descending
        sigma_inv, _ = _spectral_factors(lam, K, _resolved(policy, dtype), _eps(dtype))
        W0 = (V[..., :K] * sigma_inv.unsqueeze(-2)).to(dtype)  # V_k Λ_k^-½, (B, d, K)
        Z = F.new_empty(B, m, K)
        for ib, rows, Phi in _phi_blocks(F, nonneg, blocks):
            torch.bmm(Phi, W0[ib], out=Z[ib, rows])
        Z.mul_(s)  # Z = G V_k Λ_k^-½
        # the sign convention of NCutsResult, applied here to Z and V_k together (every formula
        # of the backward holds for any signs of the pairs (vᵢ, zᵢ)), so no later pass is needed
        sign = column_signs(Z)  # (B, 1, K)
        Z.mul_(sign)
        V[..., :K] *= sign.to(acc)
        spectrum = lam[..., : min(m, d)].clamp_min(0).to(dtype)
        return Z, lam[..., :K].to(dtype), floored, spectrum, degrees, floor, c, lam, V

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        F, K, nonneg, floor_rel, floor_abs, policy, _ = inputs
        Z, _, floored, spectrum, degrees, floor, c, lam, V = output
        ctx.K, ctx.nonneg, ctx.floor_rel = K, nonneg, floor_rel
        ctx.floor_abs = absolute_degree_floor(F.dtype, floor_abs)
        ctx.policy = policy
        ctx.mark_non_differentiable(spectrum, degrees, floor, c, lam, V)
        ctx.save_for_backward(F, Z, floored, degrees, floor, c, lam, V)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, Z_bar, lam_bar, floored_bar, *_unused):
        F, Z, floored, degrees, floor, c, lam, V = ctx.saved_tensors
        K, nonneg = ctx.K, ctx.nonneg
        B, m, d = F.shape
        dtype, acc = F.dtype, torch.float64
        blocks = list(_blocks(B, m, d))
        Z_bar = torch.zeros_like(Z) if Z_bar is None else Z_bar
        lam_bar = Z.new_zeros(B, K) if lam_bar is None else lam_bar
        floored_bar = torch.zeros_like(floored) if floored_bar is None else floored_bar
        s = floored.rsqrt().unsqueeze(-1)  # (B, m, 1)
        # H = GᵀZ̄ = Φᵀ(s∘Z̄): its inner sums run over the m rows, so each block's product is
        # split into short partial sums (in the working dtype), which are added in float64
        sZ_bar = s * Z_bar
        H = F.new_zeros(B, d, K, dtype=acc)
        for ib, rows, Phi in _phi_blocks(F, nonneg, blocks):
            H[ib] += _long_product(Phi.mT, sZ_bar[ib, rows], acc)
        del sZ_bar
        # --- d × d algebra in float64
        sigma_inv, coupling = _spectral_factors(lam, K, _resolved(ctx.policy, dtype), _eps(dtype))
        lam_inv = sigma_inv * sigma_inv  # Λ_k⁻¹ (regularised), (B, K)
        V_K = V[..., :K]
        H_t = V.mT @ H  # H̃ = VᵀH, (B, d, K)
        # Ĉⱼᵢ = H̃ⱼᵢ/(λᵢ − λⱼ) (j ≠ i), Ĉᵢᵢ = −H̃ᵢᵢ/λᵢ
        C_hat = H_t * coupling.mT
        diag = torch.diagonal(H_t[..., :K, :], dim1=-2, dim2=-1)  # H̃ᵢᵢ, (B, K)
        C_hat[..., :K, :] += torch.diag_embed(-diag * lam_inv)
        P1 = (V @ C_hat) * sigma_inv.unsqueeze(-2)  # V Ĉ Λ_k^-½, (B, d, K)
        # E = Λ_k⁻¹(Hᵀ + ĈᵀΛVᵀ) + 2 diag(λ̄) Λ_k^½ V_kᵀ, (B, K, d)
        sigma_K = lam[..., :K].clamp_min(0).sqrt()
        E = lam_inv.unsqueeze(-1) * (H.mT + (C_hat.mT * lam.unsqueeze(-2)) @ V.mT)
        E = E + (2 * lam_bar.to(acc) * sigma_K).unsqueeze(-1) * V_K.mT
        # --- pass: Φ [P1 | V_k | Eᵀ] → Y, s̄, and the degree gradient's Φᵀ(·)
        right = torch.cat([P1, V_K, E.mT], dim=-1).to(dtype)  # (B, d, 3K)
        sigma_inv_w = sigma_inv.to(dtype).unsqueeze(-2)  # (B, 1, K)
        # torch.maximum routes the gradient to the larger argument (half each on ties)
        to_degree = torch.where(degrees > floor, 1.0, torch.where(degrees == floor, 0.5, 0.0)).to(
            dtype
        )  # (B, m)
        Y = torch.empty_like(Z)
        total = torch.empty_like(floored)  # ∂ℓ/∂d̃ including the path through s
        c_bar = F.new_zeros(B, 1, d, dtype=acc)  # Φᵀ(∂ℓ/∂δ), without the floor's share
        Q_buffer = _block_buffer(F, blocks, 3 * K)
        for ib, rows, Phi in _phi_blocks(F, nonneg, blocks):
            Q = torch.bmm(Phi, right[ib], out=Q_buffer[:, : Phi.shape[1]])  # (b, r, 3K)
            s_r = s[ib, rows]
            Y_r = torch.addcmul(Z_bar[ib, rows] * sigma_inv_w[ib], s_r, Q[..., :K], out=Y[ib, rows])
            s_bar = (Y_r * Q[..., K : 2 * K]).sum(-1) + (Z[ib, rows] * Q[..., 2 * K :]).sum(-1)
            # d̃ → s = d̃^-½: ∂s/∂d̃ = −½ s³
            t = torch.sub(
                floored_bar[ib, rows], 0.5 * s_bar * s_r.squeeze(-1) ** 3, out=total[ib, rows]
            )
            c_bar[ib] += _long_product((t * to_degree[ib, rows]).unsqueeze(-2), Phi, acc)
        # the floor f = max(τ·mean(δ), τ_abs) takes the rest; clamp_min passes at >= τ_abs
        floor_share = (total * (1 - to_degree)).sum(-1, keepdim=True, dtype=acc)  # (B, 1)
        passes = (ctx.floor_rel * _mean_degree(c, dtype, m)) >= ctx.floor_abs
        mean_bar = ctx.floor_rel * floor_share * passes / m  # (B, 1), per node of the mean
        degree_bar = total * to_degree + mean_bar.to(dtype)  # ∂ℓ/∂δ, (B, m)
        c_bar = c_bar + mean_bar.unsqueeze(-1) * c  # Φᵀδ̄, (B, 1, d)
        # --- pass: F̄ = φ′(F) ∘ ([sY | sZ | δ̄ | 1] [V_kᵀ; E; cᵀ; (Φᵀδ̄)ᵀ])
        right = torch.cat([V_K.mT, E, c, c_bar], dim=-2).to(dtype)  # (B, 2K + 2, d)
        left_buffer = _block_buffer(F, blocks, 2 * K + 2)
        left_buffer[..., -1] = 1.0  # the column of ones is never overwritten
        grad = torch.empty(B, m, d, dtype=dtype, device=F.device)
        for ib, rows in blocks:
            s_r = s[ib, rows]
            left = left_buffer[:, : s_r.shape[1]]
            left[..., :K] = s_r * Y[ib, rows]
            left[..., K : 2 * K] = s_r * Z[ib, rows]
            left[..., 2 * K] = degree_bar[ib, rows]
            out = torch.bmm(left, right[ib], out=grad[ib, rows])
            nonneg_backward_(out, F[ib, rows], nonneg)
        return grad, None, None, None, None, None, None


def gram_spectrum(
    features: Tensor,
    K: int,
    *,
    nonneg: str,
    degree_floor: float,
    degree_floor_abs: float | None,
    policy: DegeneracyPolicy | None,
    check: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top-``K`` eigenpairs of ``D̃^-½ φ(F)φ(F)ᵀ D̃^-½`` for raw ``features (B, m, d)``.

    ``φ`` (``nonneg``) is applied inside, block by block. Returns ``Z (B, m, K)`` and
    ``λ (B, K)`` (descending), the floored degrees ``(B, m)`` and the detached descending
    spectrum ``(B, min(m, d))``, as :func:`~._lowrank.lowrank_spectrum` does. ``check``:
    ``features`` must be finite (ValueError of :func:`~matbackprop.validation.check_finite`),
    tested on the column sums of the first pass (one host sync, no extra pass).
    """
    policy = _DEFAULT_POLICY if policy is None else policy
    Z, lam, floored, spectrum, *_ = _GramEigh.apply(
        features, K, nonneg, degree_floor, degree_floor_abs, policy, check
    )
    return Z, lam, floored, spectrum
