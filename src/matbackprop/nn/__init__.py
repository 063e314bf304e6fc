"""Structured layers built on :mod:`matbackprop.linalg` (imports only torch and linalg).

- :class:`SecondOrderPooling`, :func:`second_order_pooling` -- DeepO2P / MPN-COV / iSQRT-COV
  pooling of conv features over regions, with the exact low-rank (Gram) route for regions with
  fewer pixels than channels; :func:`vectorize_symmetric` (isometric, √2 off-diagonal),
  :func:`unvectorize_symmetric`, :func:`signed_power`.
- :class:`NormalizedCuts`, :func:`normalized_cuts`, :func:`normalized_cuts_affinity`,
  :func:`ncuts_loss` -- DeepNCuts: the low-rank normalized-cuts layer (never forms an ``m × m``
  matrix for ``W = FFᵀ``), the dense route, the Bach–Jordan projector loss in ``O(mk)``, and
  decoding (:func:`ncuts_hierarchy`, :func:`decode_labels`, :func:`lift_labels`).
- :class:`BiMap`, :class:`ReEig`, :class:`LogEig` -- SPDNet layers (beyond the paper).
"""

from ._pooling import SecondOrderPooling, second_order_pooling
from ._signed_power import signed_power
from ._spd import BiMap, LogEig, ReEig
from ._vectorize import symmetric_dim, unvectorize_symmetric, vectorize_symmetric
from .ncuts import (
    EigengapWarning,
    KMeansResult,
    NCutsResult,
    NormalizedCuts,
    decode_labels,
    gaussian_affinity,
    kmeans,
    lift_labels,
    ncuts_hierarchy,
    ncuts_loss,
    ncuts_loss_dense,
    normalized_cuts,
    normalized_cuts_affinity,
    segment_counts,
    spectral_discretize,
)

__all__ = [
    "BiMap",
    "EigengapWarning",
    "KMeansResult",
    "LogEig",
    "NCutsResult",
    "NormalizedCuts",
    "ReEig",
    "SecondOrderPooling",
    "decode_labels",
    "gaussian_affinity",
    "kmeans",
    "lift_labels",
    "ncuts_hierarchy",
    "ncuts_loss",
    "ncuts_loss_dense",
    "normalized_cuts",
    "normalized_cuts_affinity",
    "second_order_pooling",
    "segment_counts",
    "signed_power",
    "spectral_discretize",
    "symmetric_dim",
    "unvectorize_symmetric",
    "vectorize_symmetric",
]
