"""matbackprop.tasks: the experiments, one module each, all with the same parts.

A task module provides, in this order (nanoGPT's: config -> model -> data -> train -> evaluate):

``DESCRIPTION``
    One line for ``--help``.
``METHODS``
    The methods it compares, in report order (baselines and trained models).
``Config``
    A dataclass with a ``train: TrainConfig`` section and the task's own fields, validated by
    the one config validator (:func:`matbackprop.train.validate_fields`; constraints written in
    ``Annotated`` types). Loaded from TOML/YAML with ``--config`` and ``--set key=value``.
``PRESETS``
    Named lists of ``key=value`` overrides (e.g. ``"quick"``: a smoke-test size); may be empty.
``build_model(config, method)``
    The (untrained) model of one method.
``train_data(config)`` / ``eval_data(config, split=None)``
    The items the trainer fetches, and the samples ``evaluate`` scores on ``split`` (default:
    the config's evaluation split).
``train(config, *, resume=False) -> RunRecord``
    Trains (or tunes) every method that learns, in ``config.train.run_dir``; writes
    ``run.json`` there.
``evaluate(config, *, checkpoint=None, split=None, out_dir=None) -> RunRecord``
    Scores every method on ``split``; writes ``metrics.json`` and pictures to ``out_dir``.
    ``checkpoint`` (a checkpoint file or the run folder) and ``out_dir`` default to
    ``config.train.run_dir``.

Both return a :class:`~matbackprop.train.RunRecord`, the one schema of ``run.json`` and
``metrics.json`` that ``matbackprop report`` reads.

Several seeds (``train.seeds = [0, 1, 2]``, ``--seeds 0,1,2``): a task writes ``train`` and
``evaluate`` for one seed and decorates them with ``train_over_seeds`` and
``evaluate_over_seeds`` (``tasks/_runs.py``); these run the task once per seed in
``<run_dir>/seed_<s>/`` and write the combined record (each seed's values, mean ± std, n), and
``evaluate_over_seeds(compare=...)`` adds the task's paired comparisons between methods.

The ``matbackprop`` command finds tasks in :data:`TASKS` by name and uses nothing but the
parts above. To add a task, add a module with these parts and one entry to :data:`TASKS`.

Tasks whose models segment images also provide (optional; ``matbackprop segment`` and the
shipped weights use them):

``SEGMENT_METHOD``
    The method whose model segments images (e.g. ``"deep_ncuts"``).
``segment(config, model, image) -> Segmentation``
    The hierarchy of one RGB image ``(3, H, W)`` at its full resolution, with the preprocessing
    of ``config``.

Pretrained models and segmenting files (imported on first use):

- :func:`load_pretrained` -- weights shipped in the package (``"deepncuts-bsds500"``), rebuilt
  on the ImageNet backbone; :func:`load_trained` -- any checkpoint ``train`` wrote;
  :func:`available_pretrained`; :func:`export_pretrained` makes an entry from a run;
- :func:`segment_image` -- one image tensor to a :class:`Segmentation` (levels coarse to fine,
  full resolution); :func:`segment_images` -- files and folders to BSDS ``.mat``, 16-bit label
  PNG and boundary overlay (``matbackprop segment``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the lazy names below, for type checkers and the API reference
    from ._pretrained import (
        PretrainedInfo,
        available_pretrained,
        export_pretrained,
        load_pretrained,
        load_trained,
    )
    from ._segment_images import SegmentSummary, find_images, segment_image, segment_images
    from ._segmentation import Segmentation

__all__ = [
    "TASKS",
    "PretrainedInfo",
    "Segmentation",
    "SegmentSummary",
    "Task",
    "TaskInfo",
    "available_pretrained",
    "export_pretrained",
    "find_images",
    "get_task",
    "load_pretrained",
    "load_trained",
    "segment_image",
    "segment_images",
]

# public name -> the private module that defines it (imported on first use, so that
# ``import matbackprop.tasks`` stays light)
_LAZY = {
    "PretrainedInfo": "_pretrained",
    "available_pretrained": "_pretrained",
    "export_pretrained": "_pretrained",
    "load_pretrained": "_pretrained",
    "load_trained": "_pretrained",
    "Segmentation": "_segmentation",
    "SegmentSummary": "_segment_images",
    "find_images": "_segment_images",
    "segment_image": "_segment_images",
    "segment_images": "_segment_images",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class TaskInfo:
    """A registry entry: where the task lives, and the shortcut command it has (if any).

    ``command``: the name of a top-level ``matbackprop`` command that trains and then evaluates
    the task (``matbackprop demo`` is ``matbackprop run demo``).

    Examples
    --------
    >>> from matbackprop.tasks import TASKS
    >>> info = TASKS["ncuts"]
    >>> info.module
    'matbackprop.tasks.ncuts'
    """

    module: str
    description: str
    command: str | None = None


TASKS: dict[str, TaskInfo] = {
    "demo": TaskInfo(
        "matbackprop.tasks.demo",
        "DeepNCuts vs baselines on texture mosaics generated on the fly (the embedded main job)",
        command="demo",
    ),
    "ncuts": TaskInfo(
        "matbackprop.tasks.ncuts",
        "DeepNCuts on BSDS500 vs classic, frozen-feature and local-loss NCuts (ultrametric maps)",
    ),
    "o2p": TaskInfo(
        "matbackprop.tasks.o2p",
        "DeepO2P region classification on COCO: first-order vs O2P vs DeepO2P vs sqrt heads",
    ),
}
"""The registry: task name -> where it lives (modules are imported only when used)."""


class Task(Protocol):
    """What a task module provides (see the module docstring); modules satisfy it as they are.

    Examples
    --------
    >>> from matbackprop.tasks import Task, get_task
    >>> task = get_task("demo")
    >>> callable(task.train) and callable(task.evaluate)
    True
    >>> "quick" in task.PRESETS
    True
    """

    DESCRIPTION: str
    METHODS: tuple[str, ...]
    Config: type
    PRESETS: dict[str, tuple[str, ...]]

    def build_model(self, config: Any, method: str, *, pretrained: bool = True) -> Any: ...

    def train_data(self, config: Any) -> Any: ...

    def eval_data(self, config: Any, split: str | None = None) -> Any: ...

    def train(self, config: Any, *, resume: bool = False) -> Any: ...

    def evaluate(
        self,
        config: Any,
        *,
        checkpoint: str | Path | None = None,
        split: str | None = None,
        out_dir: str | Path | None = None,
    ) -> Any: ...


#: The parts every task module must have (checked by :func:`get_task`).
PARTS = (
    "DESCRIPTION",
    "METHODS",
    "Config",
    "PRESETS",
    "build_model",
    "train_data",
    "eval_data",
    "train",
    "evaluate",
)


def get_task(name: str) -> Task:
    """The task module registered as ``name``.

    Raises
    ------
    ValueError
        For an unknown name (listing the known ones).
    TypeError
        If the registered module lacks a part of the task interface.

    Examples
    --------
    >>> from matbackprop.tasks import get_task
    >>> get_task("o2p").__name__
    'matbackprop.tasks.o2p'
    >>> get_task("segmentation")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown task 'segmentation'; choose one of ...
    """
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    module: ModuleType = importlib.import_module(TASKS[name].module)
    missing = [part for part in PARTS if not hasattr(module, part)]
    if missing:
        raise TypeError(f"task module {module.__name__} lacks {', '.join(missing)}")
    return module
