"""matbackprop.train: configuration, the generic trainer, checkpoints and DDP helpers.

One trainer serves every task. The pieces, in the order a training script uses them:

- config: :class:`TrainConfig` (with :class:`OptimConfig`, :class:`ScheduleConfig`),
  :func:`load_config` (TOML/YAML), :func:`apply_overrides` (``"optim.lr=0.01"``),
  :func:`config_from_dict`, :func:`config_to_dict`, :func:`save_config`, and the one validator
  of every config dataclass, :func:`validate_fields`, with the constraints :class:`Range`,
  :class:`Pattern` and :class:`Check` written in ``Annotated`` field types;
- setup: :func:`seed_everything`, :func:`is_main_process`, :func:`get_rank`,
  :func:`get_world_size`;
- loop: :class:`Trainer` (``Trainer(config, model, dataset, loss_fn).fit(resume=...)``);
- checkpoints: :func:`atomic_save`, :func:`load_checkpoint`, :func:`load_model_weights`;
  weight deltas against a pretrained base (shipped weights): :func:`weight_delta`,
  :func:`save_weight_delta`, :func:`apply_weight_delta`;
- records: :class:`RunRecord` (the one schema of ``run.json`` / ``metrics.json``: commands,
  environment, config, metrics, wall times, figures), :class:`CommandRecord`,
  :func:`recording`, :func:`environment`;
- helpers: :func:`build_optimizer`, :class:`LRSchedule`, :func:`resolve_total_steps`,
  :func:`move_to_device`, :func:`unwrap_model`, :func:`capture_rng_state`,
  :func:`restore_rng_state`, :class:`DataOrder`.

Example
-------
>>> from matbackprop.train import Trainer, TrainConfig, seed_everything
>>> cfg = TrainConfig(name="toy", steps=100, batch_size=16)       # doctest: +SKIP
>>> seed_everything(cfg.seed)                                     # doctest: +SKIP
>>> model = build_model()                                         # doctest: +SKIP
>>> def loss_fn(model, batch):                                    # doctest: +SKIP
...     x, y = batch
...     loss = torch.nn.functional.cross_entropy(model(x), y)
...     return loss, {"acc": (model(x).argmax(1) == y).float().mean()}
>>> summary = Trainer(cfg, model, dataset, loss_fn).fit(resume="auto")  # doctest: +SKIP
"""

from matbackprop.train._checkpoint import (
    atomic_save,
    load_checkpoint,
    load_model_weights,
    remove_stale_temporaries,
)
from matbackprop.train._config import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
    validate_fields,
)
from matbackprop.train._constraints import Check, Pattern, Range
from matbackprop.train._data import DataOrder, StreamPosition
from matbackprop.train._distributed import (
    DistributedContext,
    get_rank,
    get_world_size,
    init_distributed,
    is_main_process,
    resolve_device,
)
from matbackprop.train._optim import LRSchedule, build_optimizer
from matbackprop.train._record import CommandRecord, RunRecord, environment, recording
from matbackprop.train._rng import capture_rng_state, restore_rng_state, seed_everything
from matbackprop.train._step import move_to_device, resolve_total_steps, unwrap_model
from matbackprop.train._train_config import OptimConfig, ScheduleConfig, TrainConfig
from matbackprop.train._trainer import Trainer
from matbackprop.train._weights import apply_weight_delta, save_weight_delta, weight_delta

__all__ = [
    "Check",
    "CommandRecord",
    "DataOrder",
    "DistributedContext",
    "LRSchedule",
    "OptimConfig",
    "Pattern",
    "Range",
    "RunRecord",
    "ScheduleConfig",
    "StreamPosition",
    "TrainConfig",
    "Trainer",
    "apply_overrides",
    "apply_weight_delta",
    "atomic_save",
    "build_optimizer",
    "capture_rng_state",
    "config_from_dict",
    "config_to_dict",
    "environment",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "load_checkpoint",
    "load_config",
    "load_model_weights",
    "move_to_device",
    "recording",
    "remove_stale_temporaries",
    "resolve_device",
    "resolve_total_steps",
    "restore_rng_state",
    "save_config",
    "save_weight_delta",
    "seed_everything",
    "unwrap_model",
    "validate_fields",
    "weight_delta",
]
