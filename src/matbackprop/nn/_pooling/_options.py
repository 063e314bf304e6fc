"""The options of second-order pooling, written once: :class:`PoolingOptions`.

:class:`~matbackprop.nn.SecondOrderPooling` and
:func:`~matbackprop.nn.functional.second_order_pooling` share this frozen dataclass, validated in
``__post_init__`` (as :class:`matbackprop.linalg.SpectralOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from matbackprop.validation import (
    check_bool,
    check_choice,
    check_compute_dtype,
    check_int,
    check_number,
)

from .._options import LayerOptions
from ._gram import GRAM_NORMALIZATIONS

#: Matrix normalizations ``f`` of second-order pooling (``None``: the regularized moment).
POOLING_NORMALIZATIONS = ("log", "sqrt", "newton_schulz", "pow", None)
#: Routes of second-order pooling (see :class:`PoolingOptions`).
POOLING_ROUTES = ("auto", "gram", "covariance")


@dataclass(frozen=True)
class PoolingOptions(LayerOptions):
    """Options of second-order pooling ``y_r = vec(s(f(C_r + εI)))`` (O2P / DeepO2P).

    Parameters
    ----------
    normalization : {"log", "sqrt", "newton_schulz", "pow", None}
        ``f``: matrix logarithm (O2P / DeepO2P), square root (MPN-COV), Newton–Schulz square
        root (iSQRT-COV, ``iterations`` steps, matmul only), power ``·^power``, or none (the
        regularized moment ``C_r + εI``).
    eps : float
        ``ε >= 0`` added to the diagonal. Must be ``> 0`` when a region has fewer pixels than
        channels and ``f`` needs a definite matrix (log, negative powers); the default ``1e-3``
        is a choice of this library (scale it with your features).
    center : bool
        Subtract the weighted mean (covariance) instead of the raw second moment (O2P default).
    power : float
        Exponent for ``normalization="pow"`` (finite, non-zero).
    iterations : int
        Newton–Schulz steps for ``normalization="newton_schulz"`` (``>= 1``).
    signed_power : float, optional
        If given, the exponent ``α > 0`` of the element-wise ``sign(x)((|x| + δ)^α − δ^α)``
        (:func:`~matbackprop.nn.functional.signed_power`) applied to the normalized matrix
        entries, before vectorization.
    signed_power_delta : float
        ``δ > 0`` of the signed power (finite slope ``α δ^(α−1)`` at 0).
    vectorize : bool
        Return ``vec(Y_r)`` (upper triangle, √2 off the diagonal) instead of the matrices.
    route : {"auto", "gram", "covariance"}
        How ``f(C_r + εI)`` is computed, per region of ``p`` pixels (support) and ``C``
        channels. ``"covariance"``: a ``C × C`` eigendecomposition. ``"gram"``: the exact
        low-rank identity with a ``p × p`` eigendecomposition (needs ``normalization`` in
        log/sqrt/pow and ``eps > 0``) for every region with ``p < C``; regions with ``p >= C``
        take the covariance route (their ``p × p`` Gram matrix would be the singular one).
        ``"auto"`` (default): accuracy first -- the Gram route for regions with
        ``p < gram_ratio · C`` where it is available, the covariance route otherwise.
    gram_ratio : float
        Threshold of ``"auto"`` as a fraction of ``C`` (``> 0``; values above 1 act as 1).
        The default 1 sends every rank-deficient region (``p < C``) to the Gram route, which is
        exact there in any precision, while the covariance route's ``C − p`` null eigenvalues
        carry rounding ``~ C eps ‖C_r‖`` that ``log(ε + ·)`` amplifies (float32: errors of
        1e-3 at feature scale 10 and a numerically singular matrix at 100, for C = 16,
        ``ε = 1e-3``). A smaller value trades that accuracy for speed on CPU where the Gram
        route is slower (float32, C = 256: 7× faster at p = C/8, on par at p ≈ 0.75 C, 2×
        slower at p = C − 1; benchmarks/bench_o2p_pooling.py).
    compute_dtype : torch.dtype, optional
        Dtype of the pooled products and the matrix function (e.g. ``torch.float64`` for
        float32 features, as the paper did); the result is cast back to ``features.dtype``.
    check : bool
        Validate values (finite features, non-negative finite weights, non-empty regions,
        symmetric/definite pooled matrices in linalg). Shapes and options are always checked.

    Raises
    ------
    ValueError
        Naming the first invalid option (at construction).

    Examples
    --------
    >>> from matbackprop.nn import PoolingOptions, SecondOrderPooling
    >>> options = PoolingOptions(normalization="sqrt", eps=1e-2)
    >>> SecondOrderPooling(options=options).options.normalization
    'sqrt'
    >>> PoolingOptions(eps=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: `eps` must be a finite number >= 0, got -1.0
    """

    normalization: str | None = "log"
    eps: float = 1e-3
    center: bool = False
    power: float = 0.5
    iterations: int = 5
    signed_power: float | None = None
    signed_power_delta: float = 1e-6
    vectorize: bool = True
    route: str = "auto"
    gram_ratio: float = 1.0
    compute_dtype: torch.dtype | None = None
    check: bool = True

    def __post_init__(self) -> None:
        check_choice(self.normalization, "normalization", POOLING_NORMALIZATIONS)
        self._set("eps", check_number(self.eps, "eps", minimum=0))
        check_bool(self.center, "center")
        if self.normalization == "pow":
            self._set("power", check_number(self.power, "power", nonzero=True))
        if self.normalization == "newton_schulz":
            check_int(self.iterations, "iterations")
        if self.signed_power is not None:
            self._set(
                "signed_power", check_number(self.signed_power, "signed_power", positive=True)
            )
        self._set(
            "signed_power_delta",
            check_number(self.signed_power_delta, "signed_power_delta", positive=True),
        )
        check_bool(self.vectorize, "vectorize")
        check_choice(self.route, "route", POOLING_ROUTES)
        self._set("gram_ratio", check_number(self.gram_ratio, "gram_ratio", positive=True))
        check_compute_dtype(self.compute_dtype)
        check_bool(self.check, "check")
        if self.route == "gram":
            if self.normalization not in GRAM_NORMALIZATIONS:
                raise ValueError(
                    f"`route`='gram' needs normalization in {GRAM_NORMALIZATIONS} (the Gram "
                    f"identity needs a spectral function); got normalization="
                    f"{self.normalization!r}, use route='covariance'"
                )
            if self.eps <= 0:
                raise ValueError(
                    "`eps` must be > 0 for route='gram' (g(t) = (f(eps + t) - f(eps))/t), "
                    f"got {self.eps!r}"
                )

    @property
    def gram_available(self) -> bool:
        """Whether the Gram identity applies (a spectral ``f`` and ``ε > 0``)."""
        return self.normalization in GRAM_NORMALIZATIONS and self.eps > 0
