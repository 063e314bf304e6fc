"""k-means (Lloyd's algorithm) with k-means++ seeding, in torch, deterministic on CPU.

Used to discretize a spectral embedding into ``k`` segments (Ng, Jordan & Weiss 2002).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from matbackprop.validation import (
    check_finite,
    check_float_dtype,
    check_int,
    check_ndim,
    check_nonempty,
    check_number,
    require_tensor,
)


class KMeansResult(NamedTuple):
    """``labels (n,)`` long in ``[0, k)``, ``centers (k, p)``, ``inertia`` (scalar tensor).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import kmeans
    >>> X = torch.tensor([[0.0], [0.1], [5.0], [5.1]], dtype=torch.float64)
    >>> result = kmeans(X, 2)
    >>> result.labels
    tensor([0, 0, 1, 1])
    >>> result.centers.shape
    torch.Size([2, 1])
    >>> round(result.inertia.item(), 4)
    0.01
    """

    labels: Tensor
    centers: Tensor
    inertia: Tensor


def _squared_distances(X: Tensor, C: Tensor) -> Tensor:
    """``‖xᵢ − cⱼ‖²``, shape ``(n, k)``, clamped at 0."""
    d = (X * X).sum(-1, keepdim=True) - 2.0 * (X @ C.mT) + (C * C).sum(-1).unsqueeze(0)
    return d.clamp_min(0.0)


def _kmeans_plus_plus(X: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): next centre ``∝ D(x)²``."""
    n = X.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centers = [X[first]]
    d2 = (X - X[first]).square().sum(-1)
    for _ in range(1, k):
        weights = d2.detach().to("cpu", torch.float64)
        if float(weights.sum()) > 0:
            index = int(torch.multinomial(weights, 1, generator=generator))
        else:  # fewer distinct points than k: any point (its cluster may end up empty)
            index = int(torch.randint(n, (1,), generator=generator))
        centers.append(X[index])
        d2 = torch.minimum(d2, (X - X[index]).square().sum(-1))
    return torch.stack(centers)


def _lloyd(X: Tensor, C: Tensor, max_iter: int, tol: float) -> KMeansResult:
    k = C.shape[0]
    scale = float(X.square().sum(-1).mean()) or 1.0
    for _ in range(max_iter):
        dist = _squared_distances(X, C)
        min_dist, labels = dist.min(dim=-1)
        counts = torch.bincount(labels, minlength=k)
        sums = X.new_zeros(k, X.shape[1]).index_add(0, labels, X)
        new_C = sums / counts.clamp_min(1).unsqueeze(-1).to(X.dtype)
        empty = (counts == 0).nonzero().flatten()
        if empty.numel() > 0:  # re-seed empty clusters at the worst-fitted points
            far = min_dist.topk(empty.numel()).indices
            new_C[empty] = X[far]
        shift = float((new_C - C).square().sum())
        C = new_C
        if shift <= tol * scale:
            break
    min_dist, labels = _squared_distances(X, C).min(dim=-1)
    return KMeansResult(labels, C, min_dist.sum())


def kmeans(
    X: Tensor,
    k: int,
    *,
    restarts: int = 10,
    max_iter: int = 100,
    tol: float = 1e-10,
    seed: int = 0,
    generator: torch.Generator | None = None,
) -> KMeansResult:
    """k-means clustering: minimise ``Σᵢ ‖xᵢ − c_{ℓ(i)}‖²`` (Lloyd, k-means++ seeding, restarts).

    Parameters
    ----------
    X : Tensor, shape (n, p)
        Points, float32/float64, any device (computation stays on it).
    k : int
        Number of clusters, ``1 <= k <= n``.
    restarts : int
        Independent k-means++ initialisations; the lowest inertia wins (first on ties).
    max_iter : int
        Lloyd iterations per restart.
    tol : float
        Stop when the squared centre shift is ``<= tol · mean ‖x‖²``.
    seed : int
        Seed of a fresh CPU :class:`torch.Generator` (ignored when ``generator`` is given).
    generator : torch.Generator, optional
        CPU generator for the seeding; results are deterministic given its state (on CPU).

    Returns
    -------
    KMeansResult
        ``labels (n,)``, ``centers (k, p)``, ``inertia`` (sum of squared distances).

    Raises
    ------
    ValueError
        On a malformed or non-finite ``X``, ``k`` outside ``[1, n]``, or bad options.

    Notes
    -----
    Empty clusters are re-seeded at the points farthest from their centres. Cost
    ``O(restarts · max_iter · n k p)``.

    References
    ----------
    Lloyd, "Least squares quantization in PCM", 1982. Arthur & Vassilvitskii, "k-means++: the
    advantages of careful seeding", SODA 2007.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import kmeans
    >>> X = torch.tensor([[0.0, 0.0], [0.0, 0.2], [4.0, 4.0], [4.2, 4.0]], dtype=torch.float64)
    >>> result = kmeans(X, 2, seed=0)
    >>> bool(result.labels[0] == result.labels[1]), bool(result.labels[0] != result.labels[2])
    (True, True)
    """
    X = require_tensor(X, "X")
    check_float_dtype(X, "X")
    check_ndim(X, "X", 2, "(n, p)")
    check_nonempty(X, "X", "(n, p)")
    check_finite(X, "X")
    k = check_int(k, "k")
    if k > X.shape[0]:
        raise ValueError(f"`k` must be <= the number of points n = {X.shape[0]}, got {k}")
    restarts = check_int(restarts, "restarts")
    max_iter = check_int(max_iter, "max_iter")
    tol = check_number(tol, "tol", minimum=0)
    if generator is None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"`seed` must be an int, got {seed!r}")
        generator = torch.Generator(device="cpu").manual_seed(seed)
    elif not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(f"`generator` must be a CPU torch.Generator, got {generator!r}")
    X = X.detach()
    best = _lloyd(X, _kmeans_plus_plus(X, k, generator), max_iter, tol)
    for _ in range(restarts - 1):
        result = _lloyd(X, _kmeans_plus_plus(X, k, generator), max_iter, tol)
        if float(result.inertia) < float(best.inertia):
            best = result
    return best
