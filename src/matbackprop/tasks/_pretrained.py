"""Pretrained weights shipped inside the package, and how they are made from a training run.

A *pretrained entry* ``NAME`` is two files in :data:`PRETRAINED_DIR` (package data):

- ``NAME.pt``: a weight delta (:func:`matbackprop.train.save_weight_delta`): only the tensors of
  the trained model that differ from the model as its task builds it on the ImageNet backbone
  (``task.build_model(config, method)``), so the file stays small (for ``deepncuts-bsds500``,
  whose encoder is the frozen ImageNet EfficientNet-Lite0: the trained ``NodeHead`` and its
  normalization buffers only);
- ``NAME.json``: the metadata needed to rebuild the model and to judge it -- ``task``,
  ``method``, the full task ``config``, the training step, the commands that trained and
  evaluated it, its validation scores, the default hierarchy level (the ``ucm2`` threshold of
  its validation ODS), whether it is ``provisional``, and the torch version.

Everything goes through the task interface (``Config``, ``build_model``, ``segment_image``) and
the trainer's checkpoint format, so any model a task trains can be exported with
:func:`export_pretrained` (``matbackprop export TASK --checkpoint ... --name ...``) and loaded
with :func:`load_pretrained`, with no code for the particular architecture.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from matbackprop.errors import DataFileError
from matbackprop.train import (
    RunRecord,
    apply_weight_delta,
    config_from_dict,
    config_to_dict,
    load_checkpoint,
    save_weight_delta,
)

from . import get_task
from ._segmentation import ods_threshold

__all__ = [
    "PRETRAINED_DIR",
    "PretrainedInfo",
    "available_pretrained",
    "export_pretrained",
    "load_pretrained",
    "load_trained",
]

#: Where the shipped weights live (inside the installed package).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
METADATA_FORMAT = "matbackprop.pretrained"


@dataclass
class PretrainedInfo:
    """What a loaded model is and how to use it; set as ``model.pretrained_info``.

    Attributes
    ----------
    name : str
        The entry name (``"deepncuts-bsds500"``) or the checkpoint path.
    task, method : str
        The task module and the method of it the weights belong to.
    config : object
        The task's ``Config`` the model was trained with (its preprocessing: superpixels,
        decoder).
    default_threshold : float or None
        The ``ucm2`` threshold of the level shown by default (the validation ODS), if known.
    metadata : dict
        The whole JSON sidecar (commands, scores, ``provisional``), or ``{}``.

    Examples
    --------
    >>> from matbackprop.tasks import PretrainedInfo
    >>> info = PretrainedInfo("deepncuts-bsds500", "ncuts", "deep_ncuts", None, 0.5)
    >>> info.method, info.default_threshold, info.metadata
    ('deep_ncuts', 0.5, {})
    """

    name: str
    task: str
    method: str
    config: Any
    default_threshold: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def available_pretrained(directory: str | Path = PRETRAINED_DIR) -> list[str]:
    """Names of the pretrained entries in ``directory`` (default: those shipped).

    Examples
    --------
    >>> "deepncuts-bsds500" in available_pretrained()
    True
    """
    directory = Path(directory)
    return sorted(
        p.stem for p in directory.glob("*.json") if (directory / f"{p.stem}.pt").is_file()
    )


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _default_threshold(entry: dict[str, Any]) -> float | None:
    return ods_threshold(entry) if entry.get("covering_per_level") else None


def _checkpoint_file(task: Any, checkpoint: str | Path) -> Path:
    """``checkpoint`` itself, or for a folder its ``last.pt`` or ``<SEGMENT_METHOD>/last.pt``
    (the layout of a run of several methods)."""
    path = Path(checkpoint)
    if path.is_dir():
        method = getattr(task, "SEGMENT_METHOD", None)
        nested = path / method / "last.pt" if method else None
        path = nested if nested is not None and nested.is_file() else path / "last.pt"
    return path


def _run_folder(checkpoint: Path) -> Path:
    """The run folder of a checkpoint: the nearest of its parents (up to two) holding
    ``run.json``, else its own folder."""
    for parent in list(checkpoint.parents)[:3]:
        if (parent / "run.json").is_file():
            return parent
    return checkpoint.parent


def export_pretrained(
    task_name: str,
    checkpoint: str | Path,
    name: str,
    *,
    metrics: str | Path | None = None,
    method: str | None = None,
    out_dir: str | Path = PRETRAINED_DIR,
    provisional: bool = False,
    note: str = "",
) -> Path:
    """Write the pretrained entry ``name`` (``.pt`` delta + ``.json``) from a trainer checkpoint.

    Parameters
    ----------
    task_name : str
        The task that trained it (``"ncuts"``).
    checkpoint : str or Path
        ``last.pt`` (or its run folder) written by ``matbackprop train TASK``, e.g.
        ``runs/ncuts_bsds/seed_0/deep_ncuts/last.pt``; the ``run.json`` of its run folder (the
        nearest parent holding one) gives the training commands.
    name : str
        The entry name, e.g. ``"deepncuts-bsds500"``.
    metrics : str or Path, optional
        The ``metrics.json`` of ``matbackprop eval`` on the checkpoint (default: the run
        folder's, if there is one): its scores of ``method`` and their ODS threshold go into
        the metadata.
    method : str, optional
        Default: the task's ``SEGMENT_METHOD``.
    out_dir : str or Path
        Default: the package's :data:`PRETRAINED_DIR`.
    provisional : bool
        Mark the weights as a stand-in to be replaced.
    note : str
        Free text kept in the metadata.

    Returns
    -------
    Path
        The ``.json`` file.

    Raises
    ------
    FileNotFoundError, matbackprop.errors.DataFileError
        For a missing or unusable checkpoint or metrics file.
    ValueError
        For an unknown task or method, or a checkpoint without its run config.

    Examples
    --------
    >>> export_pretrained("ncuts", "runs/ncuts_bsds/seed_0/deep_ncuts/last.pt", "mine")
    ... # doctest: +SKIP
    PosixPath('.../matbackprop/tasks/pretrained/mine.json')
    """
    task = get_task(task_name)
    method = method or getattr(task, "SEGMENT_METHOD", None)
    if method not in task.METHODS:
        raise ValueError(f"`method` must be one of {task.METHODS}, got {method!r}")
    checkpoint = _checkpoint_file(task, checkpoint)
    state = load_checkpoint(checkpoint)
    if not isinstance(state.get("config"), dict) or "model" not in state:
        raise DataFileError(checkpoint, "not a checkpoint of `matbackprop train` (no config)")
    config: Any = config_from_dict(task.Config, state["config"])
    base = task.build_model(config, method).state_dict()
    run_folder = _run_folder(checkpoint)
    if metrics is None and (run_folder / "metrics.json").is_file():
        metrics = run_folder / "metrics.json"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = save_weight_delta(out_dir / f"{name}.pt", state["model"], base)

    run_json = run_folder / "run.json"
    training = RunRecord.load(run_json) if run_json.is_file() else None
    evaluation = RunRecord.load(metrics) if metrics is not None else None
    scores = evaluation.methods.get(method, {}) if evaluation is not None else {}
    metadata = {
        "format": METADATA_FORMAT,
        "name": name,
        "task": task_name,
        "method": method,
        "provisional": provisional,
        "note": note,
        "step": state.get("step"),
        "training_commands": [c.shell_text() for c in training.commands] if training else [],
        "evaluation_split": evaluation.split if evaluation else None,
        "evaluation_commands": [c.shell_text() for c in evaluation.commands] if evaluation else [],
        "scores": {k: v for k, v in scores.items() if isinstance(v, int | float)},
        "default_threshold": _default_threshold(scores),
        "checkpoint": str(checkpoint),
        "weights": {
            "file": f"{name}.pt",
            **sizes,
            "bytes": (out_dir / f"{name}.pt").stat().st_size,
        },
        "torch": torch.__version__,
        "config": config_to_dict(config),
    }
    path = out_dir / f"{name}.json"
    _atomic_text(path, json.dumps(metadata, indent=2) + "\n")
    for written in (path, out_dir / f"{name}.pt"):  # package data: readable by all
        written.chmod(0o644)
    return path


def _resolve(name_or_path: str | Path) -> Path:
    """The ``.json`` sidecar of a shipped name or of a path to either file."""
    if isinstance(name_or_path, str) and (PRETRAINED_DIR / f"{name_or_path}.json").is_file():
        return PRETRAINED_DIR / f"{name_or_path}.json"
    path = Path(name_or_path).with_suffix(".json")
    if path.is_file():
        return path
    raise ValueError(
        f"no pretrained weights {str(name_or_path)!r}; shipped: {available_pretrained()} "
        "(or give the path of an exported .json/.pt)"
    )


def _place(model: torch.nn.Module, device: str | torch.device | None) -> torch.nn.Module:
    model = model.to(device) if device is not None else model
    return model.eval().requires_grad_(False)


def load_pretrained(
    name: str | Path = "deepncuts-bsds500", *, device: str | torch.device | None = None
) -> torch.nn.Module:
    """A pretrained model, in eval mode, with ``model.pretrained_info`` (:class:`PretrainedInfo`).

    Rebuilds the model with its task's ``build_model`` on the ImageNet backbone (from its
    wheel, offline) and applies the shipped delta; nothing is downloaded.

    Parameters
    ----------
    name : str or Path
        A shipped entry (:func:`available_pretrained`) or the path of an exported file.
    device : str or torch.device, optional

    Returns
    -------
    torch.nn.Module
        For ``"deepncuts-bsds500"``: a :class:`~matbackprop.models.HypercolumnNCuts`, ready for
        ``segment_hierarchy(image)``; ``matbackprop.tasks.segment_image(model, image)`` applies
        the node settings it was trained with.

    Raises
    ------
    ValueError
        For an unknown name.
    matbackprop.errors.DataFileError
        If the files do not fit the model the task builds.

    Examples
    --------
    >>> model = load_pretrained("deepncuts-bsds500")
    >>> info = model.pretrained_info
    >>> (type(model).__name__, info.task, info.method, model.training)
    ('HypercolumnNCuts', 'ncuts', 'deep_ncuts', False)
    """
    path = _resolve(name)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataFileError(path, f"not valid JSON ({error})") from None
    if meta.get("format") != METADATA_FORMAT:
        raise DataFileError(path, f"not a {METADATA_FORMAT} file")
    task = get_task(meta["task"])
    config: Any = config_from_dict(task.Config, meta["config"])
    model = task.build_model(config, meta["method"])
    apply_weight_delta(model, path.with_name(meta["weights"]["file"]))
    model.pretrained_info = PretrainedInfo(
        str(meta["name"]),
        meta["task"],
        meta["method"],
        config,
        meta.get("default_threshold"),
        meta,
    )
    return _place(model, device)


def load_trained(
    checkpoint: str | Path,
    task_name: str = "ncuts",
    *,
    device: str | torch.device | None = None,
) -> torch.nn.Module:
    """The model of a checkpoint that ``matbackprop train TASK`` wrote, like
    :func:`load_pretrained` (``default_threshold`` from the evaluation ``metrics.json`` of the
    run folder, if there is one).

    ``checkpoint``: the method's ``last.pt`` (``runs/ncuts_bsds/seed_0/deep_ncuts/last.pt``) or
    a run folder holding ``<SEGMENT_METHOD>/last.pt`` or ``last.pt``.

    Raises
    ------
    FileNotFoundError, matbackprop.errors.DataFileError
        For a missing checkpoint, or one without its run config.

    Examples
    --------
    >>> model = load_trained("runs/ncuts_bsds/seed_0/deep_ncuts/last.pt")  # doctest: +SKIP
    """
    task = get_task(task_name)
    checkpoint = _checkpoint_file(task, checkpoint)
    state = load_checkpoint(checkpoint)
    if not isinstance(state.get("config"), dict) or "model" not in state:
        raise DataFileError(checkpoint, "not a checkpoint of `matbackprop train` (no config)")
    config: Any = config_from_dict(task.Config, state["config"])
    method = getattr(task, "SEGMENT_METHOD", task.METHODS[-1])
    model = task.build_model(config, method, pretrained=False)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise DataFileError(
            checkpoint, f"weights do not fit the {method} model ({error})"
        ) from None
    metrics = _run_folder(checkpoint) / "metrics.json"
    threshold = None
    if metrics.is_file():
        threshold = _default_threshold(RunRecord.load(metrics).methods.get(method, {}))
    model.pretrained_info = PretrainedInfo(str(checkpoint), task_name, method, config, threshold)
    return _place(model, device)
