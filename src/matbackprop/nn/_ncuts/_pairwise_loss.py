"""A local counterpart of the normalized-cuts loss: supervise the affinity of node pairs directly.

For non-negative node features ``F`` (the ones whose Gram matrix ``W = FFᵀ`` feeds the
normalized-cuts layer) the cosine affinity of a pair is::

    aᵢⱼ = ⟨Fᵢ, Fⱼ⟩ / (‖Fᵢ‖ ‖Fⱼ‖) ∈ [0, 1]

and the loss is the binary cross-entropy against "same segment" targets ``yᵢⱼ``::

    ℓ = − mean_{(i,j)} wᵢⱼ [ yᵢⱼ log aᵢⱼ + (1 − yᵢⱼ) log(1 − aᵢⱼ) ]

over a given set of pairs, typically adjacent superpixels (a *local* objective: each term
involves two nodes, unlike the Bach–Jordan loss whose gradient flows through the
eigendecomposition of the whole graph). Pairs with an ignored node are dropped; ``balance``
weighs the same/different classes equally. This is the counterpart that isolates what the global
layer adds (issue 10 §1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from matbackprop.validation import check_finite, check_float_dtype, check_int_dtype, require_tensor


def pairwise_affinity_loss(
    features: Tensor,
    pairs: Tensor,
    labels: Tensor,
    *,
    ignore_index: int | None = None,
    balance: bool = True,
    weights: Tensor | None = None,
    eps: float = 1e-6,
    check: bool = True,
) -> Tensor:
    """Binary cross-entropy of cosine affinities of node pairs against same-segment targets.

    Parameters
    ----------
    features : Tensor, shape (m, d)
        Non-negative node features (e.g. after softplus), float32/float64.
    pairs : Tensor, shape (P, 2), integer
        Node pairs ``(i, j)`` (e.g. adjacent superpixels).
    labels : Tensor, shape (m,), integer
        Ground-truth segment of each node.
    ignore_index : int, optional
        Label of nodes left out (their pairs do not count).
    balance : bool
        Weigh the positive and negative pairs so that each class has total weight ½.
    weights : Tensor, shape (P,), optional
        Extra non-negative weight per pair (e.g. boundary length).
    eps : float
        Affinities are clamped to ``[eps, 1 − eps]`` inside the logarithms.
    check : bool
        Validate values (non-negative, finite features; labels and pairs in range).

    Returns
    -------
    Tensor
        Scalar loss (0 when no valid pair is left).

    Raises
    ------
    ValueError
        On bad shapes or dtypes, negative or non-finite features, or indices out of range.
    """
    features = require_tensor(features, "features")
    pairs = require_tensor(pairs, "pairs")
    labels = require_tensor(labels, "labels")
    check_float_dtype(features, "features")
    check_int_dtype(pairs, "pairs")
    check_int_dtype(labels, "labels")
    if features.ndim != 2:
        raise ValueError(f"`features` must have shape (m, d), got {tuple(features.shape)}")
    m = features.shape[0]
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"`pairs` must have shape (P, 2), got {tuple(pairs.shape)}")
    if labels.shape != (m,):
        raise ValueError(f"`labels` must have shape ({m},), got {tuple(labels.shape)}")
    if weights is not None and tuple(weights.shape) != (pairs.shape[0],):
        raise ValueError(
            f"`weights` must have shape ({pairs.shape[0]},), got {tuple(weights.shape)}"
        )
    if check:
        check_finite(features, "features")
        if bool((features < 0).any()):
            raise ValueError("`features` must be non-negative (apply softplus or relu first)")
        if pairs.numel() and (int(pairs.min()) < 0 or int(pairs.max()) >= m):
            raise ValueError(
                f"`pairs` must index nodes in [0, {m}), got {int(pairs.min())}..{int(pairs.max())}"
            )
    pairs = pairs.long().to(features.device)
    labels = labels.long().to(features.device)
    i, j = pairs[:, 0], pairs[:, 1]
    keep = torch.ones_like(i, dtype=torch.bool)
    if ignore_index is not None:
        keep = (labels[i] != ignore_index) & (labels[j] != ignore_index)
    unit = features / features.norm(dim=1, keepdim=True).clamp_min(torch.finfo(features.dtype).tiny)
    a = (unit[i] * unit[j]).sum(dim=1).clamp(eps, 1.0 - eps)  # (P,)
    y = (labels[i] == labels[j]).to(features.dtype)
    w = keep.to(features.dtype)
    if weights is not None:
        w = w * weights.to(features)
    if balance:
        pos = (w * y).sum()
        neg = (w * (1 - y)).sum()
        w = w * torch.where(y > 0, 0.5 / pos.clamp_min(1e-12), 0.5 / neg.clamp_min(1e-12))
        # a class with no pair gets weight 0; the other carries the whole loss
        w = w / w.sum().clamp_min(1e-12)
    else:
        w = w / w.sum().clamp_min(1e-12)
    bce = -(y * a.log() + (1 - y) * (1 - a).log())
    return (w * bce).sum()
