"""The normalized-cuts layer: spectral embedding of a graph with a trainable affinity.

Given node features ``F`` (``m × d``, non-negative) the affinity is ``W = FFᵀ``; with degrees
``D = diag(W1)`` (floored), the layer returns the top-``k`` eigenvectors ``Z`` of::

    M = D^-½ W D^-½,          M Z = Z diag(λ₁ >= … >= λ_k)

the continuous relaxation of the ``k``-way normalized cut (Shi & Malik 2000; Bach & Jordan
2006, Sec. 2), as in the normalized-cuts layer of Ionescu, Vantzos & Sminchisescu (2015, Sec. 5).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from matbackprop.validation import (
    check_finite,
    check_float_dtype,
    check_ndim,
    check_nonempty,
    check_nonnegative,
    check_symmetric,
    require_tensor,
)

from ._affinity import check_nonneg_input, nonnegative_features
from ._dense import dense_spectrum
from ._gram import gram_spectrum
from ._lowrank import choose_solver, lowrank_spectrum
from ._options import AFFINITY_OPTIONS, NCutsOptions
from ._result import (
    NCutsResult,
    check_eigengaps,
    default_eigengap_rtol,
    finalize,
    relative_eigengaps,
)
from ._validation import check_num_segments, resolve_k


def _finish(
    Z: Tensor,
    lam: Tensor,
    degrees: Tensor,
    spectrum: Tensor,
    k: Tensor,
    opts: NCutsOptions,
    *,
    signs_fixed: bool = False,
    all_columns_kept: bool = False,
) -> NCutsResult:
    m = Z.shape[-2]
    gap = relative_eigengaps(spectrum, k, m)
    if opts.check_eigengap:
        rtol = default_eigengap_rtol(Z.dtype) if opts.eigengap_rtol is None else opts.eigengap_rtol
        check_eigengaps(gap, k, rtol, opts.strict, Z.dtype)
    return finalize(
        Z, lam, degrees, k, gap, signs_fixed=signs_fixed, all_columns_kept=all_columns_kept
    )


def normalized_cuts(
    features: Tensor,
    k: int | Tensor | list[int],
    *,
    num_segments: int | None = None,
    options: NCutsOptions | None = None,
    **overrides,
) -> NCutsResult:
    """Normalized-cuts spectral embedding of node features, ``W = FFᵀ``.

    ``F ← φ(F) >= 0`` (``nonneg``), ``d = W1 = F(Fᵀ1)``, ``d̃ = max(d, τ·mean(d), τ_abs)``,
    ``M = D̃^-½ W D̃^-½``; returns the top-``k`` eigenvectors of ``M`` (Ionescu et al. 2015,
    Sec. 5; Shi & Malik 2000).

    Parameters
    ----------
    features : Tensor, shape (B, m, d)
        Node features (pixels of a feature map, superpixels, graph nodes), float32/float64.
    k : int, or sequence / 1-D integer tensor of length B
        Number of eigenvectors per image, ``1 <= k <= min(m, d)``; e.g.
        :func:`segment_counts` of the ground truth. Different ``k`` per image: ``Z`` has
        ``K = max(k)`` columns and those past each image's ``k`` are zero.
    num_segments : int, optional
        An upper bound on ``k`` known on the host (the number of label values, as for
        :func:`segment_counts`). With a tensor ``k`` it sets ``K = min(num_segments, m, d)``
        columns without reading ``k`` back (``int(k.max())`` is a host sync otherwise).
    options : NCutsOptions, optional
        route (``"lowrank"`` or ``"dense"``), nonneg, degree_floor, degree_floor_abs, solver,
        eigengap_rtol, check_eigengap, strict, policy, check: see
        :class:`~matbackprop.nn.NCutsOptions`. Default ``NCutsOptions()``.
    **overrides
        Any of those options by name (replacing the fields of ``options``).

    Returns
    -------
    NCutsResult
        ``Z (B, m, K)``, ``eigenvalues (B, K)``, ``degrees (B, m)`` (floored), ``k (B,)``,
        ``eigengap (B,)``.

    Raises
    ------
    ValueError
        On malformed or non-finite ``features``, negative features with ``nonneg="none"``,
        ``k`` outside ``[1, min(m, d)]``, invalid options (``route="affinity"`` included: use
        :func:`normalized_cuts_affinity`), or (``strict``) a vanishing eigengap.

    Warns
    -----
    EigengapWarning
        When an image's top-``k`` eigenspace is ill-defined (not ``strict``).

    Notes
    -----
    ``k <= d``: ``M = GGᵀ`` has rank ``<= d``, so for ``m > d`` its eigenvalue 0 has
    multiplicity ``>= m − d``; a top-``k`` subspace with ``k > rank`` would be an arbitrary
    slice of that null space (not a function of ``F``), and the thin SVD has only ``min(m, d)``
    vectors. Degenerate zero eigenvalues below ``λ_k`` are harmless: the gradient is exact.

    Gradients flow into ``F`` through both ``G`` and the degrees (and through the relative
    floor where it is active). Cost of the low-rank route: ``O(Bmd²)`` time, ``O(Bmd)`` memory;
    the dense route: ``O(Bm³)`` time, ``O(Bm²)`` memory.

    *Solver* (``solver="auto"``, the default): the Gram solver (``d × d`` products accumulated
    and decomposed in float64, fused streaming backward) for ``m >= 2d``, the thin SVD of
    ``D̃^-½F`` below (and under ``torch.func``). Both have the float32 error ``eps/gap`` of the
    SVD, not the ``eps λ₁/gap`` of a float32 Gram matrix (see
    :class:`~matbackprop.nn.NCutsOptions` and docs/numerics.md for the measured figures).

    *Host syncs.* With ``check=False``, ``check_eigengap=False`` and an ``int`` ``k`` (or a
    tensor ``k`` with ``num_segments=``), forward and backward read nothing back to the host.

    References
    ----------
    Ionescu, Vantzos & Sminchisescu, "Training Deep Networks with Structured Layers by Matrix
    Backpropagation", ICCV 2015 (arXiv:1509.07838), Sec. 5 (normalized-cuts layer).
    Shi & Malik, "Normalized Cuts and Image Segmentation", TPAMI 2000.
    Bach & Jordan, "Learning Spectral Clustering", NIPS 2003 / JMLR 7, 2006.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import normalized_cuts
    >>> F = torch.rand(2, 50, 8, dtype=torch.float64)
    >>> result = normalized_cuts(F, 3, route="dense")
    >>> result.Z.shape, result.eigenvalues.shape
    (torch.Size([2, 50, 3]), torch.Size([2, 3]))
    """
    opts = NCutsOptions.resolve(options, overrides)
    if opts.route == "affinity":
        raise ValueError(
            "`route` must be one of 'lowrank' | 'dense' for features, got 'affinity'; "
            "use normalized_cuts_affinity for a given affinity"
        )
    features = require_tensor(features, "features")
    check_float_dtype(features, "features")
    check_ndim(features, "features", 3, "(B, m, d)")
    check_nonempty(features, "features", "(B, m, d)")
    B, m, d = features.shape
    k_vec, K = resolve_k(
        k,
        B,
        min(m, d),
        features.device,
        f"min(m, d) = min({m}, {d}): M = D^-½FFᵀD^-½ has rank <= d, and eigenvectors past its "
        "rank span an arbitrary part of the null space, so the top-k subspace is undefined",
        columns=check_num_segments(num_segments),
        check=opts.check,
    )
    floors: dict[str, Any] = {
        "degree_floor": opts.degree_floor,
        "degree_floor_abs": opts.degree_floor_abs,
    }
    solver = choose_solver(opts.solver, m, d) if opts.route == "lowrank" else None
    if opts.check and solver != "gram":  # the Gram solver checks on its first pass
        check_finite(features, "features")
    if solver == "gram":  # the non-negativity map is fused into the solver's passes
        if opts.check:
            check_nonneg_input(features, opts.nonneg)
        spectrum = gram_spectrum(
            features, K, nonneg=opts.nonneg, policy=opts.policy, check=opts.check, **floors
        )
        # the solver fixes the signs itself; an int k keeps every column
        return _finish(
            *spectrum, k_vec, opts, signs_fixed=True, all_columns_kept=isinstance(k, int)
        )
    F = nonnegative_features(features, opts.nonneg, check=opts.check)
    if solver == "svd":
        spectrum = lowrank_spectrum(F, K, policy=opts.policy, **floors)
    else:
        spectrum = dense_spectrum(F @ F.mT, K, policy=opts.policy, **floors)
    return _finish(*spectrum, k_vec, opts)


def normalized_cuts_affinity(
    affinity: Tensor,
    k: int | Tensor | list[int],
    *,
    num_segments: int | None = None,
    options: NCutsOptions | None = None,
    **overrides,
) -> NCutsResult:
    """Normalized-cuts spectral embedding of a given affinity matrix (dense route).

    ``d = W1``, ``d̃ = max(d, τ·mean(d), τ_abs)``, ``M = D̃^-½ W D̃^-½ = U Λ Uᵀ`` by
    :func:`matbackprop.linalg.eigh`; returns the top-``k`` eigenvectors (Shi & Malik 2000).

    Parameters
    ----------
    affinity : Tensor, shape (B, m, m)
        Symmetric, non-negative ``W`` (e.g. :func:`gaussian_affinity`), float32/float64.
    k : int, or sequence / 1-D integer tensor of length B
        Eigenvectors per image, ``1 <= k <= m`` (see :func:`normalized_cuts` for batching).
    num_segments : int, optional
        An upper bound on ``k`` known on the host (see :func:`normalized_cuts`).
    options : NCutsOptions, optional
        Its degree_floor, degree_floor_abs, eigengap_rtol, check_eigengap, strict, policy and
        check apply (route, nonneg and solver concern features and are not used).
    **overrides
        Those options by name; with ``check``: validate ``affinity`` (dtype, shape, finite,
        symmetric to ``sqrt(eps)`` relative, non-negative; a few host syncs, ``O(m²)``).

    Returns
    -------
    NCutsResult

    Raises
    ------
    ValueError
        On malformed, non-finite, non-symmetric or negative ``affinity``, ``k`` outside
        ``[1, m]``, invalid options, or (``strict``) a vanishing eigengap.
    TypeError
        For an override that does not apply to an affinity (``nonneg``, ``solver``, ``route``).

    Notes
    -----
    ``O(Bm³)`` time and ``O(Bm²)`` memory. The zero-coupling degeneracy policy makes the
    gradient exact for projector losses even when ``M`` has repeated eigenvalues below ``λ_k``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.functional import normalized_cuts_affinity
    >>> W = torch.tensor([[1.0, 1.0, 0.0, 0.0],
    ...               [1.0, 1.0, 0.0, 0.0],
    ...               [0.0, 0.0, 1.0, 1.0],
    ...               [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64).unsqueeze(0)
    >>> result = normalized_cuts_affinity(W, 2, check_eigengap=False)
    >>> result.Z.shape
    torch.Size([1, 4, 2])
    >>> result.eigenvalues
    tensor([[1.0000, 1.0000]], dtype=torch.float64)
    """
    opts = NCutsOptions.resolve(options, overrides, allowed=AFFINITY_OPTIONS)
    affinity = require_tensor(affinity, "affinity")
    check_float_dtype(affinity, "affinity")
    check_ndim(affinity, "affinity", 3, "(B, m, m)")
    check_nonempty(affinity, "affinity", "(B, m, m)")
    if affinity.shape[-1] != affinity.shape[-2]:
        raise ValueError(f"`affinity` must have shape (B, m, m), got {tuple(affinity.shape)}")
    B, m, _ = affinity.shape
    k_vec, K = resolve_k(
        k,
        B,
        m,
        affinity.device,
        f"the number of nodes m = {m}",
        columns=check_num_segments(num_segments),
        check=opts.check,
    )
    if opts.check:
        check_finite(affinity, "affinity")
        check_symmetric(affinity, "affinity")
        check_nonnegative(affinity, "affinity", "; normalized cuts needs affinities >= 0")
    spectrum = dense_spectrum(
        affinity,
        K,
        degree_floor=opts.degree_floor,
        degree_floor_abs=opts.degree_floor_abs,
        policy=opts.policy,
    )
    return _finish(*spectrum, k_vec, opts)
