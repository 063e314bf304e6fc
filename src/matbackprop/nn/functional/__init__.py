"""The structured layers as functions (as :mod:`torch.nn.functional` is to :mod:`torch.nn`).

Each takes its tensors and, where the layer has options, ``options=`` (the same frozen
dataclass as the module: :class:`~matbackprop.nn.PoolingOptions`,
:class:`~matbackprop.nn.NCutsOptions`) and/or the options by name.

DeepO2P (second-order pooling)
    :func:`second_order_pooling`, :func:`signed_power`, :func:`vectorize_symmetric`,
    :func:`unvectorize_symmetric`, :func:`symmetric_dim`.
DeepNCuts (normalized cuts)
    :func:`normalized_cuts`, :func:`normalized_cuts_affinity`, :func:`gaussian_affinity`,
    :func:`ncuts_loss`, :func:`ncuts_loss_dense`, :func:`segment_counts`.
Decoding a spectral embedding
    :func:`spectral_discretize`, :func:`decode_labels`, :func:`ncuts_hierarchy`,
    :func:`lift_labels`, :func:`kmeans`.
Ultrametric contour maps (nested hierarchies of superpixels)
    :func:`region_adjacency`, :func:`spectral_node_embedding`, :func:`pair_distances`,
    :func:`agglomerate`, :func:`ucm2_from_heights`, :func:`quantize_levels`,
    :func:`ultrametric_contour_map`, :func:`ucm2_segmentation`, :func:`ucm2_levels`.
A local counterpart of the NCuts loss
    :func:`pairwise_affinity_loss`.
"""

from .._ncuts._affinity import gaussian_affinity
from .._ncuts._decode import decode_labels, lift_labels, ncuts_hierarchy, spectral_discretize
from .._ncuts._kmeans import kmeans
from .._ncuts._layer import normalized_cuts, normalized_cuts_affinity
from .._ncuts._loss import ncuts_loss, ncuts_loss_dense, segment_counts
from .._ncuts._pairwise_loss import pairwise_affinity_loss
from .._ncuts._ucm import (
    agglomerate,
    pair_distances,
    quantize_levels,
    region_adjacency,
    spectral_node_embedding,
    ucm2_from_heights,
    ucm2_levels,
    ucm2_segmentation,
    ultrametric_contour_map,
)
from .._pooling._functional import second_order_pooling
from .._signed_power import signed_power
from .._vectorize import symmetric_dim, unvectorize_symmetric, vectorize_symmetric

__all__ = [
    "agglomerate",
    "decode_labels",
    "gaussian_affinity",
    "kmeans",
    "lift_labels",
    "ncuts_hierarchy",
    "ncuts_loss",
    "ncuts_loss_dense",
    "normalized_cuts",
    "normalized_cuts_affinity",
    "pair_distances",
    "pairwise_affinity_loss",
    "quantize_levels",
    "region_adjacency",
    "second_order_pooling",
    "segment_counts",
    "signed_power",
    "spectral_discretize",
    "spectral_node_embedding",
    "symmetric_dim",
    "ucm2_from_heights",
    "ucm2_levels",
    "ucm2_segmentation",
    "ultrametric_contour_map",
    "unvectorize_symmetric",
    "vectorize_symmetric",
]
