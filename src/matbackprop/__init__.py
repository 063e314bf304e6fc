"""matbackprop: matrix backpropagation for PyTorch.

Global matrix computations -- symmetric eigendecompositions, SVDs, spectral matrix
functions (log, sqrt, inverse sqrt, powers, exp) and normalized cuts -- as trainable
layers, after Ionescu, Vantzos & Sminchisescu, "Training Deep Networks with Structured
Layers by Matrix Backpropagation" (ICCV 2015, arXiv:1509.07838).

Sub-packages, bottom to top (imported lazily so that ``import matbackprop`` stays light; see
``docs/architecture.md``):

- :mod:`matbackprop.errors`  -- the errors users can fix (foundation: torch-free, used by all)
- :mod:`matbackprop.validation` -- argument checks shared by every package (foundation: torch only)
- :mod:`matbackprop.linalg`  -- decompositions and matrix functions with custom backward
- :mod:`matbackprop.nn`      -- structured layers (DeepO2P pooling, normalized cuts, SPD layers)
- :mod:`matbackprop.data`    -- BSDS500, COCO regions, texture mosaics, superpixels (a leaf)
- :mod:`matbackprop.metrics` -- the BSDS benchmark metrics and classification metrics (a leaf)
- :mod:`matbackprop.models`  -- backbones, DeepNCuts, DeepO2P and baselines
- :mod:`matbackprop.train`   -- configs, trainer, checkpoints, run records, distributed helpers
- :mod:`matbackprop.tasks`   -- the experiments (demo, ncuts, o2p), one module each
- :mod:`matbackprop.cli`     -- the ``matbackprop`` command
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

try:  # one version source: pyproject.toml, read back from the installed distribution
    __version__ = importlib.metadata.version("matbackprop")
except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_SUBPACKAGES = (
    "errors",
    "validation",
    "linalg",
    "nn",
    "data",
    "metrics",
    "models",
    "train",
    "tasks",
    "cli",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
