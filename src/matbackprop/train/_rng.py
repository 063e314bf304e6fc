"""Random-number-generator state: seeding, capture/restore for checkpoints, scoped reseeding.

Three global generators matter in a PyTorch training script: Python's ``random``, NumPy's legacy
global ``np.random`` and torch's default CPU generator (plus one per CUDA device). The trainer

- seeds them with :func:`seed_everything` at the start of a fresh run,
- stores them with :func:`capture_rng_state` in every checkpoint and puts them back with
  :func:`restore_rng_state` on resume,
- seeds the CPU generators with :func:`seed_cpu_generators` before fetching each data item
  (item-specific seeds; the main process's states are put back after each batch with
  :func:`preserved_cpu_rng`), so that data augmentation neither depends on nor perturbs the
  model-side streams,
- runs ``eval_fn`` inside :func:`preserved_rng` so evaluation never changes training,
- and, with ``deterministic=True``, trains inside :func:`deterministic_algorithms`.

Captured states contain only tensors, ints, floats, strings, lists and dicts, so checkpoints load
with ``torch.load(..., weights_only=True)``.
"""

# ruff: noqa: NPY002  (managing the legacy global NumPy RNG is the point of this module)
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = [
    "capture_rng_state",
    "deterministic_algorithms",
    "preserved_cpu_rng",
    "preserved_rng",
    "restore_rng_state",
    "seed_cpu_generators",
    "seed_everything",
]


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, NumPy's global RNG and torch (CPU and all CUDA devices).

    Parameters
    ----------
    seed : int
        Non-negative; NumPy receives ``seed mod 2**32``.

    Raises
    ------
    ValueError
        If ``seed`` is not a non-negative int.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.train import seed_everything
    >>> seed_everything(0)
    >>> a = torch.rand(2)
    >>> seed_everything(0)
    >>> torch.equal(a, torch.rand(2))
    True
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _cuda_ready() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def capture_rng_state() -> dict[str, Any]:
    """Snapshot of the global RNG states: Python, NumPy, torch CPU and the current CUDA device.

    The CUDA state is included only when CUDA is initialised (a CPU run never initialises it).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.train import capture_rng_state, restore_rng_state
    >>> state = capture_rng_state()
    >>> first = torch.rand(2)
    >>> restore_rng_state(state)
    >>> torch.equal(first, torch.rand(2))
    True
    >>> sorted(state)
    ['cuda', 'numpy', 'python', 'torch']
    """
    np_state = np.random.get_state(legacy=False)
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        # only the current device: the one this process (rank) trains on
        "cuda": [torch.cuda.get_rng_state()] if _cuda_ready() else [],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back a snapshot taken by :func:`capture_rng_state`.

    The CUDA state goes to the current CUDA device when CUDA is available; otherwise it is
    ignored (e.g. resuming a GPU run on CPU).

    Raises
    ------
    ValueError
        If ``state`` is not such a snapshot.

    Examples
    --------
    >>> import random
    >>> from matbackprop.train import capture_rng_state, restore_rng_state
    >>> state = capture_rng_state()
    >>> first = random.random()
    >>> restore_rng_state(state)
    >>> random.random() == first
    True
    """
    try:
        version, internal, gauss = state["python"]
        random.setstate((int(version), tuple(int(v) for v in internal), gauss))
        ns = state["numpy"]
        np.random.set_state(
            (
                "MT19937",
                ns["key"].numpy().astype(np.uint32),
                int(ns["pos"]),
                int(ns["has_gauss"]),
                float(ns["gauss"]),
            )
        )
        torch.set_rng_state(state["torch"])
        cuda = state.get("cuda") or []
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"`state` is not an RNG snapshot ({exc})") from exc
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda[0])


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block and put every global RNG state back afterwards."""
    state = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(state)


def seed_cpu_generators(seed: int) -> None:
    """Seed Python ``random``, NumPy's global RNG and torch's CPU generator (not CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)


@contextmanager
def preserved_cpu_rng() -> Iterator[None]:
    """Run a block and put the Python, NumPy and torch-CPU RNG states back afterwards.

    Cheaper than :func:`preserved_rng` (CUDA generators are left alone).
    """
    py_state = random.getstate()
    np_state = np.random.get_state(legacy=False)
    torch_state = torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` + deterministic cuDNN.

    ``warn_only=True``: an op without a deterministic implementation warns instead of raising,
    so enabling it never breaks a model. The previous settings are restored afterwards.
    ``CUBLAS_WORKSPACE_CONFIG`` is set (if unset) for deterministic cuBLAS; it only takes effect
    if CUDA was not initialised before. ``enabled=False`` changes nothing.
    """
    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic = previous[2]
        torch.backends.cudnn.benchmark = previous[3]
