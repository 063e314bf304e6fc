"""The training loop shared by every task (DeepNCuts segmentation, DeepO2P classification, ...).

:class:`Trainer` reads top to bottom: config -> run directory -> seeds -> model and optimizer ->
(resume) -> DDP -> data -> logs -> loop. Each step fetches a batch, agrees with the other
processes on whether to go on (signals, bad files), runs ``loss_fn``, back-propagates, clips,
updates, then logs / evaluates / checkpoints on schedule. What happens besides stepping
(checkpoints, stops, failures, records) is done by the state of the call,
:class:`~matbackprop.train._session.FitSession`.

Resume is exact: a run killed at any moment (even SIGKILL) and resumed from its last checkpoint
ends bitwise identical to an uninterrupted run with the same config, on the same hardware and
software (model, optimizer buffers, step counter, schedule, every RNG state on every rank, and
the data order position are all in the checkpoint).
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

from matbackprop.train._checkpoint import read_trainer_checkpoint, remove_stale_temporaries
from matbackprop.train._config import save_config
from matbackprop.train._data import BatchStream, DataOrder, StreamPosition
from matbackprop.train._distributed import (
    DistributedContext,
    cleanup_distributed,
    init_distributed,
    resolve_device,
)
from matbackprop.train._logging import RunLogger, say
from matbackprop.train._optim import (
    LRSchedule,
    apply_lr,
    build_optimizer,
    group_hyperparameters,
    restore_hyperparameters,
)
from matbackprop.train._resume import (
    checkpoint_to_resume,
    restore_rng,
    resumed_position,
    warn_if_config_changed,
)
from matbackprop.train._rng import deterministic_algorithms, seed_everything
from matbackprop.train._session import EvalFn, FitSession, describe_failure, say_main
from matbackprop.train._signals import StopRequest
from matbackprop.train._step import (
    LossWindow,
    checked_loss,
    grad_norm,
    move_to_device,
    resolve_total_steps,
)
from matbackprop.train._train_config import TrainConfig

__all__ = ["Trainer"]

LossFn = Callable[[torch.nn.Module, Any], Any]

class Trainer:
    """Generic trainer: one loop for every task, single process or DDP.

    Parameters
    ----------
    config : TrainConfig
    model : torch.nn.Module
        Trained in place (moved to the configured device). Build it *after*
        ``seed_everything(config.seed)`` for reproducible initial weights; under DDP rank 0's
        initial weights are broadcast to the others.
    train_dataset : map-style dataset
        ``len(ds)`` and ``ds[i]``; raises ``matbackprop.errors.DataFileError`` for bad files.
        Random augmentation should draw from Python ``random``, ``np.random`` or torch's global
        generator (they are seeded per item, see :mod:`matbackprop.train._data`).
    loss_fn : callable
        ``loss_fn(model, batch) -> (loss, metrics)`` (or just ``loss``): ``loss`` a scalar tensor
        to minimise, ``metrics`` a dict of floats / 1-element tensors to log. ``batch`` is the
        collated batch, already moved to the device. Under DDP ``model`` is the DDP wrapper: call
        ``model(...)`` for the forward pass (use :func:`unwrap_model` to reach attributes).
    collate_fn : callable, optional
        ``list of items -> batch``; default ``torch.utils.data.default_collate``.
    eval_fn : callable, optional
        ``eval_fn(model, step) -> dict of floats``, called on rank 0 every ``eval_every`` steps
        and after the last step, with the unwrapped model in eval mode, under ``torch.no_grad``
        and with all RNG states saved and restored around it (evaluation never changes the
        training trajectory). Results go to the log (``event: "eval"``).
    param_groups : list of dict, optional
        Custom optimizer groups (``params``, optional ``lr_scale``, ``weight_decay``); default:
        all trainable parameters (see :func:`matbackprop.train.build_optimizer`).
    extra_state : object, optional
        Anything with ``state_dict()`` / ``load_state_dict(d)`` (e.g. an EMA of the weights)
        saved in and restored from checkpoints.
    run_config : dataclass, optional
        The full experiment config (of which ``config`` may be a part), copied to
        ``<run_dir>/config.yaml`` and into checkpoints; default ``config``.

    Attributes
    ----------
    run_dir : Path
        ``config.out_dir / config.name``.
    checkpoint_path : Path
        ``run_dir / "last.pt"``.

    Raises
    ------
    ValueError
        For arguments of the wrong kind (named).

    Notes
    -----
    **Run directory** (written by rank 0 only): ``config.yaml``, ``metrics.jsonl`` (see
    :mod:`matbackprop.train._logging`), ``skipped.txt``, ``last.pt`` and, with
    ``keep_checkpoints``, ``step_<NNNNNNNN>.pt``. Checkpoints are written atomically every
    ``checkpoint_every`` steps, after the last step, on SIGINT/SIGTERM and before raising for bad
    data or a non-finite gradient.

    **Signals**: during :meth:`fit`, SIGINT and SIGTERM only set a flag; at the next step
    boundary (agreed by all ranks) a checkpoint is written, a message says how to resume and
    ``fit`` returns with ``summary["interrupted"] = True``. A second Ctrl-C aborts at once. The
    previous handlers are restored when ``fit`` returns.

    **Bad data**: a ``DataFileError`` while fetching stops training with that error (its message
    names the file; a note says which checkpoint holds the state before the failing batch),
    after the log is flushed and the checkpoint written. With ``skip_bad`` the item is recorded
    in ``skipped.txt`` and the log, and the next item of the stream takes its place.

    **DDP**: under ``torchrun`` (``WORLD_SIZE > 1``) ``fit`` initialises the process group
    (gloo on CPU, NCCL on CUDA; an existing group is reused and not destroyed), shards the data
    order (each rank gets ``batch_size`` items per step), wraps the model in
    ``DistributedDataParallel``, and leaves logs, progress bar, evaluation and checkpoint files
    to rank 0 (with barriers around checkpoint writes). Every rank's RNG states and data position
    are gathered into the checkpoint; resuming needs the same world size for an exact
    continuation (otherwise the data order restarts at the next epoch, with a warning). The run
    directory must be visible to all ranks to resume.
    """

    def __init__(
        self,
        config: TrainConfig,
        model: torch.nn.Module,
        train_dataset: Any,
        loss_fn: LossFn,
        *,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        eval_fn: EvalFn | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        extra_state: Any = None,
        run_config: Any = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise ValueError(f"`config` must be a TrainConfig, got {type(config).__name__}")
        if config.seeds is not None:
            raise ValueError(
                f"`config.seeds` ({config.seeds}) repeats a task's run per seed; a Trainer "
                "trains one seed: set `seed` and `seeds=None` (tasks do this per seed)"
            )
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if not (hasattr(train_dataset, "__len__") and hasattr(train_dataset, "__getitem__")):
            raise ValueError(
                "`train_dataset` must be a map-style dataset (with __len__ and __getitem__), "
                f"got {type(train_dataset).__name__}"
            )
        for name, fn in (("loss_fn", loss_fn), ("collate_fn", collate_fn), ("eval_fn", eval_fn)):
            if fn is not None and not callable(fn):
                raise ValueError(f"`{name}` must be callable, got {type(fn).__name__}")
        if loss_fn is None:
            raise ValueError("`loss_fn` must be callable, got None")
        if extra_state is not None and not (
            callable(getattr(extra_state, "state_dict", None))
            and callable(getattr(extra_state, "load_state_dict", None))
        ):
            raise ValueError("`extra_state` must have state_dict() and load_state_dict()")
        if run_config is not None and (
            not dataclasses.is_dataclass(run_config) or isinstance(run_config, type)
        ):
            raise ValueError(
                f"`run_config` must be a dataclass instance, got {type(run_config).__name__}"
            )
        self.config = config
        self.model = model
        self.train_dataset = train_dataset
        self.loss_fn = loss_fn
        self.collate_fn = collate_fn or torch.utils.data.default_collate
        self.eval_fn = eval_fn
        self.param_groups = param_groups
        self.extra_state = extra_state
        self.run_config = config if run_config is None else run_config
        self.run_dir = config.run_dir
        self.checkpoint_path = self.run_dir / "last.pt"

    # ------------------------------------------------------------------------------ public

    def fit(self, resume: bool | Literal["auto"] | os.PathLike[str] = False) -> dict[str, Any]:
        """Train for the configured number of steps.

        Parameters
        ----------
        resume : bool, "auto" or path
            ``False``: start fresh (an existing ``last.pt`` in the run directory is overwritten,
            with a warning). ``True``: continue from ``<run_dir>/last.pt``; raises
            ``FileNotFoundError`` if there is none. ``"auto"``: resume if ``last.pt`` exists,
            else start fresh with a warning (for jobs that may be restarted). A path (a
            ``pathlib.Path``): continue from that checkpoint file.

        Returns
        -------
        dict
            ``step`` (final step), ``total_steps``, ``last_loss``, ``wall_time`` (seconds of
            this call), ``train_time`` (seconds summed over resumes), ``interrupted`` (bool),
            ``signal`` (name or None), ``resumed_from`` (step or None), ``checkpoint`` (last file
            written or None), ``run_dir``, ``skipped`` (items skipped in this call),
            ``last_eval`` (dict or None).

        Raises
        ------
        FileNotFoundError
            ``resume=True`` (or a path) and no checkpoint.
        matbackprop.errors.DataFileError
            A bad data file without ``skip_bad`` (after writing a checkpoint).
        FloatingPointError
            A non-finite gradient norm with ``on_nonfinite="raise"`` (after a checkpoint).
        ValueError
            Bad config combinations (e.g. neither ``steps`` nor ``epochs``) or a bad ``loss_fn``
            result.
        """
        resume_from = checkpoint_to_resume(resume, self.checkpoint_path)
        device = resolve_device(self.config.device)
        ctx = init_distributed(device)
        logger = RunLogger(self.run_dir, enabled=ctx.is_main)
        session: FitSession | None = None
        ranks_in_step = True
        wall_start = time.monotonic()
        try:
            with deterministic_algorithms(self.config.deterministic), StopRequest() as stop:
                session, checkpoint = self._start(ctx, device, resume_from, logger)
                resumed_from = session.step if checkpoint is not None else None
                last_eval = self._loop(session, device, stop, checkpoint)
        except BaseException as exc:
            # errors raised in lockstep by every rank (bad data, non-finite gradients) keep the
            # process group usable; anything else may have left the ranks out of step
            ranks_in_step = session is None or exc is session.lockstep_error
            raise
        finally:
            logger.close()
            # Destroying the group is collective: after an exception that only some ranks
            # raised (e.g. inside loss_fn) it could hang, so it is then left to process exit.
            if ranks_in_step:
                cleanup_distributed(ctx)
        return {
            "step": session.step,
            "total_steps": session.total_steps,
            "last_loss": session.last_loss,
            "wall_time": time.monotonic() - wall_start,
            "train_time": session.elapsed(),
            "interrupted": session.signal is not None,
            "signal": session.signal,
            "resumed_from": resumed_from,
            "checkpoint": str(session.checkpoint) if session.checkpoint is not None else None,
            "run_dir": str(self.run_dir),
            "skipped": session.skipped,
            "last_eval": last_eval,
        }

    # ------------------------------------------------------------------------------ the run

    def _start(
        self,
        ctx: DistributedContext,
        device: torch.device,
        resume_from: Path | None,
        logger: RunLogger,
    ) -> tuple[FitSession, dict[str, Any] | None]:
        """Steps 1 to 5: run directory, seeds, model and optimizer, resume, logs. Returns the
        session and the checkpoint resumed from (or None)."""
        cfg = self.config

        # 1. run directory
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(self.run_dir)
            if resume_from is None and self.checkpoint_path.exists():
                say(
                    f"warning: starting a fresh run in {self.run_dir}; its existing checkpoint "
                    "and logs will be overwritten (use resume=True to continue it)"
                )
            save_config(self.run_config, self.run_dir / "config.yaml")
        ctx.barrier()
        checkpoint = read_trainer_checkpoint(resume_from) if resume_from is not None else None

        # 2. seeds (a resumed run restores every RNG state just before the loop instead)
        if checkpoint is None:
            seed_everything(cfg.seed + ctx.rank)

        # 3. model, optimizer, schedule, data order
        model = self.model.to(device)
        optimizer = build_optimizer(model, cfg.optim, self.param_groups)
        hyper = group_hyperparameters(optimizer)
        num_items = len(self.train_dataset)
        total_steps = resolve_total_steps(cfg, num_items, ctx.world_size)
        order = DataOrder(num_items, cfg.seed, ctx.rank, ctx.world_size)

        # 4. resume
        step, position, train_time, last_loss = 0, StreamPosition(), 0.0, None
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            restore_hyperparameters(optimizer, hyper)  # the current config's LR, decay, ...
            if self.extra_state is not None and checkpoint.get("extra") is not None:
                self.extra_state.load_state_dict(checkpoint["extra"])
            step = int(checkpoint["step"])
            train_time = float(checkpoint.get("elapsed", 0.0))
            last_loss = checkpoint.get("last_loss")
            position = resumed_position(checkpoint, ctx, order)
            warn_if_config_changed(checkpoint, cfg, ctx)

        # 5. logs
        logger.start(fresh=checkpoint is None, keep_until_step=step)
        logger.log(
            {
                "event": "start",
                "step": step,
                "total_steps": total_steps,
                "world_size": ctx.world_size,
                "rank": ctx.rank,
                "resumed_from": step if checkpoint is not None else None,
                "time": train_time,
            }
        )
        session = FitSession(
            config=cfg,
            run_config=self.run_config,
            extra_state=self.extra_state,
            ctx=ctx,
            model=model,
            optimizer=optimizer,
            order=order,
            logger=logger,
            run_dir=self.run_dir,
            checkpoint_path=self.checkpoint_path,
            step=step,
            position=position,
            total_steps=total_steps,
            train_time=train_time,
            last_loss=last_loss,
        )
        return session, checkpoint

    def _loop(
        self,
        session: FitSession,
        device: torch.device,
        stop: StopRequest,
        checkpoint: dict[str, Any] | None,
    ) -> dict[str, float] | None:
        """Steps 6 to 8: DDP, data, the loop. Returns the last evaluation (or None)."""
        cfg, ctx, model, optimizer = self.config, session.ctx, session.model, session.optimizer
        params = [p for g in optimizer.param_groups for p in g["params"]]
        schedule = LRSchedule(cfg.schedule, session.total_steps)

        # 6. DDP
        train_model: torch.nn.Module = model
        if ctx.is_distributed:
            train_model = torch.nn.parallel.DistributedDataParallel(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters,
            )

        # 7. data and progress bar
        stream = BatchStream(
            self.train_dataset,
            session.order,
            session.position,
            cfg.batch_size,
            cfg.skip_bad,
            cfg.num_workers,
            self.collate_fn,
        )
        bar = self._progress_bar(ctx, session.step, session.total_steps)
        if checkpoint is not None:
            restore_rng(checkpoint, cfg.seed, ctx, session.step)
            say_main(ctx, f"resumed {self.run_dir} at step {session.step}/{session.total_steps}")

        # 8. the loop
        session.clock = time.monotonic()
        window = LossWindow()
        last_eval: dict[str, float] | None = None
        train_model.train()
        try:
            while session.step < session.total_steps:
                # 8a. fetch the next batch
                batch, skipped, new_position, failure = None, [], session.position, None
                try:
                    batch, skipped, new_position = stream.next_batch()
                    batch = move_to_device(batch, device)
                except Exception as exc:  # noqa: BLE001 - reported to all ranks below
                    failure = exc

                # 8b. agree on going on (one small all-reduce per step under DDP)
                n_stop, n_fail, n_skipped = ctx.all_sum(
                    [float(stop.requested), float(failure is not None), float(len(skipped))],
                    device,
                )
                if n_fail:
                    failures = ctx.all_gather(describe_failure(failure, ctx.rank))
                    errors = [f for f in failures if f is not None]
                    interrupted_fetch = n_stop and all(f["type"] != "DataFileError" for f in errors)
                    if not interrupted_fetch:
                        session.fail_on_data(failure, errors[0])
                if n_stop:
                    session.stop_on_signal(stop)
                    break
                if n_skipped:
                    session.skipped += len(skipped)
                    gathered = ctx.all_gather([(ctx.rank, bad) for bad in skipped])
                    for rank, bad in (item for per_rank in gathered for item in per_rank):
                        session.logger.log_skip(
                            session.step + 1, rank, bad.index, bad.path, bad.reason
                        )

                # 8c. forward, backward, update
                lr = apply_lr(optimizer, schedule, session.step)
                optimizer.zero_grad(set_to_none=True)
                loss, metrics = checked_loss(self.loss_fn(train_model, batch))
                loss.backward()
                norm = grad_norm(params, cfg.grad_clip)
                if not math.isfinite(norm):
                    if cfg.on_nonfinite == "raise":
                        session.fail_on_nonfinite(norm, float(loss.detach()))
                    optimizer.zero_grad(set_to_none=True)
                    session.logger.log(
                        {"event": "nonfinite", "step": session.step + 1, "grad_norm": norm}
                    )
                else:
                    optimizer.step()
                session.step += 1
                session.position = new_position
                session.last_loss = float(loss.detach())
                window.add(session.last_loss, norm, metrics)
                if bar is not None:
                    bar.update(1)

                # 8d. log, evaluate, checkpoint
                last = session.step == session.total_steps
                if session.step % cfg.log_every == 0 or last:
                    record = session.window_record(window, lr)
                    session.logger.log(record)
                    if bar is not None:
                        bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
                    window = LossWindow()
                if (
                    self.eval_fn is not None
                    and cfg.eval_every is not None
                    and (session.step % cfg.eval_every == 0 or last)
                ):
                    last_eval = session.evaluate(self.eval_fn)
                    train_model.train()
                if (cfg.checkpoint_every and session.step % cfg.checkpoint_every == 0) or last:
                    session.save("final" if last else "periodic")
        finally:
            stream.close()
            if bar is not None:
                bar.close()
            if ctx.is_distributed:
                # free the DDP reducer (it hooks into the model's parameters) while the process
                # group still exists, rather than at interpreter exit
                del train_model
                gc.collect()

        session.logger.log(
            {
                "event": "end",
                "step": session.step,
                "interrupted": session.signal is not None,
                "loss": session.last_loss,
                "time": session.elapsed(),
            }
        )
        return last_eval

    # ------------------------------------------------------------------------------ helpers

    def _progress_bar(self, ctx: DistributedContext, step: int, total: int) -> Any:
        if not ctx.is_main:
            return None
        show = self.config.progress
        if show is None:
            show = sys.stderr.isatty()
        if not show:
            return None
        from tqdm import tqdm

        return tqdm(
            total=total, initial=step, desc=self.config.name, file=sys.stderr, dynamic_ncols=True
        )
