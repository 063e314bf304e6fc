"""matbackprop.models: backbones, DeepNCuts, DeepO2P and the baselines.

- :class:`EfficientNetLite0Backbone` -- EfficientNet-Lite0 with offline ImageNet weights,
  truncated at output stride 8, 16 or 32.
- :class:`VGGTrunk` -- small VGG-style trunk trained from scratch.
- :class:`ImageNormalization` -- the input normalization a backbone owns
  (:data:`EFFICIENTNET_LITE_NORMALIZATION`, :data:`IMAGENET_NORMALIZATION`); models apply
  ``backbone.normalize`` to ``[0, 1]`` images. :func:`parse_trainable` -- the grammar of the
  fine-tuned blocks (``"all"``, ``"none"``, ``"last-<k>"``).
- :class:`DeepNCuts` -- backbone → projection → normalized-cuts layer, trained end to end
  (:func:`node_targets` gives node labels from a label map).
- :class:`ClassicNCuts` -- Shi–Malik normalized cuts on superpixel colour and position
  (k-means levels; the texture demo).
- BSDS500 segmenters, all decoded by the shared :class:`UCMDecoder` into a :class:`Hierarchy`
  (ucm2 + nested levels): :class:`ClassicLabNCuts` (Lab colour + centroid, radius-limited
  Gaussian), :class:`HypercolumnNCuts` (:class:`HypercolumnEncoder` descriptors → a head:
  :class:`NodeHead` trained with :func:`bach_jordan_objective` (+ :func:`spectral_edge_objective`)
  or :func:`local_objective`, or
  :class:`FrozenTapFeatures` → low-rank NCuts).
- :class:`RegionClassifier` -- backbone → region pooling (first-order ``"avg"`` or DeepO2P
  ``"o2p"``: log of the region covariance) → linear classifier.
"""

from matbackprop.models._backbone import (
    EFFICIENTNET_LITE_NORMALIZATION,
    IMAGENET_NORMALIZATION,
    ImageNormalization,
    parse_trainable,
)
from matbackprop.models._classic_lab import ClassicLabNCuts
from matbackprop.models._classic_ncuts import ClassicNCuts
from matbackprop.models._deep_ncuts import IGNORE_INDEX, DeepNCuts, node_targets
from matbackprop.models._efficientnet import EfficientNetLite0Backbone
from matbackprop.models._hypercolumn import DEFAULT_TAPS, HypercolumnEncoder, NodeHead
from matbackprop.models._hypercolumn_ncuts import (
    FrozenTapFeatures,
    HypercolumnNCuts,
    bach_jordan_objective,
    local_objective,
    spectral_edge_objective,
)
from matbackprop.models._region_classifier import RegionClassifier, region_weights
from matbackprop.models._ucm_decoder import Hierarchy, UCMDecoder
from matbackprop.models._vgg import VGGTrunk

__all__ = [
    "DEFAULT_TAPS",
    "EFFICIENTNET_LITE_NORMALIZATION",
    "IGNORE_INDEX",
    "IMAGENET_NORMALIZATION",
    "ClassicLabNCuts",
    "ClassicNCuts",
    "DeepNCuts",
    "EfficientNetLite0Backbone",
    "FrozenTapFeatures",
    "Hierarchy",
    "HypercolumnEncoder",
    "HypercolumnNCuts",
    "ImageNormalization",
    "NodeHead",
    "RegionClassifier",
    "UCMDecoder",
    "VGGTrunk",
    "bach_jordan_objective",
    "local_objective",
    "node_targets",
    "parse_trainable",
    "region_weights",
    "spectral_edge_objective",
]
