"""The Bach–Jordan projector loss between a spectral embedding and a ground-truth partition.

For an embedding ``Z`` (``m × k``, orthonormal columns: the top-k eigenvectors of
``M = D^-½ W D^-½``) and a partition with indicator matrix ``E`` (``m × r``)::

    J = ½ ‖ZZᵀ − Π(D^½E)‖²_F          (Bach & Jordan 2006; Ionescu et al. 2015, Sec. 5)

where ``Π(A) = A(AᵀA)⁻¹Aᵀ``. For two orthogonal projectors ``‖P − Q‖² = rank P + rank Q −
2‖ZᵀY‖²`` with ``Y`` an orthonormal basis of ``range(D^½E)``. The columns of ``D^½E`` have
disjoint supports, so ``Y`` is closed form: ``Y_{i,j} = √dᵢ / √vol_j`` for node ``i`` in segment
``j`` (``vol_j = Σ_{i∈j} dᵢ``), hence::

    J = ½ (k + r) − Σ_j ‖Σ_{i∈j} √dᵢ Zᵢ‖² / vol_j

an ``O(mk)`` scatter-add: no ``m × m`` matrix (``k`` is computed as ``‖ZᵀZ‖²``, ``O(mk²)``).
``D`` enters through ``Y``, so the gradient flows into the degrees as well as into ``Z``.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from matbackprop.linalg import projector
from matbackprop.validation import (
    check_choice,
    check_finite,
    check_float_dtype,
    check_int_dtype,
    check_ndim,
    check_nonempty,
    require_tensor,
)

from ._result import NCutsResult
from ._validation import check_num_segments, resolve_k

Reduction = Literal["mean", "sum", "none"]


def segment_counts(
    labels: Tensor,
    ignore_index: int | None = None,
    *,
    num_segments: int | None = None,
    check: bool = True,
) -> Tensor:
    """Number of distinct labels per image, ignoring ``ignore_index``: the default ``k``.

    Parameters
    ----------
    labels : Tensor, shape (B, m)
        Integer label per node; any non-negative values (they need not be consecutive).
    ignore_index : int, optional
        Label of unlabeled nodes (not counted).
    num_segments : int, optional
        The number of label values: labels lie in ``[0, num_segments)`` (besides
        ``ignore_index``). Known on the host, it makes the count free of host syncs; without it
        the bound is read back once (``labels.max()``).
    check : bool
        Validate the label values (non-negative; below ``num_segments``): host syncs.

    Returns
    -------
    Tensor, shape (B,), long

    Raises
    ------
    ValueError
        If ``labels`` is not an integer tensor of shape ``(B, m)`` or has negative labels
        (other than ``ignore_index``) or labels ``>= num_segments`` (with ``check``).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import segment_counts
    >>> labels = torch.tensor([[0, 0, 1, 1], [3, 3, 3, -1]])
    >>> segment_counts(labels, ignore_index=-1)
    tensor([2, 1])
    """
    labels = _check_labels(labels, None, ignore_index, num_segments, check)
    table = _segments(labels, ignore_index, num_segments)
    return table.per_image(table.counts > 0).long()


def _check_labels(
    labels: object,
    shape: tuple[int, int] | None,
    ignore_index: int | None,
    num_segments: int | None,
    check: bool,
) -> Tensor:
    labels = require_tensor(labels, "labels")
    check_int_dtype(labels, "labels")
    want = "(B, m)" if shape is None else f"(B, m) = {shape}"
    if labels.ndim != 2 or (shape is not None and tuple(labels.shape) != shape):
        raise ValueError(f"`labels` must have shape {want}, got {tuple(labels.shape)}")
    check_nonempty(labels, "labels", "(B, m)")
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int)
    ):
        raise ValueError(f"`ignore_index` must be an int or None, got {ignore_index!r}")
    check_num_segments(num_segments)
    labels = labels.long()
    if check:
        valid = labels if ignore_index is None else labels[labels != ignore_index]
        if valid.numel() and bool((valid < 0).any()):
            raise ValueError(
                f"`labels` must be non-negative (or ignore_index={ignore_index}), got "
                f"{int(valid.min())}"
            )
        if num_segments is not None and valid.numel() and bool((valid >= num_segments).any()):
            raise ValueError(
                f"`labels` must be < num_segments = {num_segments}, got {int(valid.max())}"
            )
    return labels


class _SegmentTable(NamedTuple):
    """Segments of a batch as bins: node ``i`` of image ``b`` is in bin ``node_bin[b, i]``.

    The last bin collects the ignored nodes and is dropped from every per-segment quantity.
    """

    node_bin: Tensor  # (B·m,) long
    bin_image: Tensor  # (n_bins − 1,) long: the image of each (real) bin
    counts: Tensor  # (n_bins − 1,): nodes per bin (a bin is a segment when > 0)
    batch: int

    def scatter(self, values: Tensor) -> Tensor:
        """Sum of ``values (B·m, ...)`` per real bin, shape ``(n_bins − 1, ...)``."""
        n_bins = self.bin_image.shape[0] + 1
        out = values.new_zeros(n_bins, *values.shape[1:]).index_add(0, self.node_bin, values)
        return out[:-1]

    def per_image(self, per_bin: Tensor) -> Tensor:
        """Sum of ``per_bin (n_bins − 1,)`` per image, shape ``(B,)``."""
        dtype = per_bin.dtype if per_bin.is_floating_point() else torch.float64
        out = torch.zeros(self.batch, dtype=dtype, device=per_bin.device)
        return out.index_add(0, self.bin_image, per_bin.to(dtype))


def _segments(labels: Tensor, ignore_index: int | None, num_segments: int | None) -> _SegmentTable:
    """Bins of the segments: ``image · S + label`` with ``S`` label values per image.

    ``S = num_segments`` (no host sync), else ``labels.max() + 1`` (one sync); labels spread far
    beyond the number of nodes (e.g. ids like 10⁶ without ``num_segments``) are first relabelled
    compactly (``torch.unique``, its own sync), so the bins stay ``O(B·m)``.
    """
    B, m = labels.shape
    device = labels.device
    valid = None if ignore_index is None else labels != ignore_index
    safe = labels if valid is None else torch.where(valid, labels, torch.zeros_like(labels))
    image = torch.arange(B, device=device).unsqueeze(-1)  # (B, 1)
    if num_segments is None:
        span = int(safe.max()) + 1
        if span > m:
            keys = (image * span + safe).reshape(-1)
            if valid is not None:  # ignored nodes must not create a segment of their own
                keys = torch.where(valid.reshape(-1), keys, keys.new_full((), -1))
            unique_keys, inverse = torch.unique(keys, return_inverse=True)
            real = unique_keys >= 0
            first_real = int((~real).sum())
            n_real = unique_keys.shape[0] - first_real
            node_bin = torch.where(inverse >= first_real, inverse - first_real, n_real)
            bin_image = unique_keys[first_real:] // span
            return _table(node_bin, bin_image, B)
        num_segments = span
    node_bin = image * num_segments + safe  # (B, m)
    dump = B * num_segments
    if valid is not None:
        node_bin = torch.where(valid, node_bin, torch.full_like(node_bin, dump))
    bin_image = torch.arange(B, device=device).repeat_interleave(num_segments, output_size=dump)
    return _table(node_bin.reshape(-1), bin_image, B)


def _table(node_bin: Tensor, bin_image: Tensor, batch: int) -> _SegmentTable:
    ones = torch.ones(node_bin.shape[0], dtype=torch.float64, device=node_bin.device)
    counts = ones.new_zeros(bin_image.shape[0] + 1).index_add(0, node_bin, ones)[:-1]
    return _SegmentTable(node_bin, bin_image, counts, batch)


def _unpack(
    Z_or_result: Tensor | NCutsResult,
    labels: Tensor,
    degrees: Tensor | None,
    k: int | Tensor | list[int] | None,
    ignore_index: int | None,
    num_segments: int | None,
    reduction: str,
    check: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    check_choice(reduction, "reduction", ("mean", "sum", "none"))
    from_result = isinstance(Z_or_result, NCutsResult)
    if from_result:
        if degrees is not None or k is not None:
            raise ValueError(
                "`degrees` and `k` must be None when an NCutsResult is given (it carries both)"
            )
        Z, degrees, k = Z_or_result.Z, Z_or_result.degrees, Z_or_result.k  # type: ignore[union-attr]
    else:
        Z = require_tensor(Z_or_result, "Z")
    check_float_dtype(Z, "Z")
    check_ndim(Z, "Z", 3, "(B, m, K)")
    check_nonempty(Z, "Z", "(B, m, K)")
    B, m, K = Z.shape
    if degrees is None:
        raise ValueError("`degrees` (B, m) must be given with a plain `Z` tensor, got None")
    degrees = require_tensor(degrees, "degrees")
    if degrees.dtype != Z.dtype:
        raise ValueError(f"`degrees` must have the dtype of `Z` ({Z.dtype}), got {degrees.dtype}")
    if tuple(degrees.shape) != (B, m):
        raise ValueError(f"`degrees` must have shape (B, m) = {(B, m)}, got {tuple(degrees.shape)}")
    k_vec, _ = resolve_k(
        K if k is None else k, B, K, Z.device, f"the {K} columns of `Z`", columns=K, check=check
    )
    labels = _check_labels(labels, (B, m), ignore_index, num_segments, check).to(Z.device)
    if check:
        check_finite(Z, "Z")
        check_finite(degrees, "degrees")
        if bool((degrees <= 0).any()):
            raise ValueError(f"`degrees` must be positive, got minimum {float(degrees.min()):.3g}")
    if not from_result:  # a result's columns past each image's k are zero already
        keep = (torch.arange(K, device=Z.device) < k_vec.unsqueeze(-1)).to(Z.dtype)  # (B, K)
        Z = Z * keep.unsqueeze(-2)
    return Z, degrees, k_vec, labels


def _reduce(J: Tensor, k: Tensor, reduction: str, normalize: bool) -> Tensor:
    if normalize:
        J = J / k.to(J.dtype)
    if reduction == "mean":
        return J.mean()
    if reduction == "sum":
        return J.sum()
    return J


def ncuts_loss(
    Z_or_result: Tensor | NCutsResult,
    labels: Tensor,
    *,
    degrees: Tensor | None = None,
    k: int | Tensor | list[int] | None = None,
    ignore_index: int | None = None,
    num_segments: int | None = None,
    reduction: Reduction = "mean",
    normalize: bool = False,
    check: bool = True,
) -> Tensor:
    """Bach–Jordan projector loss ``J = ½‖ZZᵀ − Π(D^½E)‖²_F`` without ``m × m`` matrices.

    ``J = ½(‖ZᵀZ‖² + r) − Σ_j ‖Σ_{i∈j} √dᵢ Zᵢ‖² / vol_j`` with ``r`` ground-truth segments
    and ``vol_j = Σ_{i∈j} dᵢ`` (see the module docstring; ``‖ZᵀZ‖² = k`` for orthonormal ``Z``):
    no ``m × m`` matrix is formed. The identity holds for any ``Z``, so this equals
    :func:`ncuts_loss_dense` as a function (values and gradients), not only on orthonormal ``Z``.

    Parameters
    ----------
    Z_or_result : NCutsResult or Tensor, shape (B, m, K)
        Output of :class:`NormalizedCuts` (carries ``Z``, ``degrees`` and per-image ``k``), or
        an embedding ``Z`` with orthonormal first ``k`` columns per image.
    labels : Tensor, shape (B, m), integer
        Ground-truth segment of each node; arbitrary non-negative ints (relabelled per image).
    degrees : Tensor, shape (B, m), optional
        Positive degrees ``d`` (required with a plain ``Z``; must be None with a result).
    k : int or sequence / tensor of length B, optional
        Columns of ``Z`` used per image (plain ``Z`` only); default all ``K``.
    ignore_index : int, optional
        Label of unlabeled nodes. They are dropped from ``E`` (zero rows of ``Y``) *and* the
        comparison is restricted to labeled nodes ``L``::

            J = ½ ‖(ZZᵀ − YYᵀ)_{LL}‖² = ½ (‖Z_LᵀZ_L‖² + r) − ‖Z_LᵀY_L‖²

        ``YYᵀ`` stays an orthogonal projector (rank ``r``, supported on ``L``), but ``Z_LZ_Lᵀ``
        is not one; without the restriction the loss would push ``Z`` to vanish on the
        unlabeled nodes instead of ignoring them. Their degrees still shape ``M``.
    num_segments : int, optional
        The number of label values: labels lie in ``[0, num_segments)`` (besides
        ``ignore_index``). Known on the host, it makes the loss free of host syncs (with
        ``check=False``); without it the bound is read back once (``labels.max()``).
    reduction : {"mean", "sum", "none"}
        Over images; ``"none"`` returns shape ``(B,)``.
    normalize : bool
        Divide each image's loss by its ``k``. ``J ∈ [0, (k + r)/2]``, so with ``k = r``
        (the default through :func:`segment_counts`) the normalized loss lies in ``[0, 1]``.
    check : bool
        Validate finiteness of ``Z``/``degrees``, positivity of ``degrees``, the label values
        and ``k`` (host syncs).

    Returns
    -------
    Tensor
        Scalar, or ``(B,)`` for ``reduction="none"``.

    Raises
    ------
    ValueError
        On shape/dtype mismatches, ``labels`` not of shape ``(B, m)``, negative labels,
        non-positive degrees, ``k`` outside ``[1, K]``, or an unknown ``reduction``.

    Notes
    -----
    Invariant to the signs (indeed any rotation) of the columns of ``Z`` and to a joint
    permutation of the nodes. ``Z``'s masked columns (past each image's ``k``) are ignored.
    Cost ``O(mK²)`` time, ``O(mK)`` memory: segments are bins ``image · S + label`` summed
    by ``index_add``; with ``num_segments`` and ``check=False`` no host sync at all.

    References
    ----------
    Bach & Jordan, "Learning Spectral Clustering", NIPS 2003; "Learning Spectral Clustering,
    With Application To Speech Separation", JMLR 7 (2006): the distance between the
    eigen-subspace and the partition used to learn the similarity matrix.
    Ionescu, Vantzos & Sminchisescu, ICCV 2015 (arXiv:1509.07838), Sec. 5.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn import NormalizedCuts
    >>> from matbackprop.nn.functional import ncuts_loss
    >>> labels = torch.tensor([[0, 0, 0, 1, 1, 1]])
    >>> F = torch.nn.functional.one_hot(labels, 2).double()   # features that match the partition
    >>> round(ncuts_loss(NormalizedCuts()(F, labels=labels), labels).item(), 6)
    0.0
    >>> F = torch.rand(1, 6, 2, dtype=torch.float64, requires_grad=True)
    >>> loss = ncuts_loss(NormalizedCuts()(F, labels=labels), labels)
    >>> loss.backward()
    >>> F.grad.shape
    torch.Size([1, 6, 2])
    """
    Z, degrees, k_vec, labels = _unpack(
        Z_or_result, labels, degrees, k, ignore_index, num_segments, reduction, check
    )
    table = _segments(labels, ignore_index, num_segments)
    labeled = None if ignore_index is None else (labels != ignore_index).to(Z.dtype)
    if torch._C._are_functorch_transforms_active():  # the fused function has no vmap rule
        J = _projector_distance(Z, degrees, table, labeled)
    else:
        J = _ProjectorDistance.apply(Z, degrees, table, labeled)[0]
    return _reduce(J, k_vec, reduction, normalize)


def _projector_terms(
    Z: Tensor, degrees: Tensor, table: _SegmentTable, labeled: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``J (B,) = ½(‖Z_LᵀZ_L‖² + r) − Σ_j ‖Σ_{i∈j} √dᵢ Zᵢ‖² / vol_j`` in plain torch ops, with
    the pieces its gradient reuses: ``S (bins, K)``, ``vol (bins,)`` (1 for empty bins),
    ``‖S_j‖²/vol_j (bins,)`` and ``Γ = Z_LᵀZ_L (B, K, K)``."""
    B, m, K = Z.shape
    # Y's columns: Σ_{i∈j} √dᵢ Zᵢ per segment j, and vol_j (ignored nodes fall in no bin).
    sums = table.scatter((Z * degrees.sqrt().unsqueeze(-1)).reshape(B * m, K))  # (bins, K)
    present = table.counts > 0
    # empty bins: 0/1 instead of 0/0 (their sums are 0, and nothing flows back through them)
    volumes = table.scatter(degrees.reshape(B * m))  # (bins,)
    volumes = torch.where(present, volumes, torch.ones_like(volumes))
    per_bin = sums.square().sum(-1) / volumes
    r = table.per_image(present).to(Z.dtype)  # ‖YYᵀ‖² = rank = r
    # ‖Z_LZ_Lᵀ‖² = ‖Z_LᵀZ_L‖² (= k for orthonormal columns and no ignored node); computed
    # rather than assumed, so the formula is exact for any Z and its gradient matches the
    # dense reference even off the Stiefel manifold. O(mK²).
    Z_L = Z if labeled is None else Z * labeled.unsqueeze(-1)
    gram = Z_L.mT @ Z_L
    J = 0.5 * (gram.square().sum(dim=(-2, -1)) + r) - table.per_image(per_bin)
    return J, sums, volumes, per_bin, gram


def _projector_distance(
    Z: Tensor, degrees: Tensor, table: _SegmentTable, labeled: Tensor | None
) -> Tensor:
    """``J (B,)`` of :func:`_projector_terms`, differentiable by plain autograd."""
    return _projector_terms(Z, degrees, table, labeled)[0]


class _ProjectorDistance(torch.autograd.Function):
    """:func:`_projector_distance` with its gradient in one fused backward.

    With ``Sⱼ = Σ_{i∈j} √dᵢ Zᵢ``, ``Γ = Z_LᵀZ_L`` and ``J̄`` per image::

        ∂J/∂Zᵢ = 2 J̄ ((Z_L Γ)ᵢ − √dᵢ Sⱼ/volⱼ),
        ∂J/∂dᵢ = J̄ (‖Sⱼ‖²/volⱼ² − Zᵢ·Sⱼ/(√dᵢ volⱼ))        (node i in segment j)

    and 0 for an ignored node's degree. Plain autograd would make about twice as many passes
    over the ``(B, m, K)`` embedding. A double backward (``create_graph=True``) differentiates
    :func:`_projector_distance` itself.
    """

    @staticmethod
    def forward(Z: Tensor, degrees: Tensor, table: _SegmentTable, labeled: Tensor | None):
        J, sums, volumes, per_bin, gram = _projector_terms(Z, degrees, table, labeled)
        return J, sums / volumes.unsqueeze(-1), per_bin / volumes, gram

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        Z, degrees, table, labeled = inputs
        _, sums_over_volume, per_bin_over_volume, gram = output
        ctx.table = table
        ctx.has_labeled = labeled is not None
        ctx.mark_non_differentiable(sums_over_volume, per_bin_over_volume, gram)
        ctx.save_for_backward(Z, degrees, labeled, sums_over_volume, per_bin_over_volume, gram)

    @staticmethod
    def backward(ctx: Any, J_bar, *_unused):
        Z, degrees, labeled, sums_over_volume, per_bin_over_volume, gram = ctx.saved_tensors
        table = ctx.table
        labeled = labeled if ctx.has_labeled else None
        if torch.is_grad_enabled():  # create_graph: differentiate the plain formula instead
            J = _projector_distance(Z, degrees, table, labeled)
            Z_bar, degrees_bar = torch.autograd.grad(J, (Z, degrees), J_bar, create_graph=True)
            return Z_bar, degrees_bar, None, None
        B, m, K = Z.shape
        node_bin = table.node_bin
        # per node: Sⱼ/volⱼ and ‖Sⱼ‖²/volⱼ², zero for the ignored nodes' bin (the last)
        S_g = torch.cat([sums_over_volume, sums_over_volume.new_zeros(1, K)])
        S_g = S_g.index_select(0, node_bin).view(B, m, K)
        b_g = torch.cat([per_bin_over_volume, per_bin_over_volume.new_zeros(1)])
        b_g = b_g.index_select(0, node_bin).view(B, m)
        sqrt_d = degrees.sqrt()
        Z_L = Z if labeled is None else Z * labeled.unsqueeze(-1)
        w = J_bar.to(Z.dtype)
        degrees_bar = (b_g - (Z * S_g).sum(-1) / sqrt_d) * w.unsqueeze(-1)
        Z_bar = torch.baddbmm(S_g.mul_(sqrt_d.unsqueeze(-1)), Z_L, gram, beta=-1.0)
        return Z_bar.mul_((2 * w).view(B, 1, 1)), degrees_bar, None, None


def ncuts_loss_dense(
    Z_or_result: Tensor | NCutsResult,
    labels: Tensor,
    *,
    degrees: Tensor | None = None,
    k: int | Tensor | list[int] | None = None,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
    normalize: bool = False,
) -> Tensor:
    """Reference ``½‖ZZᵀ − Π(D^½E)‖²_F`` with explicit ``m × m`` projectors (tests, small m).

    Same arguments and semantics as :func:`ncuts_loss`; ``Π`` comes from
    :func:`matbackprop.linalg.projector` (differentiable in ``D``). With ``ignore_index`` the
    difference is masked to labeled rows and columns. ``O(Bm²)`` memory.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn import NormalizedCuts
    >>> from matbackprop.nn.functional import ncuts_loss, ncuts_loss_dense
    >>> _ = torch.manual_seed(0)
    >>> labels = torch.randint(0, 3, (2, 30))
    >>> result = NormalizedCuts()(torch.rand(2, 30, 6, dtype=torch.float64), labels=labels)
    >>> torch.allclose(ncuts_loss_dense(result, labels), ncuts_loss(result, labels))
    True
    """
    Z, degrees, k_vec, labels = _unpack(
        Z_or_result, labels, degrees, k, ignore_index, None, reduction, True
    )
    B, m, _ = Z.shape
    losses = []
    for b in range(B):
        Zb = Z[b, :, : int(k_vec[b])]
        valid = labels[b] != ignore_index if ignore_index is not None else None
        if valid is None:
            valid = torch.ones(m, dtype=torch.bool, device=Z.device)
        _, segment = torch.unique(labels[b][valid], return_inverse=True)
        indicator = Z.new_zeros(m, int(segment.max()) + 1 if segment.numel() else 0)
        if indicator.shape[1] > 0:
            indicator[valid.nonzero().flatten(), segment] = 1.0
            Pi = projector(degrees[b].sqrt().unsqueeze(-1) * indicator)
        else:
            Pi = Z.new_zeros(m, m)
        mask = (valid.unsqueeze(-1) & valid.unsqueeze(-2)).to(Z.dtype)
        losses.append(0.5 * ((Zb @ Zb.mT - Pi) * mask).square().sum())
    return _reduce(torch.stack(losses), k_vec, reduction, normalize)
