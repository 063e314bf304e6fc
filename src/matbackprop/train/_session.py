"""The state of one :meth:`Trainer.fit <matbackprop.train.Trainer.fit>` call and what it does
besides stepping: checkpoints, stops on a signal, failures every rank raises together, log
records and evaluations.

:class:`FitSession` holds the collaborators (process context, model, optimizer, data order, log)
and the progress (step, stream position, times), so each helper takes only what is particular to
it (a reason, a failure, a gradient norm).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from matbackprop.errors import DataFileError
from matbackprop.train._checkpoint import trainer_checkpoint, write_checkpoint
from matbackprop.train._data import DataOrder, StreamPosition
from matbackprop.train._distributed import DistributedContext, is_main_process
from matbackprop.train._logging import RunLogger, say
from matbackprop.train._rng import capture_rng_state, preserved_rng
from matbackprop.train._signals import StopRequest
from matbackprop.train._step import LossWindow, as_float_metrics
from matbackprop.train._train_config import TrainConfig

EvalFn = Callable[[torch.nn.Module, int], Mapping[str, Any]]


def say_main(ctx: DistributedContext | None, message: str) -> None:
    """``say`` on the main process only (``ctx=None``: before the process group exists)."""
    if (ctx is None and not is_main_process()) or (ctx is not None and not ctx.is_main):
        return
    say(message)


def describe_failure(failure: BaseException | None, rank: int) -> dict[str, Any] | None:
    """A picklable description of a failure to fetch a batch, for the other ranks."""
    if failure is None:
        return None
    if isinstance(failure, DataFileError):
        return {
            "type": "DataFileError",
            "path": str(failure.path),
            "reason": failure.reason,
            "message": str(failure),
            "rank": rank,
        }
    return {
        "type": type(failure).__name__,
        "path": None,
        "reason": None,
        "message": f"{type(failure).__name__}: {failure}",
        "rank": rank,
    }


@dataclass
class FitSession:
    """Everything one ``fit`` call works with, and its progress.

    ``model`` is the unwrapped model (what checkpoints hold); ``step`` counts optimizer steps,
    ``position`` is this rank's place in its data stream, ``train_time`` the training seconds
    of earlier (resumed) runs and ``clock`` the monotonic time this call started training.
    ``lockstep_error`` is the error this call raised together with every rank (bad data, a
    non-finite gradient): after it the process group is still usable.
    """

    config: TrainConfig
    run_config: Any
    extra_state: Any
    ctx: DistributedContext
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    order: DataOrder
    logger: RunLogger
    run_dir: Path
    checkpoint_path: Path
    step: int
    position: StreamPosition
    total_steps: int
    train_time: float = 0.0
    last_loss: float | None = None
    clock: float = field(default_factory=time.monotonic)
    skipped: int = 0
    signal: str | None = None
    saved_step: int | None = None
    checkpoint: Path | None = None
    lockstep_error: BaseException | None = None

    def elapsed(self) -> float:
        """Training seconds including previous (resumed) runs."""
        return self.train_time + (time.monotonic() - self.clock)

    # ---------------------------------------------------------------------------- checkpoints

    def save(self, reason: str) -> Path:
        """Write the checkpoint of the current step (collective: every rank must call it)."""
        if self.saved_step == self.step and self.checkpoint is not None:
            return self.checkpoint
        ctx = self.ctx
        per_rank = ctx.all_gather({"rng": capture_rng_state(), "position": self.position.as_list()})
        if ctx.is_main:
            state = trainer_checkpoint(
                step=self.step,
                total_steps=self.total_steps,
                model=self.model,
                optimizer=self.optimizer,
                extra_state=self.extra_state,
                rng=[r["rng"] for r in per_rank],
                data={
                    "world_size": ctx.world_size,
                    "num_items": self.order.num_items,
                    "seed": self.order.seed,
                    "positions": [r["position"] for r in per_rank],
                },
                run_config=self.run_config,
                train_config=self.config,
                last_loss=self.last_loss,
                elapsed=self.elapsed(),
                reason=reason,
            )
            keep = self.run_dir / f"step_{self.step:08d}.pt"
            write_checkpoint(
                state, self.checkpoint_path, keep if self.config.keep_checkpoints else None
            )
            self.logger.log(
                {
                    "event": "checkpoint",
                    "step": self.step,
                    "path": str(self.checkpoint_path),
                    "reason": reason,
                }
            )
        ctx.barrier()
        self.saved_step, self.checkpoint = self.step, self.checkpoint_path
        return self.checkpoint_path

    # ---------------------------------------------------------------------------- stops

    def stop_on_signal(self, stop: StopRequest) -> None:
        """Checkpoint and log a stop asked for by SIGINT/SIGTERM (on any rank)."""
        name = stop.name or "a signal on another rank"
        path = self.save("signal")
        self.signal = stop.name or "signal"
        message = (
            f"Stopped by {name} at step {self.step}/{self.total_steps}; checkpoint written to "
            f"{path}. Resume with Trainer.fit(resume=True) (same config and run name)."
        )
        self.logger.log(
            {"event": "stop", "step": self.step, "reason": self.signal, "message": message}
        )
        self.logger.flush()
        say_main(self.ctx, message)

    def fail_on_data(self, failure: BaseException | None, first: dict[str, Any]) -> None:
        """Checkpoint, log and raise a failure to fetch a batch (``first``: the first rank's,
        see :func:`describe_failure`); this rank re-raises its own ``failure`` if it had one."""
        path = self.save("error")
        note = (
            f"training stopped before step {self.step + 1}; the checkpoint {path} holds the "
            f"state after step {self.step} and logs are in {self.run_dir}. "
            + (
                "Fix or remove the file, or set skip_bad=True to skip unreadable items, then "
                "resume with resume=True."
                if first["type"] == "DataFileError"
                else ""
            )
        )
        self.logger.log(
            {
                "event": "stop",
                "step": self.step,
                "reason": "error",
                "message": f"{first['message']} ({note})",
            }
        )
        self.logger.flush()
        if failure is not None:
            failure.add_note(note)
            error = failure
        else:
            if first["type"] == "DataFileError":
                error = DataFileError(first["path"], first["reason"])
            else:
                error = RuntimeError(f"rank {first['rank']} failed: {first['message']}")
            error.add_note(f"(raised on rank {first['rank']}) " + note)
        self.lockstep_error = error
        raise error

    def fail_on_nonfinite(self, grad_norm: float, loss: float) -> None:
        """Checkpoint the state before the step, log and raise ``FloatingPointError``."""
        self.optimizer.zero_grad(set_to_none=True)
        path = self.save("error")
        message = (
            f"non-finite gradient norm ({grad_norm}) at step {self.step + 1} (loss {loss}); the "
            f"checkpoint {path} holds the state after step {self.step}. Set "
            "on_nonfinite='skip' to skip such updates."
        )
        self.logger.log(
            {"event": "stop", "step": self.step, "reason": "nonfinite", "message": message}
        )
        self.logger.flush()
        self.lockstep_error = FloatingPointError(message)
        raise self.lockstep_error

    # ---------------------------------------------------------------------------- records

    def window_record(self, window: LossWindow, lr: float) -> dict[str, Any]:
        """The ``train`` log record of the steps in ``window``, averaged over every rank."""
        parts = self.ctx.all_gather(
            {
                "loss": window.loss,
                "grad_norm": window.grad_norm,
                "count": window.count,
                "metrics": window.metrics,
            }
        )
        count = sum(p["count"] for p in parts) or 1
        keys = sorted({k for p in parts for k in p["metrics"]})
        metrics = {k: sum(p["metrics"].get(k, 0.0) for p in parts) / count for k in keys}
        epoch = self.position.epoch + self.position.offset / self.order.shard_length
        return {
            "event": "train",
            "step": self.step,
            "epoch": round(epoch, 6),
            "loss": sum(p["loss"] for p in parts) / count,
            "grad_norm": sum(p["grad_norm"] for p in parts) / count,
            "lr": lr,
            "metrics": metrics,
            "time": round(self.elapsed(), 3),
        }

    def evaluate(self, eval_fn: EvalFn | None) -> dict[str, float] | None:
        """Run ``eval_fn`` on rank 0 (eval mode, no grad, RNG states kept) and log it."""
        if not self.ctx.is_main or eval_fn is None:
            return None
        self.model.eval()
        try:
            with torch.no_grad(), preserved_rng():
                results = as_float_metrics(eval_fn(self.model, self.step), "`eval_fn`")
        finally:
            self.model.train()
        self.logger.log(
            {
                "event": "eval",
                "step": self.step,
                "metrics": results,
                "time": round(self.elapsed(), 3),
            }
        )
        say(f"step {self.step}: eval " + ", ".join(f"{k}={v:.4g}" for k, v in results.items()))
        return results
