"""Matrix backpropagation: decompositions and spectral matrix functions with custom gradients.

The bottom layer of matbackprop (imports only torch and :mod:`matbackprop.validation`). Every
function is batched over leading dimensions, works in float32 and float64 on any device,
validates its input (``check=False`` skips that) and returns finite gradients for finite input,
repeated eigenvalues included.

- :func:`eigh`, :func:`svd` -- decompositions with the backward of Ionescu et al. (2015),
  Prop. 2, and a documented :class:`DegeneracyPolicy` for ties.
- :func:`spectral_function` and :func:`logm`, :func:`sqrtm`, :func:`invsqrtm`, :func:`powm`,
  :func:`expm` -- ``U f(Σ) Uᵀ`` with the exact Daleckii–Krein backward (double backward too).
- :func:`sqrtm_newton_schulz`, :func:`invsqrtm_newton_schulz` -- matmul-only iSQRT-COV.
- :func:`projector` -- ``A(AᵀA)⁻¹Aᵀ`` with ``dΠ = 2((I − Π) dA A⁺)_sym``.
"""

from ._divided_differences import (
    ScalarFunction,
    default_dd_rtol,
    first_divided_differences,
)
from ._eigh import EighResult, eigh
from ._matrix_functions import expm, invsqrtm, logm, powm, sqrtm
from ._newton_schulz import invsqrtm_newton_schulz, sqrtm_newton_schulz
from ._policy import DegeneracyPolicy, default_rtol
from ._projector import projector
from ._spectral import SpectralOptions, spectral_function
from ._svd import SVDResult, svd

__all__ = [
    "DegeneracyPolicy",
    "EighResult",
    "SVDResult",
    "ScalarFunction",
    "SpectralOptions",
    "default_dd_rtol",
    "default_rtol",
    "eigh",
    "expm",
    "first_divided_differences",
    "invsqrtm",
    "invsqrtm_newton_schulz",
    "logm",
    "powm",
    "projector",
    "spectral_function",
    "sqrtm",
    "sqrtm_newton_schulz",
    "svd",
]
