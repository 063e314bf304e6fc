"""Locating the shared data folder that sits beside the repository.

The project's data (BSDS500, coco-mini) lives in ``../shared/data`` relative to the repository
root and is never copied into the repository. ``MATBACKPROP_SHARED`` overrides the location
(it points at the folder that *contains* ``data/``); ``MATBACKPROP_BSDS_ROOT`` and
``MATBACKPROP_COCO_ROOT`` override single data sets.
"""

from __future__ import annotations

import os
from pathlib import Path

from matbackprop.errors import DataFileError

SHARED_ENV = "MATBACKPROP_SHARED"
BSDS_ENV = "MATBACKPROP_BSDS_ROOT"
COCO_ENV = "MATBACKPROP_COCO_ROOT"

_REPO_ROOT = Path(__file__).resolve().parents[3]


def shared_root() -> Path | None:
    """The shared folder (holding ``data/``), or ``None`` when it cannot be found.

    Order: ``$MATBACKPROP_SHARED``; ``<repo root>/../shared``; ``<cwd>/../shared``.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from matbackprop.data import shared_root
    >>> tmp = tempfile.TemporaryDirectory()
    >>> os.environ["MATBACKPROP_SHARED"] = folder = tmp.name
    >>> shared_root() == Path(folder)
    True
    >>> del os.environ["MATBACKPROP_SHARED"]
    >>> tmp.cleanup()
    """
    env = os.environ.get(SHARED_ENV)
    if env:
        return Path(env)
    for candidate in (_REPO_ROOT.parent / "shared", Path.cwd().parent / "shared"):
        if (candidate / "data").is_dir():
            return candidate
    return None


def _dataset_root(env: str, name: str) -> Path | None:
    value = os.environ.get(env)
    if value:
        return Path(value)
    shared = shared_root()
    if shared is None:
        return None
    path = shared / "data" / name
    return path if path.is_dir() else None


def default_bsds_root() -> Path | None:
    """``$MATBACKPROP_BSDS_ROOT``, else ``<shared>/data/BSDS500`` when it exists, else ``None``.

    Examples
    --------
    >>> import os
    >>> from matbackprop.data import default_bsds_root
    >>> os.environ["MATBACKPROP_BSDS_ROOT"] = "/data/BSDS500"
    >>> default_bsds_root().as_posix()
    '/data/BSDS500'
    >>> del os.environ["MATBACKPROP_BSDS_ROOT"]
    """
    return _dataset_root(BSDS_ENV, "BSDS500")


def default_coco_root() -> Path | None:
    """``$MATBACKPROP_COCO_ROOT``, else ``<shared>/data/coco-mini`` if it exists, else ``None``.

    Examples
    --------
    >>> import os
    >>> from matbackprop.data import default_coco_root
    >>> os.environ["MATBACKPROP_COCO_ROOT"] = "/data/coco-mini"
    >>> default_coco_root().as_posix()
    '/data/coco-mini'
    >>> del os.environ["MATBACKPROP_COCO_ROOT"]
    """
    return _dataset_root(COCO_ENV, "coco-mini")


def resolve_root(root: str | Path | None, name: str, env: str, layout: str) -> Path:
    """``root``, else the default root of data set ``name`` (``$<env>``, else
    ``<shared>/data/<name>``); raises ``DataFileError`` saying where to put it (``layout``: what
    the root folder holds) when there is none."""
    if root is not None:
        return Path(root)
    found = _dataset_root(env, name)
    if found is None:
        raise DataFileError(
            name,
            f"data set root not found: pass root=<folder holding {layout}>, or set ${env} (or "
            f"${SHARED_ENV} to the folder holding data/{name}), or place it in "
            f"../shared/data/{name} beside the repository",
        )
    return found
