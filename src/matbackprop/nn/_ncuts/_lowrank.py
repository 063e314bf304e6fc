"""Low-rank route: the top-k eigenvectors of ``M = D^-½ FFᵀ D^-½`` without any ``m × m`` matrix.

With ``G = D^-½ F`` (``m × d``), ``M = GGᵀ``: its eigenvectors are the left singular vectors of
``G`` and its eigenvalues the squared singular values. Degrees come from ``d = F (Fᵀ 1)``. Cost
``O(m d²)`` time and ``O(m d)`` memory, forward and backward.

Two solvers, both with the matrix-backpropagation gradient of :mod:`matbackprop.linalg`:

``"svd"`` (default)
    thin SVD ``G = U Σ Vᵀ``, ``Z = U[:, :k]``, ``λ = σ²``. The backward is
    :func:`matbackprop.linalg.svd`'s (Ionescu et al. 2015, Prop. 2), whose D-term
    ``(I − UUᵀ) Ū Σ⁻¹ Vᵀ`` carries the part of the gradient orthogonal to ``range(G)`` (the
    ``m − d`` zero eigenvalues of ``M`` never appear explicitly).
``"gram"``
    ``GᵀG = V Λ Vᵀ`` by :func:`matbackprop.linalg.eigh` (``d × d``), then ``Z = G V_k Λ_k^-½``.
    One ``m d²`` product instead of an SVD; it squares the condition number, which costs
    nothing for well-separated top eigenvalues but loses accuracy when ``λ_k`` is tiny.

Measured (float32, d = 64, k = 8, 2 CPU cores; ``benchmarks/bench_ncuts.py`` and a float64
reference): ``"gram"`` is about 1.5–2× faster, but its float32 gradient w.r.t. ``F`` was up to
10× further from the float64 one (relative error 1.6e-3 vs 1.4e-4 at m = 65536). Both are far
inside the time budget (< 1 s at m = 65536), so ``"svd"`` is the default. On an oversubscribed
CPU (more runnable threads than cores) MKL's multi-threaded SVD degrades most: at m = 65536 on
2 cores with one competing busy process, 1.25 s median (``"svd"``) vs 0.24 s (``"gram"``) vs
0.18 s (``"svd"`` with ``torch.set_num_threads(1)``), against 0.11 s unloaded.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from matbackprop.linalg import DegeneracyPolicy, eigh, svd

from ._affinity import floor_degrees, lowrank_degrees

Solver = Literal["svd", "gram"]
SOLVER_CHOICES = ("svd", "gram")


def lowrank_spectrum(
    features: Tensor,
    K: int,
    *,
    degree_floor: float,
    degree_floor_abs: float | None,
    solver: Solver,
    policy: DegeneracyPolicy | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top-``K`` eigenpairs of ``D^-½ FFᵀ D^-½`` for non-negative ``features (B, m, d)``.

    Returns ``Z (B, m, K)`` and ``λ (B, K)`` (descending), the floored degrees ``(B, m)`` and
    the detached descending spectrum ``(B, min(m, d))`` (for the eigengap check).
    """
    m, d = features.shape[-2:]
    degrees = floor_degrees(lowrank_degrees(features), degree_floor, degree_floor_abs)
    G = features * degrees.rsqrt().unsqueeze(-1)  # D^-½ F, (B, m, d)
    if solver == "svd":
        U, S, _ = svd(G, policy=policy, check=False)
        lam = S * S  # (B, min(m, d)), descending
        return U[..., :K], lam[..., :K], degrees, lam.detach()
    # "gram": eigenpairs of the d × d matrix GᵀG (ascending), top K reversed.
    lam_all, V = eigh(G.mT @ G, policy=policy, check=False)
    top = torch.arange(d - 1, d - 1 - K, -1, device=features.device)
    lam, V_K = lam_all[..., top], V[..., top]  # (B, K), (B, d, K)
    tiny = torch.finfo(features.dtype).tiny
    Z = (G @ V_K) * lam.clamp_min(tiny).rsqrt().unsqueeze(-2)
    spectrum = lam_all.detach().flip(-1)[..., : min(m, d)].clamp_min(0.0)
    return Z, lam, degrees, spectrum
