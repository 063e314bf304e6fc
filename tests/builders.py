"""Known-answer builders and tolerances shared by all tests (matrices, conv features, region masks,
superpixel maps).

Every builder returns symmetric matrices with a *known* spectrum, so tests can state exactly
what is degenerate: ``with_spectrum(λ) = Q diag(λ) Qᵀ`` with a seeded random orthogonal ``Q``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

F64 = torch.float64


def random_orthogonal(n: int, *, seed: int = 0, batch: tuple[int, ...] = (), dtype=F64) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(*batch, n, n, generator=g, dtype=dtype)
    Q, R = torch.linalg.qr(X)
    return Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)


def with_spectrum(lam, *, seed: int = 0, dtype=F64) -> Tensor:
    """``Q diag(λ) Qᵀ`` for a seeded random orthogonal ``Q`` (batched over leading dims of λ)."""
    lam = torch.as_tensor(lam, dtype=dtype)
    Q = random_orthogonal(lam.shape[-1], seed=seed, batch=tuple(lam.shape[:-1]), dtype=dtype)
    A = (Q * lam.unsqueeze(-2)) @ Q.mT
    return 0.5 * (A + A.mT)


def random_spd(n: int, *, seed: int = 0, batch: tuple[int, ...] = (), dtype=F64) -> Tensor:
    """Well-conditioned SPD with spread spectrum in [0.5, 2.5]."""
    g = torch.Generator().manual_seed(seed)
    lam = 0.5 + 2.0 * torch.rand(*batch, n, generator=g, dtype=dtype)
    return with_spectrum(lam, seed=seed + 1, dtype=dtype)


def random_symmetric(n: int, *, seed: int = 0, batch: tuple[int, ...] = (), dtype=F64) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(*batch, n, n, generator=g, dtype=dtype)
    return 0.5 * (X + X.mT)


def identity(n: int, *, dtype=F64) -> Tensor:
    return torch.eye(n, dtype=dtype)


def repeated(n: int, k: int, *, value: float = 1.0, seed: int = 0, dtype=F64) -> Tensor:
    """SPD with eigenvalue ``value`` repeated ``k`` times, the rest distinct in [2, 3]."""
    rest = torch.linspace(2.0, 3.0, n - k, dtype=dtype)
    return with_spectrum(
        torch.cat([torch.full((k,), value, dtype=dtype), rest]), seed=seed, dtype=dtype
    )


def rank_deficient_factor(n: int, d: int, *, seed: int = 0, dtype=F64) -> Tensor:
    """``F`` of shape ``(n, d)`` with ``n < d``: ``FᵀF`` has ``d − n`` zero eigenvalues."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype) / d**0.5


def rank_deficient(n: int, d: int, eps: float, *, seed: int = 0, dtype=F64) -> Tensor:
    """``FᵀF + εI`` (d × d): eigenvalue ``ε`` repeated ``d − n`` times."""
    F = rank_deficient_factor(n, d, seed=seed, dtype=dtype)
    return F.mT @ F + eps * torch.eye(d, dtype=dtype)


def near_degenerate(gap: float, n: int = 5, *, seed: int = 0, dtype=F64) -> Tensor:
    """SPD whose two smallest eigenvalues are 1 and 1 + gap."""
    lam = torch.cat(
        [torch.tensor([1.0, 1.0 + gap], dtype=dtype), torch.linspace(2, 3, n - 2, dtype=dtype)]
    )
    return with_spectrum(lam, seed=seed, dtype=dtype)


def scaled(scale: float, n: int = 5, *, seed: int = 0, dtype=F64) -> Tensor:
    """``scale · random_spd``: tiny (1e-6) and huge (1e6) eigenvalue scales."""
    return scale * random_spd(n, seed=seed, dtype=dtype)


def tolerance(dtype: torch.dtype, n: int, norm: float = 1.0, *, factor: float = 1.0) -> float:
    """Absolute tolerance ``factor · 32 · n · eps · max(1, norm)`` for forward comparisons.

    Backward-stable eigensolvers give errors ``O(n eps ‖A‖)``; 32 covers the constants of
    LAPACK's ``syevd`` and of the reconstruction ``U f(Σ) Uᵀ``.
    """
    return factor * 32 * n * float(torch.finfo(dtype).eps) * max(1.0, norm)


def sym_param(fn):
    """Wrap ``fn(A)`` as ``fn(sym(X))``: gradcheck perturbs entries one at a time."""
    return lambda X, *args: fn(0.5 * (X + X.mT), *args)


# ----------------------------------------------------------------------------- layers


def conv_features(B=2, C=6, H=4, W=5, *, seed=0, dtype=F64) -> Tensor:
    """Seeded Gaussian conv features ``(B, C, H, W)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, H, W, generator=g, dtype=dtype)


def region_masks(B=2, H=4, W=5, *, dtype=F64) -> Tensor:
    """Four regions per image: 3 pixels, 1 pixel, a soft full-image mask, and a half image."""
    masks = torch.zeros(B, 4, H, W, dtype=dtype)
    masks[:, 0, 0, :3] = 1.0  # 3 pixels (< C)
    masks[:, 1, 2, 2] = 1.0  # single pixel
    g = torch.Generator().manual_seed(99)
    masks[:, 2] = 0.1 + torch.rand(B, H, W, generator=g, dtype=dtype)  # soft, full support
    masks[:, 3, : H // 2] = 1.0  # half image (10 pixels)
    return masks


def random_superpixels(seed: int, H: int = 18, W: int = 22, S: int = 14) -> torch.Tensor:
    """A Voronoi partition (connected cells), relabelled 0 .. S'-1."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(S, 2, generator=g) * torch.tensor([H, W])
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    d = (torch.stack([ys, xs], -1).reshape(-1, 1, 2) - centres).square().sum(-1)
    from skimage.measure import label

    cells = d.argmin(1).reshape(H, W).numpy()
    # pixel-sampled Voronoi cells can fall apart: one superpixel per connected piece
    pieces = label(cells, background=-1, connectivity=1)
    _, idx = np.unique(pieces, return_inverse=True)
    return torch.from_numpy(idx.reshape(H, W).astype(np.int64))
