"""The task interface shared by ``matbackprop train`` / ``eval`` and the task registry.

A task module (``_ncuts_task``, ``_o2p_task``) provides:

- ``Config``: a dataclass with a ``train: TrainConfig`` field (name, out_dir, steps, optimizer,
  schedule, device, ...) plus the task's own fields (data root, model options, ...). Loaded
  from TOML/YAML with ``--config`` and ``--set section.key=value`` overrides.
- ``def train(config, *, resume) -> dict``: trains every method of the task that needs
  training, writing checkpoints and logs under ``config.train.out_dir / config.train.name``,
  and returns a summary.
- ``def evaluate(config, *, checkpoint, split, out_dir) -> dict``: evaluates the checkpoint
  (and the baselines) on ``split``, writes ``metrics.json`` and pictures to ``out_dir``, and
  returns the metrics.
- ``DESCRIPTION``: one line for ``--help``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TASKS = {
    "ncuts": "matbackprop.cli._ncuts_task",
    "o2p": "matbackprop.cli._o2p_task",
}


def load_task(name: str) -> ModuleType:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return importlib.import_module(TASKS[name])
