"""The registry of matrix functions that every contract test runs over (not a test module).

Each entry names the function, its SciPy reference, the scalar ``f`` for the torch-autograd
reference, its domain, and the name (and power) of its 50-digit divided differences in
:mod:`tests.references`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import scipy.linalg
import torch

from matbackprop.linalg import expm, invsqrtm, logm, powm, spectral_function, sqrtm

from .. import references as ref


@dataclass(frozen=True)
class Entry:
    name: str
    fn: object  # fn(A, **options) -> Tensor
    scipy_ref: object  # ndarray -> ndarray
    scalar: object  # torch elementwise f, for the torch-autograd reference
    domain: str  # "pd", "psd" or "any"
    ref_name: str  # the scalar function in tests.references
    ref_p: float | None = None
    scales: tuple[float, ...] = (1e-6, 1e6)
    twice_differentiable: bool = True


def _scipy_invsqrt(a):
    return np.linalg.inv(ref.scipy_sqrtm(a))


def _eig_apply(a, f):
    w, v = np.linalg.eigh(a)
    return (v * f(w)) @ v.T


REGISTRY = [
    Entry("logm", logm, ref.scipy_logm, torch.log, "pd", "log"),
    Entry("sqrtm", sqrtm, ref.scipy_sqrtm, torch.sqrt, "psd", "sqrt"),
    Entry("invsqrtm", invsqrtm, _scipy_invsqrt, torch.rsqrt, "pd", "invsqrt"),
    Entry("expm", expm, scipy.linalg.expm, torch.exp, "any", "exp", scales=(1e-6, 10.0)),
    Entry(
        "powm(0.7)",
        partial(powm, p=0.7),
        partial(ref.scipy_power, t=0.7),
        lambda x: x.pow(0.7),
        "psd",
        "pow",
        0.7,
    ),
    Entry(
        "powm(-0.3)",
        partial(powm, p=-0.3),
        partial(ref.scipy_power, t=-0.3),
        lambda x: x.pow(-0.3),
        "pd",
        "pow",
        -0.3,
    ),
    Entry(
        "spectral_function(atan)",
        partial(spectral_function, f=torch.atan, df=lambda x: 1 / (1 + x * x)),
        lambda a: _eig_apply(a, np.arctan),
        torch.atan,
        "any",
        "atan",
        twice_differentiable=False,
    ),
]
IDS = [e.name for e in REGISTRY]
