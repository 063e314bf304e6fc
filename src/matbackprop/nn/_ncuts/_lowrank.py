"""Low-rank route: the top-k eigenvectors of ``M = D^-½ FFᵀ D^-½`` without any ``m × m`` matrix.

With ``G = D^-½ F`` (``m × d``), ``M = GGᵀ``: its eigenvectors are the left singular vectors of
``G`` and its eigenvalues the squared singular values. Degrees come from ``d = F (Fᵀ 1)``. Cost
``O(m d²)`` time and ``O(m d)`` memory, forward and backward.

Two solvers, the same function with the same matrix-backpropagation gradient (Ionescu et al.
2015, Prop. 2; the degeneracy policy acts on singular-value gaps in both):

``"svd"``
    thin SVD ``G = U Σ Vᵀ`` by :func:`matbackprop.linalg.svd`, ``Z = U[:, :k]``, ``λ = σ²``;
    plain autograd around it (the non-negativity map, the degrees and ``G`` are ``m × d``
    tensors of their own).
``"gram"``
    ``GᵀG = V Λ Vᵀ`` (``d × d``, accumulated and decomposed in float64), ``Z = G V_k Λ_k^-½``, and
    the SVD's backward written in the ``d × d`` basis, all fused into a few streaming passes
    over the features (:mod:`._gram`): no ``m × d`` temporary, forward or backward.

``"auto"`` (default) takes ``"gram"`` for ``m >= GRAM_MIN_ROWS_PER_COLUMN · d`` and ``"svd"``
below, and ``"svd"`` under ``torch.func`` transforms (the fused solver has no vmap rule).
Accuracy: for float32 features the Gram matrix is accumulated from exact products in float64,
so its eigenvectors carry the SVD's error ``eps/(σₖ − σₖ₊₁)`` rather than the squared
``eps λ₁/(λₖ − λₖ₊₁)`` of a float32 ``GᵀG``; measured float32-vs-float64 gradient errors of the
two solvers agree (docs/numerics.md, "Normalized cuts: solvers"). For float64 features the
products are float64 too; the Gram route's error is then ``eps₆₄ λ₁/(λₖ − λₖ₊₁)``, below 1e-11
for any gap the eigengap check lets through (``sqrt(eps₆₄)``).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from torch import Tensor

from matbackprop.linalg import DegeneracyPolicy, svd

from ._affinity import floor_degrees, lowrank_degrees

Solver = Literal["auto", "svd", "gram"]
SOLVER_CHOICES = ("auto", "svd", "gram")

#: ``"auto"`` takes the Gram solver from ``m >= 2d`` on (measured crossover: below, the SVD of
#: the thin ``m × d`` matrix is as fast; see docs/numerics.md).
GRAM_MIN_ROWS_PER_COLUMN = 2


def choose_solver(solver: str, m: int, d: int) -> str:
    """The solver ``"auto"`` stands for at ``m`` nodes and ``d`` features (host values only)."""
    if solver != "auto":
        return solver
    if torch._C._are_functorch_transforms_active():
        return "svd"
    return "gram" if m >= GRAM_MIN_ROWS_PER_COLUMN * d else "svd"


def block_policy(policy: DegeneracyPolicy | None, K: int) -> DegeneracyPolicy:
    """``policy`` (default ``DegeneracyPolicy()``) for a loss of the top-``K`` embedding: its
    ``block`` is ``K``, so pairs straddling the top-``K`` boundary keep their coupling unless
    truly tied (the Gram solver does the same)."""
    return dataclasses.replace(policy or DegeneracyPolicy(), block=K)


def lowrank_spectrum(
    features: Tensor,
    K: int,
    *,
    degree_floor: float,
    degree_floor_abs: float | None,
    policy: DegeneracyPolicy | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top-``K`` eigenpairs of ``D^-½ FFᵀ D^-½`` by the thin SVD, for ``features (B, m, d) >= 0``.

    Returns ``Z (B, m, K)`` and ``λ (B, K)`` (descending), the floored degrees ``(B, m)`` and
    the detached descending spectrum ``(B, min(m, d))`` (for the eigengap check).
    """
    degrees = floor_degrees(lowrank_degrees(features), degree_floor, degree_floor_abs)
    G = features * degrees.rsqrt().unsqueeze(-1)  # D^-½ F, (B, m, d)
    U, S, _ = svd(G, policy=block_policy(policy, K), check=False)
    lam = S * S  # (B, min(m, d)), descending
    return U[..., :K], lam[..., :K], degrees, lam.detach()
