"""The ``matbackprop`` command: ``demo``, ``train``, ``eval`` and ``report``.

See :func:`main` and ``matbackprop --help``. Task pipelines (DeepNCuts on BSDS500, DeepO2P
on COCO regions, the demo on texture mosaics) live in the private modules of this package.
"""

from ._main import main

__all__ = ["main"]
