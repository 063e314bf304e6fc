"""Resuming a run: which checkpoint, and putting back its data position, RNG states and config.

Each function warns (on the main process) when a resume cannot be exact: a different world
size, data set or seed restarts the data order at the next epoch; RNG states for another number
of processes are replaced by a reseed; a changed trajectory-relevant config is used as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matbackprop.train._config import config_to_dict
from matbackprop.train._data import DataOrder, StreamPosition
from matbackprop.train._distributed import DistributedContext
from matbackprop.train._rng import restore_rng_state, seed_everything
from matbackprop.train._session import say_main
from matbackprop.train._train_config import TrainConfig

# TrainConfig fields that do not change the training trajectory (ignored when checking that a
# resumed run uses the checkpoint's config).
TRAJECTORY_NEUTRAL = {
    "steps",
    "epochs",
    "checkpoint_every",
    "keep_checkpoints",
    "log_every",
    "eval_every",
    "progress",
    "num_workers",
    "device",
    "out_dir",
    "name",
}


def checkpoint_to_resume(resume: Any, last: Path) -> Path | None:
    """The checkpoint ``Trainer.fit(resume=...)`` continues from (None: a fresh run)."""
    if resume is False:
        return None
    if resume is True:
        if not last.is_file():
            raise FileNotFoundError(
                f"no checkpoint to resume from: {last} does not exist; "
                "start a fresh run (resume=False) or use resume='auto'"
            )
        return last
    if resume == "auto":
        if last.is_file():
            return last
        say_main(None, f"warning: resume='auto' but {last} does not exist; starting a fresh run")
        return None
    if isinstance(resume, os.PathLike):
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint to resume from: {path} does not exist")
        return path
    raise ValueError(f"`resume` must be True, False, 'auto' or a Path, got {resume!r}")


def resumed_position(
    checkpoint: dict[str, Any], ctx: DistributedContext, order: DataOrder
) -> StreamPosition:
    """This rank's data-stream position from the checkpoint (or the next epoch's start)."""
    data = checkpoint["data"]
    positions = [StreamPosition(int(e), int(o)) for e, o in data["positions"]]
    same = (
        int(data["world_size"]) == ctx.world_size
        and int(data["num_items"]) == order.num_items
        and int(data["seed"]) == order.seed
    )
    if same:
        return positions[ctx.rank]
    restart = StreamPosition(max(p.epoch for p in positions) + 1, 0)
    say_main(
        ctx,
        (
            f"warning: the checkpoint's data order (world size {data['world_size']}, "
            f"{data['num_items']} items, seed {data['seed']}) differs from this run's "
            f"(world size {ctx.world_size}, {order.num_items} items, seed {order.seed}); "
            f"the data order restarts at epoch {restart.epoch}, resume is not exact"
        ),
    )
    return restart


def restore_rng(checkpoint: dict[str, Any], seed: int, ctx: DistributedContext, step: int) -> None:
    """Put back this rank's RNG states (or reseed, for another number of processes)."""
    states = checkpoint.get("rng") or []
    if len(states) == ctx.world_size:
        restore_rng_state(states[ctx.rank])
    else:
        seed_everything(seed + ctx.rank + 7919 * step)
        say_main(
            ctx,
            "warning: the checkpoint's RNG states are for "
            f"{len(states)} process(es); reseeding, resume is not exact",
        )


def warn_if_config_changed(
    checkpoint: dict[str, Any], config: TrainConfig, ctx: DistributedContext
) -> None:
    """Warn when ``config`` differs from the checkpoint's in a trajectory-relevant field."""
    saved = checkpoint.get("train_config") or {}
    now = config_to_dict(config)
    changed = sorted(
        k
        for k in set(saved) | set(now)
        if k not in TRAJECTORY_NEUTRAL and saved.get(k) != now.get(k)
    )
    if changed:
        say_main(
            ctx,
            "warning: resuming with a config that differs from the checkpoint's in "
            f"{', '.join(changed)}; the current values are used, resume is not exact",
        )
