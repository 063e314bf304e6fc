"""matbackprop.models: backbones, DeepNCuts, DeepO2P and the baselines.

- :class:`EfficientNetLite0Backbone` -- EfficientNet-Lite0 with offline ImageNet weights,
  truncated at output stride 8, 16 or 32.
- :class:`VGGTrunk` -- small VGG-style trunk trained from scratch.
- :class:`DeepNCuts` -- backbone → projection → normalized-cuts layer, trained end to end
  (:func:`node_targets` gives node labels from a label map).
- :class:`ClassicNCuts` -- Shi–Malik normalized cuts on superpixel colour and position.
- :class:`RegionClassifier` -- backbone → region pooling (first-order ``"avg"`` or DeepO2P
  ``"o2p"``: log of the region covariance) → linear classifier.
"""

from matbackprop.models._backbones import EfficientNetLite0Backbone, VGGTrunk
from matbackprop.models._classic_ncuts import ClassicNCuts
from matbackprop.models._deep_ncuts import IGNORE_INDEX, DeepNCuts, node_targets
from matbackprop.models._region_classifier import RegionClassifier, region_weights

__all__ = [
    "IGNORE_INDEX",
    "ClassicNCuts",
    "DeepNCuts",
    "EfficientNetLite0Backbone",
    "VGGTrunk",
    "node_targets",
    "RegionClassifier",
    "region_weights",
]
