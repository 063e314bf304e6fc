"""Multi-process (DDP) helpers for runs launched with ``torchrun``.

``torchrun --nproc_per_node N script.py`` starts N processes and sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in each. :func:`init_distributed` reads them
and initialises the default process group (NCCL for CUDA devices, gloo for CPU) unless one is
already initialised (then it is used and left alone at the end). Without those variables (or with
``WORLD_SIZE=1``) everything runs as a single process and the collectives below are no-ops.

Only the main process (rank 0) writes logs, checkpoints and the progress bar; see
:func:`is_main_process`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistributedContext",
    "cleanup_distributed",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "resolve_device",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes
    ----------
    rank, world_size, local_rank : int
    backend : str or None
        ``"gloo"``/``"nccl"`` when distributed, else None.
    owns_group : bool
        True when :func:`init_distributed` created the process group (and
        :func:`cleanup_distributed` will destroy it).

    Examples
    --------
    >>> from matbackprop.train import DistributedContext
    >>> context = DistributedContext()                  # a single-process run
    >>> context.rank, context.world_size, context.backend
    (0, 1, None)
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- collectives (no-ops for a single process) -------------------------------------------

    def barrier(self) -> None:
        """Wait for all processes."""
        if self.is_distributed:
            dist.barrier()

    def all_sum(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sum of a list of floats over processes."""
        if not self.is_distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def all_gather(self, obj: Any) -> list[Any]:
        """Every process's (picklable) ``obj``, in rank order."""
        if not self.is_distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an int, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"environment variable {name} must be >= 0, got {value}")
    return value


def get_rank() -> int:
    """Rank of this process (from the process group, else ``$RANK``, else 0).

    Examples
    --------
    >>> from matbackprop.train import get_rank
    >>> get_rank()                                      # 0 outside torchrun
    0
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0)


def get_world_size() -> int:
    """Number of processes (from the process group, else ``$WORLD_SIZE``, else 1).

    Examples
    --------
    >>> from matbackprop.train import get_world_size
    >>> get_world_size()                                # 1 outside torchrun
    1
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _env_int("WORLD_SIZE", 1)


def is_main_process() -> bool:
    """True on rank 0 (and in single-process runs); usable before the group is initialised.

    Examples
    --------
    >>> from matbackprop.train import is_main_process
    >>> is_main_process()
    True
    """
    return get_rank() == 0


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """Turn a config device string into a ``torch.device``.

    Parameters
    ----------
    spec : str
        ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:<i>"``.
    local_rank : int, optional
        CUDA index for ``"auto"``/``"cuda"`` (default ``$LOCAL_RANK`` or 0).

    Raises
    ------
    ValueError
        For an unknown spec, or CUDA requested but not available.

    Examples
    --------
    >>> from matbackprop.train import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("tpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: `device` must be 'auto', 'cpu', 'cuda' or ...
    """
    if local_rank is None:
        local_rank = _env_int("LOCAL_RANK", 0)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"`device` is {spec!r} but CUDA is not available; use 'cpu' or 'auto'")
        index = local_rank if spec == "cuda" else int(spec.split(":", 1)[1])
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"`device` {spec!r} resolves to cuda:{index}, but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
        return torch.device("cuda", index)
    raise ValueError(f"`device` must be 'auto', 'cpu', 'cuda' or 'cuda:<i>', got {spec!r}")


def init_distributed(device: torch.device, timeout_s: float = 1800.0) -> DistributedContext:
    """Initialise the default process group from the ``torchrun`` environment.

    Parameters
    ----------
    device : torch.device
        The device this process trains on: CUDA selects NCCL (and ``torch.cuda.set_device``),
        CPU selects gloo.
    timeout_s : float
        Collective timeout.

    Returns
    -------
    DistributedContext
        Single-process context when ``WORLD_SIZE`` is unset or 1 and no group exists.

    Raises
    ------
    ValueError
        If ``RANK`` / ``WORLD_SIZE`` are inconsistent.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.train import init_distributed
    >>> context = init_distributed(torch.device("cpu"))   # without torchrun: a single process
    >>> context.world_size, context.owns_group
    (1, False)
    """
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=_env_int("LOCAL_RANK", 0),
            backend=str(dist.get_backend()),
            owns_group=False,
        )
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistributedContext()
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if rank >= world_size:
        raise ValueError(f"RANK ({rank}) must be < WORLD_SIZE ({world_size})")
    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but torch.distributed is not available in this build")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    return DistributedContext(rank, world_size, local_rank, backend, owns_group=True)


def cleanup_distributed(ctx: DistributedContext) -> None:
    """Destroy the process group if ``ctx`` created it."""
    if ctx.owns_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
