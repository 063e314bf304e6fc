"""Checkpoint files: their format (this module alone builds and checks it) and atomic writes.

A checkpoint is written to a temporary file in the *same directory* as its destination, flushed
and ``fsync``-ed, then moved over the destination with ``os.replace`` (atomic on POSIX and
Windows) and the directory is ``fsync``-ed. A crash at any moment therefore leaves either the
previous complete file or the new complete file, never a truncated one; a crash between write
and rename leaves a stray ``.<name>.*.tmp`` file, which :func:`remove_stale_temporaries` deletes.

Checkpoint contents written by the :class:`~matbackprop.train.Trainer` (``last.pt``), built by
:func:`trainer_checkpoint` and checked on resume by :func:`read_trainer_checkpoint`:

``format`` ("matbackprop.train"), ``version`` (1), ``step``, ``total_steps``, ``model`` (state
dict of the unwrapped model), ``optimizer`` (state dict), ``extra`` (``extra_state.state_dict()``
or None), ``rng`` (one :func:`~matbackprop.train.capture_rng_state` per rank), ``data``
(``world_size``, ``num_items``, ``seed``, per-rank ``positions`` ``[epoch, offset]``), ``config``
(the run config as a plain dict), ``train_config`` (the ``TrainConfig`` dict), ``last_loss``,
``elapsed`` (training seconds so far), ``reason`` ("periodic", "final", "signal", "error").
Everything is plain data or tensors, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from matbackprop.errors import DataFileError
from matbackprop.train._config import config_to_dict

__all__ = [
    "atomic_save",
    "load_checkpoint",
    "load_model_weights",
    "read_trainer_checkpoint",
    "remove_stale_temporaries",
    "trainer_checkpoint",
    "write_checkpoint",
]

CHECKPOINT_FORMAT = "matbackprop.train"
CHECKPOINT_VERSION = 1


def _fsync_directory(directory: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temp file + fsync + ``os.replace``).

    Parameters
    ----------
    obj : object
        Anything ``torch.save`` accepts.
    path : str or Path
        Destination; its parent directory is created if needed.

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    If anything fails (or the process is interrupted by an exception) before the rename, the
    temporary file is removed and the previous ``path`` is untouched.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import torch
    >>> from matbackprop.train import atomic_save
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = atomic_save({"step": 3}, Path(tmp.name) / "last.pt")
    >>> torch.load(path), [p.name for p in Path(tmp.name).iterdir()]
    ({'step': 3}, ['last.pt'])
    >>> tmp.cleanup()
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_directory(path.parent)
    return path


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete ``.*.tmp`` files left by an :func:`atomic_save` that was killed before its rename.

    Returns the removed paths. Only call this when no other process writes into ``directory``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from matbackprop.train import remove_stale_temporaries
    >>> tmp = tempfile.TemporaryDirectory()
    >>> _ = (Path(tmp.name) / ".last.pt.1234.tmp").write_bytes(b"partial")
    >>> [p.name for p in remove_stale_temporaries(tmp.name)]
    ['.last.pt.1234.tmp']
    >>> tmp.cleanup()
    """
    directory = Path(directory)
    removed = []
    if directory.is_dir():
        for tmp in directory.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", weights_only: bool = True
) -> dict[str, Any]:
    """Read a checkpoint file.

    Parameters
    ----------
    path : str or Path
        A ``.pt`` file, e.g. ``runs/<name>/last.pt``.
    map_location : str or torch.device
        Where tensors are loaded (default CPU).
    weights_only : bool
        Use torch's restricted unpickler (default). Set False only for trusted files whose
        ``extra`` state holds custom objects.

    Returns
    -------
    dict

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    matbackprop.errors.DataFileError
        If it cannot be read or is not a dict.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from matbackprop.train import atomic_save, load_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = atomic_save({"step": 3, "model": {}}, Path(tmp.name) / "last.pt")
    >>> load_checkpoint(path)["step"]
    3
    >>> load_checkpoint(Path(tmp.name) / "missing.pt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: checkpoint not found: ...
    >>> tmp.cleanup()
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=weights_only)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise DataFileError(path, f"cannot read checkpoint ({exc})") from exc
    if not isinstance(state, dict):
        raise DataFileError(path, f"checkpoint must hold a dict, got {type(state).__name__}")
    return state


def load_model_weights(
    model: torch.nn.Module, path: str | Path, strict: bool = True
) -> dict[str, Any]:
    """Load the ``model`` entry of a trainer checkpoint into ``model`` (e.g. for evaluation).

    Parameters
    ----------
    model : torch.nn.Module
        The *unwrapped* model, built with the same architecture.
    path : str or Path
        Checkpoint written by the trainer (or any dict with a ``"model"`` state dict).
    strict : bool
        Passed to ``load_state_dict``.

    Returns
    -------
    dict
        The whole checkpoint (for ``step``, ``config``, ...).

    Raises
    ------
    matbackprop.errors.DataFileError
        If the file has no ``model`` entry.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import torch
    >>> from matbackprop.train import atomic_save, load_model_weights
    >>> tmp = tempfile.TemporaryDirectory()
    >>> trained = torch.nn.Linear(2, 1)
    >>> path = atomic_save({"model": trained.state_dict()}, Path(tmp.name) / "last.pt")
    >>> model = torch.nn.Linear(2, 1)
    >>> _ = load_model_weights(model, path)
    >>> torch.equal(model.weight, trained.weight)
    True
    >>> tmp.cleanup()
    """
    state = load_checkpoint(path)
    if "model" not in state:
        raise DataFileError(path, "checkpoint has no `model` entry")
    model.load_state_dict(state["model"], strict=strict)
    return state


def trainer_checkpoint(
    *,
    step: int,
    total_steps: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    extra_state: Any,
    rng: list[dict[str, Any]],
    data: dict[str, Any],
    run_config: Any,
    train_config: Any,
    last_loss: float | None,
    elapsed: float,
    reason: str,
) -> dict[str, Any]:
    """The dict the trainer saves (see the module docstring for each entry).

    ``model`` is the unwrapped model, ``extra_state`` anything with ``state_dict()`` (or None),
    ``rng`` one snapshot per rank, ``data`` the data-order position (``world_size``,
    ``num_items``, ``seed``, ``positions``); ``run_config`` / ``train_config`` are dataclasses
    (the run config becomes None if it is not one).
    """
    try:
        plain_run_config = config_to_dict(run_config)
    except ValueError:
        plain_run_config = None
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "step": step,
        "total_steps": total_steps,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "extra": extra_state.state_dict() if extra_state is not None else None,
        "rng": rng,
        "data": data,
        "config": plain_run_config,
        "train_config": config_to_dict(train_config),
        "last_loss": last_loss,
        "elapsed": elapsed,
        "reason": reason,
    }


def read_trainer_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint to resume from, on the CPU, checking that the trainer wrote it.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    matbackprop.errors.DataFileError
        If it cannot be read or is not a ``matbackprop.train`` checkpoint of this version.
    """
    state = load_checkpoint(path, map_location="cpu")
    if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
        raise DataFileError(
            path,
            f"not a {CHECKPOINT_FORMAT} v{CHECKPOINT_VERSION} checkpoint "
            f"(format={state.get('format')!r}, version={state.get('version')!r})",
        )
    return state


def write_checkpoint(state: dict[str, Any], path: Path, keep_as: Path | None = None) -> None:
    """Write ``state`` to ``path`` atomically; with ``keep_as``, write it there and make
    ``path`` a hard link of it (a second full write where links are not supported)."""
    if keep_as is None:
        atomic_save(state, path)
        return
    atomic_save(state, keep_as)
    tmp = path.with_name(f".{path.name}.link.tmp")
    try:
        if tmp.exists():
            tmp.unlink()
        os.link(keep_as, tmp)
        os.replace(tmp, path)
    except OSError:
        atomic_save(state, path)
