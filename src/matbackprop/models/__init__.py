"""matbackprop.models: backbones (DeepNCuts, DeepO2P and baselines to come).

- :class:`EfficientNetLite0Backbone` -- EfficientNet-Lite0 with offline ImageNet weights,
  truncated at output stride 8, 16 or 32.
- :class:`VGGTrunk` -- small VGG-style trunk trained from scratch.
"""

from matbackprop.models._backbones import EfficientNetLite0Backbone, VGGTrunk

__all__ = ["EfficientNetLite0Backbone", "VGGTrunk"]
