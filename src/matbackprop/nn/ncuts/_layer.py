"""The normalized-cuts layer: spectral embedding of a graph with a trainable affinity.

Given node features ``F`` (``m × d``, non-negative) the affinity is ``W = FFᵀ``; with degrees
``D = diag(W1)`` (floored), the layer returns the top-``k`` eigenvectors ``Z`` of::

    M = D^-½ W D^-½,          M Z = Z diag(λ₁ >= … >= λ_k)

the continuous relaxation of the ``k``-way normalized cut (Shi & Malik 2000; Bach & Jordan
2006, Sec. 2), as in the normalized-cuts layer of Ionescu, Vantzos & Sminchisescu (2015, Sec. 5).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from matbackprop.linalg import DegeneracyPolicy

from ._affinity import DEFAULT_DEGREE_FLOOR, NONNEG_CHOICES, Nonneg, nonnegative_features
from ._dense import dense_spectrum
from ._loss import segment_counts
from ._lowrank import SOLVER_CHOICES, Solver, lowrank_spectrum
from ._result import (
    NCutsResult,
    check_eigengaps,
    default_eigengap_rtol,
    finalize,
    relative_eigengaps,
)
from ._validation import (
    check_choice,
    check_finite,
    check_float,
    check_ndim,
    check_nonempty,
    check_nonnegative,
    check_nonnegative_float,
    check_symmetric,
    require_tensor,
    resolve_k,
)

Route = Literal["lowrank", "dense", "affinity"]
ROUTE_CHOICES = ("lowrank", "dense", "affinity")


def _check_options(
    degree_floor: float,
    degree_floor_abs: float | None,
    eigengap_rtol: float | None,
    policy: DegeneracyPolicy | None,
) -> None:
    check_nonnegative_float(degree_floor, "degree_floor")
    if degree_floor_abs is not None:
        check_nonnegative_float(degree_floor_abs, "degree_floor_abs", positive=True)
    if eigengap_rtol is not None:
        check_nonnegative_float(eigengap_rtol, "eigengap_rtol")
    if policy is not None and not isinstance(policy, DegeneracyPolicy):
        raise ValueError(f"`policy` must be a DegeneracyPolicy, got {type(policy).__name__}")


def _finish(
    Z: Tensor,
    lam: Tensor,
    degrees: Tensor,
    spectrum: Tensor,
    k: Tensor,
    *,
    eigengap_rtol: float | None,
    check_eigengap: bool,
    strict: bool,
) -> NCutsResult:
    m = Z.shape[-2]
    gap = relative_eigengaps(spectrum, k, m)
    if check_eigengap:
        rtol = default_eigengap_rtol(Z.dtype) if eigengap_rtol is None else eigengap_rtol
        check_eigengaps(gap, k, rtol, strict)
    return finalize(Z, lam, degrees, k, gap)


def normalized_cuts(
    features: Tensor,
    k: int | Tensor | list[int],
    *,
    route: Literal["lowrank", "dense"] = "lowrank",
    nonneg: Nonneg = "relu",
    degree_floor: float = DEFAULT_DEGREE_FLOOR,
    degree_floor_abs: float | None = None,
    solver: Solver = "svd",
    eigengap_rtol: float | None = None,
    check_eigengap: bool = True,
    strict: bool = False,
    policy: DegeneracyPolicy | None = None,
    check: bool = True,
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
    route : {"lowrank", "dense"}
        ``"lowrank"`` (default): thin SVD of ``G = D̃^-½F``, never forms an ``m × m`` matrix,
        ``O(md²)``. ``"dense"``: forms ``W = FFᵀ`` and runs the full ``eigh`` of ``M``,
        ``O(m³)`` (for comparison and small graphs).
    nonneg : {"relu", "softplus", "square", "none"}
        Non-negativity map ``φ`` applied to ``features`` first (the affinity must be
        non-negative for ``M`` to be a normalized affinity). Default ``"relu"``, idempotent when
        the model already ends in a ReLU/softplus. ``"none"`` requires ``features >= 0``.
    degree_floor : float
        Relative floor ``τ >= 0``: ``d̃ᵢ = max(dᵢ, τ·mean(d))`` per image (default 1e-4), so
        nodes with (near-)zero features do not blow up ``D^-½``. Differentiable.
    degree_floor_abs : float, optional
        Absolute floor ``τ_abs > 0``; default: the dtype's smallest normal number (only prevents
        a division by zero).
    solver : {"svd", "gram"}
        Low-rank solver: thin SVD of ``G`` (default, accurate) or ``eigh`` of ``GᵀG``
        (see :mod:`._lowrank`). Ignored by the dense route.
    eigengap_rtol : float, optional
        Threshold of the eigengap check, default ``sqrt(eps)`` of the dtype.
    check_eigengap : bool
        Check ``(λ_k − λ_{k+1}) / λ₁ >= eigengap_rtol`` per image at its own ``k`` (one host
        sync); a failure warns with :class:`EigengapWarning`, or raises with ``strict``.
    strict : bool
        Raise ``ValueError`` instead of warning on a vanishing eigengap.
    policy : DegeneracyPolicy, optional
        Degeneracy policy of the SVD/eigh backward; default zero coupling (exact for losses that
        depend on ``Z`` only through ``ZZᵀ``, e.g. :func:`ncuts_loss`).
    check : bool
        Validate ``features`` (dtype, shape, finiteness; one host sync). ``k`` is always checked.

    Returns
    -------
    NCutsResult
        ``Z (B, m, K)``, ``eigenvalues (B, K)``, ``degrees (B, m)`` (floored), ``k (B,)``,
        ``eigengap (B,)``.

    Raises
    ------
    ValueError
        On malformed or non-finite ``features``, negative features with ``nonneg="none"``,
        ``k`` outside ``[1, min(m, d)]``, unknown options, or (``strict``) a vanishing eigengap.

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

    References
    ----------
    Ionescu, Vantzos & Sminchisescu, "Training Deep Networks with Structured Layers by Matrix
    Backpropagation", ICCV 2015 (arXiv:1509.07838), Sec. 5 (normalized-cuts layer).
    Shi & Malik, "Normalized Cuts and Image Segmentation", TPAMI 2000.
    Bach & Jordan, "Learning Spectral Clustering", NIPS 2003 / JMLR 7, 2006.
    """
    features = require_tensor(features, "features")
    check_float(features, "features")
    check_ndim(features, "features", 3, "(B, m, d)")
    check_nonempty(features, "features", "(B, m, d)")
    check_choice(route, "route", ("lowrank", "dense"))
    check_choice(nonneg, "nonneg", NONNEG_CHOICES)
    check_choice(solver, "solver", SOLVER_CHOICES)
    _check_options(degree_floor, degree_floor_abs, eigengap_rtol, policy)
    B, m, d = features.shape
    k_vec = resolve_k(
        k,
        B,
        min(m, d),
        features.device,
        f"min(m, d) = min({m}, {d}): M = D^-½FFᵀD^-½ has rank <= d, and eigenvectors past its "
        "rank span an arbitrary part of the null space, so the top-k subspace is undefined",
    )
    K = int(k_vec.max())
    if check:
        check_finite(features, "features")
    F = nonnegative_features(features, nonneg)
    if route == "lowrank":
        Z, lam, degrees, spectrum = lowrank_spectrum(
            F,
            K,
            degree_floor=degree_floor,
            degree_floor_abs=degree_floor_abs,
            solver=solver,
            policy=policy,
        )
    else:
        Z, lam, degrees, spectrum = dense_spectrum(
            F @ F.mT,
            K,
            degree_floor=degree_floor,
            degree_floor_abs=degree_floor_abs,
            policy=policy,
        )
    return _finish(
        Z,
        lam,
        degrees,
        spectrum,
        k_vec,
        eigengap_rtol=eigengap_rtol,
        check_eigengap=check_eigengap,
        strict=strict,
    )


def normalized_cuts_affinity(
    affinity: Tensor,
    k: int | Tensor | list[int],
    *,
    degree_floor: float = DEFAULT_DEGREE_FLOOR,
    degree_floor_abs: float | None = None,
    eigengap_rtol: float | None = None,
    check_eigengap: bool = True,
    strict: bool = False,
    policy: DegeneracyPolicy | None = None,
    check: bool = True,
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
    degree_floor, degree_floor_abs, eigengap_rtol, check_eigengap, strict, policy
        As in :func:`normalized_cuts`.
    check : bool
        Validate ``affinity``: dtype, shape, finite, symmetric (``sqrt(eps)`` relative),
        non-negative (a few host syncs, ``O(m²)``).

    Returns
    -------
    NCutsResult

    Raises
    ------
    ValueError
        On malformed, non-finite, non-symmetric or negative ``affinity``, ``k`` outside
        ``[1, m]``, or (``strict``) a vanishing eigengap.

    Notes
    -----
    ``O(Bm³)`` time and ``O(Bm²)`` memory. The zero-coupling degeneracy policy makes the
    gradient exact for projector losses even when ``M`` has repeated eigenvalues below ``λ_k``.
    """
    affinity = require_tensor(affinity, "affinity")
    check_float(affinity, "affinity")
    check_ndim(affinity, "affinity", 3, "(B, m, m)")
    check_nonempty(affinity, "affinity", "(B, m, m)")
    if affinity.shape[-1] != affinity.shape[-2]:
        raise ValueError(f"`affinity` must have shape (B, m, m), got {tuple(affinity.shape)}")
    _check_options(degree_floor, degree_floor_abs, eigengap_rtol, policy)
    B, m, _ = affinity.shape
    k_vec = resolve_k(k, B, m, affinity.device, f"the number of nodes m = {m}")
    if check:
        check_finite(affinity, "affinity")
        check_symmetric(affinity, "affinity")
        check_nonnegative(affinity, "affinity", "; normalized cuts needs affinities >= 0")
    Z, lam, degrees, spectrum = dense_spectrum(
        affinity,
        int(k_vec.max()),
        degree_floor=degree_floor,
        degree_floor_abs=degree_floor_abs,
        policy=policy,
    )
    return _finish(
        Z,
        lam,
        degrees,
        spectrum,
        k_vec,
        eigengap_rtol=eigengap_rtol,
        check_eigengap=check_eigengap,
        strict=strict,
    )


class NormalizedCuts(nn.Module):
    """Normalized-cuts layer (Ionescu et al. 2015, Sec. 5): features → spectral embedding.

    ``W = φ(F)φ(F)ᵀ`` (or a given affinity), ``M = D̃^-½ W D̃^-½``, output the top-``k``
    eigenvectors with their eigenvalues and the degrees. No parameters; the gradient w.r.t.
    the input is the paper's matrix backpropagation (via :mod:`matbackprop.linalg`).

    Parameters
    ----------
    k : int, optional
        Default number of eigenvectors when ``forward`` gets neither ``k`` nor ``labels``.
    route : {"lowrank", "dense", "affinity"}
        ``"lowrank"`` (default, input ``F (B, m, d)``, never forms ``m × m``), ``"dense"``
        (input ``F``, forms ``W = FFᵀ``), ``"affinity"`` (input ``W (B, m, m)``).
    nonneg, degree_floor, degree_floor_abs, solver, eigengap_rtol, check_eigengap, strict,
    policy, check
        As in :func:`normalized_cuts` (``nonneg``/``solver`` unused with ``"affinity"``).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.nn.ncuts import NormalizedCuts, ncuts_loss, segment_counts
    >>> F = torch.rand(2, 100, 16, dtype=torch.float64, requires_grad=True)
    >>> labels = torch.randint(0, 3, (2, 100))
    >>> result = NormalizedCuts()(F, labels=labels)   # k = segments per image
    >>> loss = ncuts_loss(result, labels)
    >>> loss.backward()
    """

    def __init__(
        self,
        k: int | None = None,
        *,
        route: Route = "lowrank",
        nonneg: Nonneg = "relu",
        degree_floor: float = DEFAULT_DEGREE_FLOOR,
        degree_floor_abs: float | None = None,
        solver: Solver = "svd",
        eigengap_rtol: float | None = None,
        check_eigengap: bool = True,
        strict: bool = False,
        policy: DegeneracyPolicy | None = None,
        check: bool = True,
    ) -> None:
        super().__init__()
        check_choice(route, "route", ROUTE_CHOICES)
        check_choice(nonneg, "nonneg", NONNEG_CHOICES)
        check_choice(solver, "solver", SOLVER_CHOICES)
        _check_options(degree_floor, degree_floor_abs, eigengap_rtol, policy)
        if k is not None:
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"`k` must be a positive int or None, got {k!r}")
        self.k = k
        self.route = route
        self.nonneg = nonneg
        self.degree_floor = degree_floor
        self.degree_floor_abs = degree_floor_abs
        self.solver = solver
        self.eigengap_rtol = eigengap_rtol
        self.check_eigengap = check_eigengap
        self.strict = strict
        self.policy = policy
        self.check = check

    def forward(
        self,
        x: Tensor,
        k: int | Tensor | list[int] | None = None,
        *,
        labels: Tensor | None = None,
        ignore_index: int | None = None,
    ) -> NCutsResult:
        """Embed ``x`` (features ``(B, m, d)`` or, for ``route="affinity"``, ``W (B, m, m)``).

        Parameters
        ----------
        x : Tensor, shape (B, m, d) or (B, m, m)
            Node features (routes ``"lowrank"``/``"dense"``) or the affinity (``"affinity"``).
        k : int or sequence / tensor of length B, optional
            Eigenvectors per image. Default: the number of segments of ``labels`` per image,
            else the module's ``k``.
        labels : Tensor, shape (B, m), optional
            Ground-truth labels, used only to infer ``k`` (see :func:`segment_counts`).
        ignore_index : int, optional
            Label not counted as a segment when inferring ``k``.

        Returns
        -------
        NCutsResult

        Raises
        ------
        ValueError
            As :func:`normalized_cuts` / :func:`normalized_cuts_affinity`; also when ``labels``
            does not have shape ``(B, m)`` or no ``k`` is available.
        """
        if k is None and labels is not None:
            k = segment_counts(labels, ignore_index=ignore_index)
            x = require_tensor(x, "x")
            if x.ndim >= 2 and labels.shape != x.shape[:2]:
                raise ValueError(
                    f"`labels` must have shape (B, m) = {tuple(x.shape[:2])}, got "
                    f"{tuple(labels.shape)}"
                )
        if k is None:
            k = self.k
        common = dict(
            degree_floor=self.degree_floor,
            degree_floor_abs=self.degree_floor_abs,
            eigengap_rtol=self.eigengap_rtol,
            check_eigengap=self.check_eigengap,
            strict=self.strict,
            policy=self.policy,
            check=self.check,
        )
        if self.route == "affinity":
            return normalized_cuts_affinity(x, k, **common)
        return normalized_cuts(
            x, k, route=self.route, nonneg=self.nonneg, solver=self.solver, **common
        )

    def extra_repr(self) -> str:
        return f"k={self.k}, route={self.route!r}, nonneg={self.nonneg!r}, solver={self.solver!r}"
