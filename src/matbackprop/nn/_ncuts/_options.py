"""The options of the normalized-cuts layer, written once: :class:`NCutsOptions`.

:class:`~matbackprop.nn.NormalizedCuts`, :func:`~matbackprop.nn.functional.normalized_cuts` and
:func:`~matbackprop.nn.functional.normalized_cuts_affinity` share this frozen dataclass,
validated in ``__post_init__`` (as :class:`matbackprop.linalg.SpectralOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass

from matbackprop.linalg import DegeneracyPolicy
from matbackprop.validation import check_bool, check_choice, check_number

from .._options import LayerOptions
from ._affinity import DEFAULT_DEGREE_FLOOR, NONNEG_CHOICES, Nonneg
from ._lowrank import SOLVER_CHOICES

#: Routes of the layer: features through the low-rank or the dense route, or a given affinity.
NCUTS_ROUTES = ("lowrank", "dense", "affinity")
#: The options that apply to a given affinity (``normalized_cuts_affinity``).
AFFINITY_OPTIONS = (
    "degree_floor",
    "degree_floor_abs",
    "eigengap_rtol",
    "check_eigengap",
    "strict",
    "policy",
    "check",
)


@dataclass(frozen=True)
class NCutsOptions(LayerOptions):
    """Options of the normalized-cuts spectral embedding (DeepNCuts).

    Parameters
    ----------
    route : {"lowrank", "dense", "affinity"}
        ``"lowrank"`` (default): features ``F (B, m, d)``, thin SVD of ``G = D̃^-½F``, never
        forms an ``m × m`` matrix, ``O(md²)``. ``"dense"``: features, forms ``W = FFᵀ`` and runs
        the full ``eigh`` of ``M``, ``O(m³)`` (for comparison and small graphs).
        ``"affinity"``: the input is ``W (B, m, m)`` itself (the layer only; the function for
        it is :func:`~matbackprop.nn.functional.normalized_cuts_affinity`).
    nonneg : {"relu", "softplus", "square", "none"}
        Non-negativity map ``φ`` applied to features first (the affinity must be non-negative
        for ``M`` to be a normalized affinity). Default ``"relu"``, idempotent when the model
        already ends in a ReLU/softplus. ``"none"`` requires ``features >= 0``. Unused by the
        affinity route.
    degree_floor : float
        Relative floor ``τ >= 0``: ``d̃ᵢ = max(dᵢ, τ·mean(d))`` per image (default 1e-4), so
        nodes with (near-)zero features do not blow up ``D^-½``. Differentiable.
    degree_floor_abs : float, optional
        Absolute floor ``τ_abs > 0``; default: the dtype's smallest normal number (only prevents
        a division by zero).
    solver : {"auto", "svd", "gram"}
        Low-rank solver (the low-rank route only), the same function and gradient either way:
        ``"gram"``, the ``d × d`` matrix ``GᵀG`` accumulated and decomposed in float64 with a
        fused streaming backward (no ``m × d`` temporaries; as accurate as the SVD for float32
        features); ``"svd"``, the thin SVD of ``G = D̃^-½F``; ``"auto"`` (default), ``"gram"``
        for ``m >= 2d`` and ``"svd"`` below it or under ``torch.func`` transforms. Accuracy
        (float32 ``F = rand(m, 64)²``, k = 8, gradient against float64; scripts/
        measure_numerics.py part c): default 6.2e-5 / SVD 1.6e-4 at m = 4096, 6.7e-3 / 6.9e-3
        at 65536, 0.54 / 0.54 at 2²⁰ (gap 6.8e-6: float32 is hopeless there, use float64
        features), where a float32 ``GᵀG`` gives 5.6e-4 / 1.4e-2 / 0.78. Speed: the crossover
        ``m = 2d`` is where the SVD of the thin ``m × d`` matrix stops being as fast; it is
        re-measured by ``benchmarks/bench_ncuts.py --crossover`` (docs/numerics.md).
    eigengap_rtol : float, optional
        Threshold of the eigengap check (``>= 0``), default ``sqrt(eps)`` of the dtype.
    check_eigengap : bool
        Check ``(λ_k − λ_{k+1}) / λ₁ >= eigengap_rtol`` per image at its own ``k`` (one host
        sync); a failure warns with :class:`~matbackprop.nn.EigengapWarning`, or raises with
        ``strict``.
    strict : bool
        Raise ``ValueError`` instead of warning on a vanishing eigengap.
    policy : DegeneracyPolicy, optional
        Degeneracy policy of the SVD/eigh backward; default zero coupling (exact for losses that
        depend on ``Z`` only through ``ZZᵀ``, e.g. :func:`~matbackprop.nn.functional.ncuts_loss`).
        The layer sets its ``block`` to ``k``: pairs straddling the top-``k`` boundary keep
        their coupling unless truly tied, so the gradient of such a loss does not depend on
        ``rtol`` (every route; tested with ``rtol = 0.1``).
    check : bool
        Validate the input values (finiteness; for an affinity also symmetry and sign).

    Raises
    ------
    ValueError
        Naming the first invalid option (at construction).

    Examples
    --------
    >>> from matbackprop.nn import NCutsOptions, NormalizedCuts
    >>> options = NCutsOptions(route="dense", nonneg="softplus")
    >>> NormalizedCuts(k=3, options=options).options.route
    'dense'
    >>> NCutsOptions(route="sparse")
    Traceback (most recent call last):
    ...
    ValueError: `route` must be one of 'lowrank' | 'dense' | 'affinity', got 'sparse'
    """

    route: str = "lowrank"
    nonneg: Nonneg = "relu"
    degree_floor: float = DEFAULT_DEGREE_FLOOR
    degree_floor_abs: float | None = None
    solver: str = "auto"
    eigengap_rtol: float | None = None
    check_eigengap: bool = True
    strict: bool = False
    policy: DegeneracyPolicy | None = None
    check: bool = True

    def __post_init__(self) -> None:
        check_choice(self.route, "route", NCUTS_ROUTES)
        check_choice(self.nonneg, "nonneg", NONNEG_CHOICES)
        check_choice(self.solver, "solver", SOLVER_CHOICES)
        self._set("degree_floor", check_number(self.degree_floor, "degree_floor", minimum=0))
        self._set(
            "degree_floor_abs",
            check_number(self.degree_floor_abs, "degree_floor_abs", positive=True, allow_none=True),
        )
        self._set(
            "eigengap_rtol",
            check_number(self.eigengap_rtol, "eigengap_rtol", minimum=0, allow_none=True),
        )
        check_bool(self.check_eigengap, "check_eigengap")
        check_bool(self.strict, "strict")
        if self.policy is not None and not isinstance(self.policy, DegeneracyPolicy):
            raise ValueError(
                f"`policy` must be a DegeneracyPolicy, got {type(self.policy).__name__}"
            )
        check_bool(self.check, "check")
