"""The training loop shared by every task (DeepNCuts segmentation, DeepO2P classification, ...).

:class:`Trainer` reads top to bottom: config -> run directory -> seeds -> model and optimizer ->
(resume) -> DDP -> data -> logs -> loop. Each step fetches a batch, agrees with the other
processes on whether to go on (signals, bad files), runs ``loss_fn``, back-propagates, clips,
updates, then logs / evaluates / checkpoints on schedule.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from matbackprop.errors import DataFileError
from matbackprop.train._checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    atomic_save,
    load_checkpoint,
    remove_stale_temporaries,
)
from matbackprop.train._config import config_to_dict, save_config
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
from matbackprop.train._rng import (
    capture_rng_state,
    preserved_rng,
    restore_rng_state,
    seed_everything,
)
from matbackprop.train._signals import StopRequest
from matbackprop.train._train_config import TrainConfig

__all__ = ["Trainer", "move_to_device", "resolve_total_steps", "unwrap_model"]

LossFn = Callable[[torch.nn.Module, Any], Any]
EvalFn = Callable[[torch.nn.Module, int], Mapping[str, Any]]

# TrainConfig fields that do not change the training trajectory (ignored when checking that a
# resumed run uses the checkpoint's config).
_TRAJECTORY_NEUTRAL = {
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


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) dict / list / tuple / namedtuple to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: move_to_device(v, device) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def resolve_total_steps(config: TrainConfig, num_items: int, world_size: int = 1) -> int:
    """Number of optimizer steps: ``steps``, or ``ceil(epochs * ceil(N / W) / batch_size)``.

    Raises
    ------
    ValueError
        If neither or both of ``steps`` / ``epochs`` are set, or ``num_items < 1``.
    """
    if num_items < 1:
        raise ValueError(f"the training dataset is empty (`num_items` = {num_items})")
    if (config.steps is None) == (config.epochs is None):
        raise ValueError(
            "set exactly one of `steps` and `epochs` in the config, got "
            f"steps={config.steps}, epochs={config.epochs}"
        )
    if config.steps is not None:
        return config.steps
    per_rank = math.ceil(num_items / world_size)
    return max(1, math.ceil(config.epochs * per_rank / config.batch_size))


@contextmanager
def _deterministic_mode(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True, warn_only=True)`` + deterministic cuDNN.

    ``warn_only=True``: an op without a deterministic implementation warns instead of raising,
    so enabling it never breaks a model. The previous settings are restored afterwards.
    ``CUBLAS_WORKSPACE_CONFIG`` is set (if unset) for deterministic cuBLAS; it only takes effect
    if CUDA was not initialised before.
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


def _grad_norm(params: list[torch.nn.Parameter], clip: float | None) -> float:
    if clip is not None:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.nn.utils.get_total_norm(grads))


def _as_float_metrics(metrics: Any, where: str) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise ValueError(f"{where} must return a dict of metrics, got {type(metrics).__name__}")
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"{where}: metric `{key}` must be a number, got a tensor of shape "
                    f"{tuple(value.shape)}"
                )
            value = value.detach().item()
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: metric `{key}` must be a number, got {value!r}")
        out[str(key)] = float(value)
    return out


@dataclass
class _Window:
    """Sums since the last log record."""

    loss: float = 0.0
    grad_norm: float = 0.0
    count: int = 0
    metrics: dict[str, float] | None = None

    def add(self, loss: float, grad_norm: float, metrics: dict[str, float]) -> None:
        self.loss += loss
        self.grad_norm += grad_norm
        self.count += 1
        self.metrics = self.metrics or {}
        for k, v in metrics.items():
            self.metrics[k] = self.metrics.get(k, 0.0) + v


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
        resume_from = self._checkpoint_to_resume(resume)
        device = resolve_device(self.config.device)
        ctx = init_distributed(device)
        logger = RunLogger(self.run_dir, enabled=ctx.is_main)
        self._coordinated_exit = True
        try:
            with _deterministic_mode(self.config.deterministic), StopRequest() as stop:
                return self._run(ctx, device, resume_from, stop, logger)
        finally:
            logger.close()
            # Destroying the group is collective: after an exception that only some ranks
            # raised (e.g. inside loss_fn) it could hang, so it is then left to process exit.
            if self._coordinated_exit:
                cleanup_distributed(ctx)

    # ------------------------------------------------------------------------------ the run

    def _run(
        self,
        ctx: DistributedContext,
        device: torch.device,
        resume_from: Path | None,
        stop: StopRequest,
        logger: RunLogger,
    ) -> dict[str, Any]:
        cfg = self.config
        wall_start = time.monotonic()

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
        checkpoint = self._read_checkpoint(resume_from) if resume_from is not None else None

        # 2. seeds (a resumed run restores every RNG state just before the loop instead)
        if checkpoint is None:
            seed_everything(cfg.seed + ctx.rank)

        # 3. model, optimizer, schedule
        model = self.model.to(device)
        optimizer = build_optimizer(model, cfg.optim, self.param_groups)
        hyper = group_hyperparameters(optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        num_items = len(self.train_dataset)
        total_steps = resolve_total_steps(cfg, num_items, ctx.world_size)
        schedule = LRSchedule(cfg.schedule, total_steps)
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
            position = self._resumed_position(checkpoint, ctx, order)
            self._warn_if_config_changed(checkpoint, ctx)

        # 5. DDP
        train_model: torch.nn.Module = model
        if ctx.is_distributed:
            train_model = torch.nn.parallel.DistributedDataParallel(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters,
            )

        # 6. data
        stream = BatchStream(
            self.train_dataset,
            order,
            position,
            cfg.batch_size,
            cfg.skip_bad,
            cfg.num_workers,
            self.collate_fn,
        )

        # 7. logs and progress bar
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
        bar = self._progress_bar(ctx, step, total_steps)
        if checkpoint is not None:
            self._restore_rng(checkpoint, ctx, step)
            say_main(ctx, f"resumed {self.run_dir} at step {step}/{total_steps}")

        # 8. the loop
        run = _RunState(
            step=step,
            position=position,
            train_time=train_time,
            last_loss=last_loss,
            total_steps=total_steps,
            clock=time.monotonic(),
        )
        window = _Window()
        last_eval: dict[str, float] | None = None
        train_model.train()
        try:
            while run.step < total_steps:
                # 8a. fetch the next batch
                batch, skipped, new_position, failure = None, [], run.position, None
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
                    failures = ctx.all_gather(_describe(failure, ctx.rank))
                    errors = [f for f in failures if f is not None]
                    interrupted_fetch = n_stop and all(f["type"] != "DataFileError" for f in errors)
                    if not interrupted_fetch:
                        self._fail_on_data(
                            ctx, run, model, optimizer, order, logger, failure, errors[0]
                        )
                if n_stop:
                    self._stop_on_signal(ctx, run, model, optimizer, order, logger, stop)
                    break
                if n_skipped:
                    run.skipped += len(skipped)
                    gathered = ctx.all_gather([(ctx.rank, bad) for bad in skipped])
                    for rank, bad in (item for per_rank in gathered for item in per_rank):
                        logger.log_skip(run.step + 1, rank, bad.index, bad.path, bad.reason)

                # 8c. forward, backward, update
                lr = apply_lr(optimizer, schedule, run.step)
                optimizer.zero_grad(set_to_none=True)
                loss, metrics = self._loss(train_model, batch)
                loss.backward()
                grad_norm = _grad_norm(params, cfg.grad_clip)
                if not math.isfinite(grad_norm):
                    if cfg.on_nonfinite == "raise":
                        self._fail_on_nonfinite(
                            ctx,
                            run,
                            model,
                            optimizer,
                            order,
                            logger,
                            grad_norm,
                            float(loss.detach()),
                        )
                    optimizer.zero_grad(set_to_none=True)
                    logger.log({"event": "nonfinite", "step": run.step + 1, "grad_norm": grad_norm})
                else:
                    optimizer.step()
                run.step += 1
                run.position = new_position
                run.last_loss = float(loss.detach())
                window.add(run.last_loss, grad_norm, metrics)
                if bar is not None:
                    bar.update(1)

                # 8d. log, evaluate, checkpoint
                if run.step % cfg.log_every == 0 or run.step == total_steps:
                    record = self._window_record(ctx, run, window, lr, order, device)
                    logger.log(record)
                    if bar is not None:
                        bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
                    window = _Window()
                if (
                    self.eval_fn is not None
                    and cfg.eval_every is not None
                    and (run.step % cfg.eval_every == 0 or run.step == total_steps)
                ):
                    last_eval = self._evaluate(ctx, model, run, logger)
                    train_model.train()
                if (cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0) or (
                    run.step == total_steps
                ):
                    reason = "final" if run.step == total_steps else "periodic"
                    self._save(ctx, run, model, optimizer, order, logger, reason)
        except BaseException as exc:
            # errors raised in lockstep by every rank (bad data, non-finite gradients) keep the
            # process group usable; anything else may have left the ranks out of step
            self._coordinated_exit = getattr(exc, "_raised_by_all_ranks", False)
            raise
        finally:
            stream.close()
            if bar is not None:
                bar.close()
            if ctx.is_distributed:
                # free the DDP reducer (it hooks into the model's parameters) while the process
                # group still exists, rather than at interpreter exit
                del train_model
                gc.collect()

        logger.log(
            {
                "event": "end",
                "step": run.step,
                "interrupted": run.signal is not None,
                "loss": run.last_loss,
                "time": run.elapsed(),
            }
        )
        return {
            "step": run.step,
            "total_steps": total_steps,
            "last_loss": run.last_loss,
            "wall_time": time.monotonic() - wall_start,
            "train_time": run.elapsed(),
            "interrupted": run.signal is not None,
            "signal": run.signal,
            "resumed_from": step if checkpoint is not None else None,
            "checkpoint": str(run.checkpoint) if run.checkpoint is not None else None,
            "run_dir": str(self.run_dir),
            "skipped": run.skipped,
            "last_eval": last_eval,
        }

    # ------------------------------------------------------------------------------ helpers

    def _checkpoint_to_resume(self, resume: Any) -> Path | None:
        if resume is False:
            return None
        if resume is True:
            if not self.checkpoint_path.is_file():
                raise FileNotFoundError(
                    f"no checkpoint to resume from: {self.checkpoint_path} does not exist; "
                    "start a fresh run (resume=False) or use resume='auto'"
                )
            return self.checkpoint_path
        if resume == "auto":
            if self.checkpoint_path.is_file():
                return self.checkpoint_path
            say_main(
                None,
                f"warning: resume='auto' but {self.checkpoint_path} does not exist; "
                "starting a fresh run",
            )
            return None
        if isinstance(resume, os.PathLike):
            path = Path(resume)
            if not path.is_file():
                raise FileNotFoundError(f"no checkpoint to resume from: {path} does not exist")
            return path
        raise ValueError(f"`resume` must be True, False, 'auto' or a Path, got {resume!r}")

    @staticmethod
    def _read_checkpoint(path: Path) -> dict[str, Any]:
        state = load_checkpoint(path, map_location="cpu")
        if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
            raise DataFileError(
                path,
                f"not a {CHECKPOINT_FORMAT} v{CHECKPOINT_VERSION} checkpoint "
                f"(format={state.get('format')!r}, version={state.get('version')!r})",
            )
        return state

    def _resumed_position(
        self, checkpoint: dict[str, Any], ctx: DistributedContext, order: DataOrder
    ) -> StreamPosition:
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

    def _restore_rng(self, checkpoint: dict[str, Any], ctx: DistributedContext, step: int) -> None:
        states = checkpoint.get("rng") or []
        if len(states) == ctx.world_size:
            restore_rng_state(states[ctx.rank])
        else:
            seed_everything(self.config.seed + ctx.rank + 7919 * step)
            say_main(
                ctx,
                "warning: the checkpoint's RNG states are for "
                f"{len(states)} process(es); reseeding, resume is not exact",
            )

    def _warn_if_config_changed(self, checkpoint: dict[str, Any], ctx: DistributedContext) -> None:
        saved = checkpoint.get("train_config") or {}
        now = config_to_dict(self.config)
        changed = sorted(
            k
            for k in set(saved) | set(now)
            if k not in _TRAJECTORY_NEUTRAL and saved.get(k) != now.get(k)
        )
        if changed:
            say_main(
                ctx,
                "warning: resuming with a config that differs from the checkpoint's in "
                f"{', '.join(changed)}; the current values are used, resume is not exact",
            )

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

    def _loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.loss_fn(model, batch)
        loss, metrics = (out, {}) if isinstance(out, torch.Tensor) else (None, None)
        if loss is None:
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor)):
                raise ValueError(
                    "`loss_fn` must return a scalar tensor or (loss tensor, dict of metrics), "
                    f"got {type(out).__name__}"
                )
            loss, metrics = out
        if loss.numel() != 1 or not loss.is_floating_point():
            raise ValueError(
                f"`loss_fn` must return a floating scalar loss, got dtype {loss.dtype} and "
                f"shape {tuple(loss.shape)}"
            )
        if not loss.requires_grad:
            raise ValueError("the loss returned by `loss_fn` does not require grad")
        return loss.reshape(()), _as_float_metrics(metrics, "`loss_fn`")

    def _window_record(
        self,
        ctx: DistributedContext,
        run: _RunState,
        window: _Window,
        lr: float,
        order: DataOrder,
        device: torch.device,
    ) -> dict[str, Any]:
        parts = ctx.all_gather(
            {
                "loss": window.loss,
                "grad_norm": window.grad_norm,
                "count": window.count,
                "metrics": window.metrics or {},
            }
        )
        count = sum(p["count"] for p in parts) or 1
        keys = sorted({k for p in parts for k in p["metrics"]})
        metrics = {k: sum(p["metrics"].get(k, 0.0) for p in parts) / count for k in keys}
        epoch = run.position.epoch + run.position.offset / order.shard_length
        return {
            "event": "train",
            "step": run.step,
            "epoch": round(epoch, 6),
            "loss": sum(p["loss"] for p in parts) / count,
            "grad_norm": sum(p["grad_norm"] for p in parts) / count,
            "lr": lr,
            "metrics": metrics,
            "time": round(run.elapsed(), 3),
        }

    def _evaluate(
        self, ctx: DistributedContext, model: torch.nn.Module, run: _RunState, logger: RunLogger
    ) -> dict[str, float] | None:
        if not ctx.is_main or self.eval_fn is None:
            return None
        model.eval()
        try:
            with torch.no_grad(), preserved_rng():
                results = _as_float_metrics(self.eval_fn(model, run.step), "`eval_fn`")
        finally:
            model.train()
        logger.log(
            {"event": "eval", "step": run.step, "metrics": results, "time": round(run.elapsed(), 3)}
        )
        say(f"step {run.step}: eval " + ", ".join(f"{k}={v:.4g}" for k, v in results.items()))
        return results

    def _save(
        self,
        ctx: DistributedContext,
        run: _RunState,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        order: DataOrder,
        logger: RunLogger,
        reason: str,
    ) -> Path | None:
        """Write the checkpoint of the current step (collective: every rank must call it)."""
        if run.saved_step == run.step and run.checkpoint is not None:
            return run.checkpoint
        per_rank = ctx.all_gather({"rng": capture_rng_state(), "position": run.position.as_list()})
        path = self.checkpoint_path
        if ctx.is_main:
            state = {
                "format": CHECKPOINT_FORMAT,
                "version": CHECKPOINT_VERSION,
                "step": run.step,
                "total_steps": run.total_steps,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "extra": self.extra_state.state_dict() if self.extra_state is not None else None,
                "rng": [r["rng"] for r in per_rank],
                "data": {
                    "world_size": ctx.world_size,
                    "num_items": order.num_items,
                    "seed": order.seed,
                    "positions": [r["position"] for r in per_rank],
                },
                "config": _plain_config(self.run_config),
                "train_config": config_to_dict(self.config),
                "last_loss": run.last_loss,
                "elapsed": run.elapsed(),
                "reason": reason,
            }
            if self.config.keep_checkpoints:
                step_path = self.run_dir / f"step_{run.step:08d}.pt"
                atomic_save(state, step_path)
                _atomic_hardlink_or_save(step_path, path, state)
            else:
                atomic_save(state, path)
            logger.log(
                {"event": "checkpoint", "step": run.step, "path": str(path), "reason": reason}
            )
        ctx.barrier()
        run.saved_step, run.checkpoint = run.step, path
        return path

    def _stop_on_signal(
        self,
        ctx: DistributedContext,
        run: _RunState,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        order: DataOrder,
        logger: RunLogger,
        stop: StopRequest,
    ) -> None:
        name = stop.name or "a signal on another rank"
        path = self._save(ctx, run, model, optimizer, order, logger, "signal")
        run.signal = stop.name or "signal"
        message = (
            f"Stopped by {name} at step {run.step}/{run.total_steps}; checkpoint written to "
            f"{path}. Resume with Trainer.fit(resume=True) (same config and run name)."
        )
        logger.log({"event": "stop", "step": run.step, "reason": run.signal, "message": message})
        logger.flush()
        say_main(ctx, message)

    def _fail_on_data(
        self,
        ctx: DistributedContext,
        run: _RunState,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        order: DataOrder,
        logger: RunLogger,
        failure: BaseException | None,
        first: dict[str, Any],
    ) -> None:
        path = self._save(ctx, run, model, optimizer, order, logger, "error")
        note = (
            f"training stopped before step {run.step + 1}; the checkpoint {path} holds the state "
            f"after step {run.step} and logs are in {self.run_dir}. "
            + (
                "Fix or remove the file, or set skip_bad=True to skip unreadable items, then "
                "resume with resume=True."
                if first["type"] == "DataFileError"
                else ""
            )
        )
        logger.log(
            {
                "event": "stop",
                "step": run.step,
                "reason": "error",
                "message": f"{first['message']} ({note})",
            }
        )
        logger.flush()
        if failure is not None:
            failure.add_note(note)
            failure._raised_by_all_ranks = True  # type: ignore[attr-defined]
            raise failure
        if first["type"] == "DataFileError":
            error: Exception = DataFileError(first["path"], first["reason"])
        else:
            error = RuntimeError(f"rank {first['rank']} failed: {first['message']}")
        error.add_note(f"(raised on rank {first['rank']}) " + note)
        error._raised_by_all_ranks = True  # type: ignore[attr-defined]
        raise error

    def _fail_on_nonfinite(
        self,
        ctx: DistributedContext,
        run: _RunState,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        order: DataOrder,
        logger: RunLogger,
        grad_norm: float,
        loss: float,
    ) -> None:
        optimizer.zero_grad(set_to_none=True)
        path = self._save(ctx, run, model, optimizer, order, logger, "error")
        message = (
            f"non-finite gradient norm ({grad_norm}) at step {run.step + 1} (loss {loss}); the "
            f"checkpoint {path} holds the state after step {run.step}. Set "
            "on_nonfinite='skip' to skip such updates."
        )
        logger.log({"event": "stop", "step": run.step, "reason": "nonfinite", "message": message})
        logger.flush()
        error = FloatingPointError(message)
        error._raised_by_all_ranks = True  # type: ignore[attr-defined]
        raise error


@dataclass
class _RunState:
    """Mutable progress of one ``fit`` call."""

    step: int
    position: StreamPosition
    train_time: float
    last_loss: float | None
    total_steps: int
    clock: float
    skipped: int = 0
    signal: str | None = None
    saved_step: int | None = None
    checkpoint: Path | None = None

    def elapsed(self) -> float:
        """Training seconds including previous (resumed) runs."""
        return self.train_time + (time.monotonic() - self.clock)


def say_main(ctx: DistributedContext | None, message: str) -> None:
    """``say`` on the main process only."""
    if ctx is None:
        from matbackprop.train._distributed import is_main_process

        if not is_main_process():
            return
    elif not ctx.is_main:
        return
    say(message)


def _describe(failure: BaseException | None, rank: int) -> dict[str, Any] | None:
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


def _plain_config(config: Any) -> Any:
    try:
        return config_to_dict(config)
    except ValueError:
        return None


def _atomic_hardlink_or_save(source: Path, destination: Path, state: Any) -> None:
    """Make ``destination`` a hard link of ``source`` atomically (or save ``state`` again)."""
    tmp = destination.with_name(f".{destination.name}.link.tmp")
    try:
        if tmp.exists():
            tmp.unlink()
        os.link(source, tmp)
        os.replace(tmp, destination)
    except OSError:
        atomic_save(state, destination)
