"""matbackprop: matrix backpropagation for PyTorch.

Global matrix computations -- symmetric eigendecompositions, SVDs, spectral matrix
functions (log, sqrt, inverse sqrt, powers, exp) and normalized cuts -- as trainable
layers, after Ionescu, Vantzos & Sminchisescu, "Training Deep Networks with Structured
Layers by Matrix Backpropagation" (ICCV 2015, arXiv:1509.07838).

Sub-packages (imported lazily so that ``import matbackprop`` stays light):

- :mod:`matbackprop.linalg`  -- decompositions and matrix functions with custom backward
- :mod:`matbackprop.nn`      -- structured layers (DeepO2P pooling, normalized cuts, SPD layers)
- :mod:`matbackprop.data`    -- BSDS500, COCO regions, texture mosaics, superpixels
- :mod:`matbackprop.metrics` -- the BSDS benchmark metrics and classification metrics
- :mod:`matbackprop.models`  -- backbones, DeepNCuts, DeepO2P and baselines
- :mod:`matbackprop.train`   -- configs, trainer, checkpoints, distributed helpers
- :mod:`matbackprop.cli`     -- the ``matbackprop`` command
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBPACKAGES = ("linalg", "nn", "data", "metrics", "models", "train", "cli")

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
