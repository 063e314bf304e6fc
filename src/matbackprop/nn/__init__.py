"""Structured layers built on :mod:`matbackprop.linalg` (imports only torch, linalg and
:mod:`matbackprop.validation`).

Modules, their option dataclasses and result types live here; the same operations as
functions are in :mod:`matbackprop.nn.functional` (as with ``torch.nn``).

- :class:`SecondOrderPooling` (:class:`PoolingOptions`) -- DeepO2P / MPN-COV / iSQRT-COV pooling
  of conv features over regions, with the exact low-rank (Gram) route for regions with fewer
  pixels than channels.
- :class:`NormalizedCuts` (:class:`NCutsOptions`) -- DeepNCuts: the low-rank normalized-cuts
  layer (never forms an ``m × m`` matrix for ``W = FFᵀ``), the dense route and a given
  affinity; returns an :class:`NCutsResult`, warns with :class:`EigengapWarning`.
- :class:`BiMap`, :class:`ReEig`, :class:`LogEig` -- SPDNet layers (beyond the paper).
- :class:`KMeansResult` -- the result of :func:`matbackprop.nn.functional.kmeans`.
"""

from . import functional
from ._ncuts._kmeans import KMeansResult
from ._ncuts._module import NormalizedCuts
from ._ncuts._options import NCutsOptions
from ._ncuts._result import EigengapWarning, NCutsResult
from ._ncuts._ucm import RegionAdjacency
from ._pooling._module import SecondOrderPooling
from ._pooling._options import PoolingOptions
from ._spd import BiMap, LogEig, ReEig

__all__ = [
    "BiMap",
    "EigengapWarning",
    "KMeansResult",
    "LogEig",
    "NCutsOptions",
    "NCutsResult",
    "NormalizedCuts",
    "PoolingOptions",
    "ReEig",
    "RegionAdjacency",
    "SecondOrderPooling",
    "functional",
]
