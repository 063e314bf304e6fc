"""Degeneracy policies: how (near-)repeated eigenvalues couple in the backward pass.

The eigenvector part of the eigh backward (Ionescu et al. 2015, Prop. 2, eq. for X = UΣUᵀ)
multiplies by ``K̃ᵢⱼ = 1/(σᵢ − σⱼ)``, and the SVD backward by ``Kᵢⱼ = 1/(σᵢ² − σⱼ²)``. Both are
infinite at repeated eigenvalues, where eigenvectors are not unique (a gauge freedom: any
rotation inside the eigenspace is as good). A :class:`DegeneracyPolicy` decides what the backward
uses instead. Matrix *functions* never need it: they go through the Daleckii–Krein form
(:mod:`matbackprop.linalg._divided_differences`), which is exact at ties.

Policies
--------
``"zero"`` (default)
    ``K̃ᵢⱼ = 0`` when ``|σᵢ − σⱼ| <= rtol · max(|σ|)`` (per matrix), else ``1/(σᵢ − σⱼ)``. This
    is *exact* for every loss that is invariant to rotations inside a degenerate eigenspace
    for all nearby matrices too: losses that see the eigenvectors only through projectors onto
    blocks separated from the rest by a gap (e.g. the top-k projector ``ZZᵀ`` of normalized
    cuts) and the eigenvalues only through symmetric functions of each tied group. For such
    losses the antisymmetric part of ``UᵀŪ`` inside the block vanishes identically, so the true
    coupling is zero. (For the SVD, invariance to *joint* rotations of tied singular vectors,
    e.g. the polar factor ``U_k V_kᵀ``, is also covered: only the ``1/(σⱼ − σᵢ)`` factor of
    ``Kᵢⱼ = 1/(σᵢ² − σⱼ²)`` is dropped, the finite ``1/(σᵢ + σⱼ)`` factor is kept.)
    Not covered: ``U f(Σ) Uᵀ`` with ``f`` splitting a tie -- it is invariant *at* the tie but
    its gradient is the limit ``f′(σ)``; use :func:`~matbackprop.linalg.spectral_function`.
``block`` (with ``"zero"``)
    For a loss of the projector onto the ``block`` largest eigen-/singular vectors (the top-k
    embedding of normalized cuts): pairs *straddling* that boundary are no gauge freedom, so
    they are dropped only at true ties (``64 eps``), not within ``rtol``; dropping them made
    the float32 gradient of the NCuts layer wrong by O(1) at a gap of 3e-5 (docs/numerics.md).
``"lorentzian"``
    ``K̃ᵢⱼ = (σᵢ − σⱼ) / ((σᵢ − σⱼ)² + β²)`` with ``β = broadening · max(|σ|)``: a smooth,
    biased but bounded regularisation (Liao et al., PRX 2019), for losses that are *not*
    gauge-invariant, where the true gradient is infinite.

Default tolerances (relative to the largest absolute eigenvalue of each matrix)
    float64: ``rtol = 1e-10``; float32: ``rtol = 1e-4``. Eigenvectors of a pair with relative
    gap ``g`` are only accurate to ``eps/g`` anyway; at these thresholds the amplified rounding
    noise ``eps/rtol`` stays below ``2e-6`` (float64) and ``1.2e-3`` (float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

_DEFAULT_RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}

#: Pairs straddling a policy's ``block`` boundary count as tied within ``64 eps`` of the
#: spectral scale: above it the kept coupling amplifies rounding by at most ``1/64``.
STRADDLE_ULPS = 64


def default_rtol(dtype: torch.dtype) -> float:
    """Per-dtype default degeneracy tolerance (relative to the spectral scale).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import default_rtol
    >>> default_rtol(torch.float32) > default_rtol(torch.float64)
    True
    """
    return _DEFAULT_RTOL.get(dtype, 1e-4)


@dataclass(frozen=True)
class DegeneracyPolicy:
    """How the eigh/SVD backward treats (near-)degenerate eigenvalue pairs.

    Parameters
    ----------
    mode : {"zero", "lorentzian"}
        ``"zero"`` drops the coupling of pairs within ``rtol`` (exact for gauge-invariant
        losses); ``"lorentzian"`` broadens ``1/d`` to ``d/(d² + β²)`` everywhere.
    rtol : float, optional
        Relative gap below which a pair counts as degenerate (``"zero"``). ``None`` takes the
        per-dtype default (1e-10 for float64, 1e-4 for float32).
    broadening : float, optional
        Relative Lorentzian width ``β / max|σ|`` (``"lorentzian"``). ``None`` takes the same
        per-dtype default as ``rtol``.
    block : int, optional
        The loss sees the eigenvectors only through the projector onto the ``block`` *largest*
        eigen-/singular values (e.g. the top-k embedding of normalized cuts). A pair that
        straddles that boundary is no gauge freedom: dropping its coupling makes the gradient
        wrong by O(1), keeping it costs the rounding noise ``eps/gap``. So under ``"zero"``
        such pairs are dropped only when tied to within :data:`STRADDLE_ULPS` ``· eps`` of the
        spectral scale (pairs inside the block, or both outside, still use ``rtol``).

    Raises
    ------
    ValueError
        For an unknown ``mode`` or a negative tolerance.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.linalg import DegeneracyPolicy, eigh
    >>> policy = DegeneracyPolicy("lorentzian", broadening=1e-12)
    >>> policy.mode
    'lorentzian'
    >>> A = torch.eye(3, dtype=torch.float64, requires_grad=True)   # a triple eigenvalue
    >>> lam, U = eigh(A, policy=policy)
    >>> (U[:, -1] ** 4).sum().backward()
    >>> bool(torch.isfinite(A.grad).all())
    True
    """

    mode: Literal["zero", "lorentzian"] = "zero"
    rtol: float | None = None
    broadening: float | None = None
    block: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("zero", "lorentzian"):
            raise ValueError(f"`mode` must be 'zero' or 'lorentzian', got {self.mode!r}")
        if self.block is not None and (
            isinstance(self.block, bool) or not isinstance(self.block, int) or self.block < 1
        ):
            raise ValueError(f"`block` must be a positive int or None, got {self.block!r}")
        for field in ("rtol", "broadening"):
            value = getattr(self, field)
            if value is not None and not value >= 0:
                raise ValueError(f"`{field}` must be a non-negative float, got {value!r}")

    def resolved_rtol(self, dtype: torch.dtype) -> float:
        return default_rtol(dtype) if self.rtol is None else float(self.rtol)

    def resolved_broadening(self, dtype: torch.dtype) -> float:
        return default_rtol(dtype) if self.broadening is None else float(self.broadening)

    def straddles(self, n: int, *, descending: bool, device: torch.device) -> Tensor | None:
        """``(n, n)`` mask of the index pairs on either side of the ``block`` boundary (the
        ``block`` largest values come first when ``descending``, last otherwise), or None."""
        if self.block is None or self.mode != "zero" or self.block >= n:
            return None
        index = torch.arange(n, device=device)
        top = index < self.block if descending else index >= n - self.block
        return top.unsqueeze(-1) != top.unsqueeze(-2)

    def inverse_gaps(
        self,
        gaps: Tensor,
        scale: Tensor,
        straddle: Tensor | None = None,
        *,
        eps: float | None = None,
    ) -> Tensor:
        """Regularised ``1 / gaps``, elementwise.

        Parameters
        ----------
        gaps : Tensor, shape (..., n, n)
            Differences such as ``σᵢ − σⱼ`` (eigh) or ``σᵢ² − σⱼ²`` (SVD). The diagonal is zero
            and always maps to zero.
        scale : Tensor, shape (..., 1, 1)
            Per-matrix scale of ``gaps`` (``max|σ|`` or ``max σ²``), already floored above 0.
        straddle : Tensor, optional
            Boolean mask (broadcastable to ``gaps``) of the pairs across a ``block`` boundary
            (:meth:`straddles`): under ``"zero"`` they are dropped only within
            ``STRADDLE_ULPS · eps · scale``.
        eps : float, optional
            The rounding unit of that tie test (default: of ``gaps.dtype``; a solver that
            decomposes in float64 what came from float32 data passes float32's).
        """
        if self.mode == "lorentzian":
            beta = self.resolved_broadening(gaps.dtype) * scale
            return gaps / (gaps * gaps + beta * beta).clamp_min(torch.finfo(gaps.dtype).tiny)
        tol = self.resolved_rtol(gaps.dtype) * scale
        if straddle is not None:  # pairs across the block boundary: only true ties
            unit = torch.finfo(gaps.dtype).eps if eps is None else eps
            tol = torch.where(straddle, STRADDLE_ULPS * unit * scale, tol)
        degenerate = gaps.abs() <= tol
        safe = torch.where(degenerate, torch.ones_like(gaps), gaps)
        return torch.where(degenerate, torch.zeros_like(gaps), 1.0 / safe)

    def inverse_values(self, values: Tensor, scale: Tensor) -> Tensor:
        """Regularised ``1 / values`` for singular values (``S⁻¹`` in the SVD backward).

        Values ``<= rtol · scale`` (numerically zero singular values, whose singular vectors are
        not unique) map to 0 under ``"zero"``; ``"lorentzian"`` broadens as for gaps.
        """
        return self.inverse_gaps(values, scale)


DEFAULT_POLICY = DegeneracyPolicy()


def spectral_scale(lam: Tensor) -> Tensor:
    """``max|λ|`` per matrix, shape ``(..., 1, 1)``, floored at the dtype's ``tiny``."""
    return lam.abs().amax(dim=-1, keepdim=True).unsqueeze(-1).clamp_min(torch.finfo(lam.dtype).tiny)
