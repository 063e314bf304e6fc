"""Dense route: full eigendecomposition of the ``m × m`` matrix ``M = D^-½ W D^-½``.

For a user-supplied affinity ``W`` (e.g. :func:`gaussian_affinity`), or ``W = FFᵀ`` formed
explicitly from features (to compare with the low-rank route). Uses
:func:`matbackprop.linalg.eigh` with the zero-coupling
:class:`~matbackprop.linalg.DegeneracyPolicy`:
exact for the gauge-invariant top-k projector loss even when ``M`` has a degenerate (e.g. zero,
rank-deficient) eigenvalue below ``λ_k``. Cost ``O(m³)`` time, ``O(m²)`` memory (about a dozen
``m × m`` buffers through the backward).
"""

from __future__ import annotations

import torch
from torch import Tensor

from matbackprop.linalg import DegeneracyPolicy, eigh

from ._affinity import floor_degrees
from ._lowrank import block_policy


def dense_spectrum(
    affinity: Tensor,
    K: int,
    *,
    degree_floor: float,
    degree_floor_abs: float | None,
    policy: DegeneracyPolicy | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Top-``K`` eigenpairs of ``D^-½ W D^-½`` for symmetric non-negative ``W (B, m, m)``.

    Returns ``Z (B, m, K)``, ``λ (B, K)`` (descending), the floored degrees ``(B, m)`` and the
    detached top ``min(K + 1, m)`` eigenvalues, descending (for the eigengap check).
    """
    m = affinity.shape[-1]
    degrees = floor_degrees(affinity.sum(dim=-1), degree_floor, degree_floor_abs)
    s = degrees.rsqrt()
    M = affinity * s.unsqueeze(-1) * s.unsqueeze(-2)
    lam_all, U = eigh(M, policy=block_policy(policy, K), check=False)  # ascending
    top = torch.arange(m - 1, m - 1 - K, -1, device=affinity.device)
    n_spec = min(K + 1, m)
    spectrum = lam_all.detach()[..., m - n_spec :].flip(-1)
    return U[..., top], lam_all[..., top], degrees, spectrum
