"""The pieces of one training step: the batch on the device, the checked loss, the gradient norm,
the metrics window between two log records, and the number of steps of a run."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from matbackprop.train._train_config import TrainConfig

__all__ = ["move_to_device", "resolve_total_steps", "unwrap_model"]


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (or ``model`` itself).

    Examples
    --------
    >>> import torch
    >>> from matbackprop.train import unwrap_model
    >>> model = torch.nn.Linear(2, 1)
    >>> unwrap_model(model) is model
    True
    """
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) dict / list / tuple / namedtuple to ``device``.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.train import move_to_device
    >>> batch = {"x": torch.zeros(2), "ids": [torch.ones(1)], "name": "a"}
    >>> batch = move_to_device(batch, torch.device("cpu"))
    >>> batch["x"].device, batch["name"]
    (device(type='cpu'), 'a')
    """
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return type(batch)({k: move_to_device(v, device) for k, v in batch.items()})  # type: ignore[call-arg]  # a concrete mapping type
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

    Examples
    --------
    >>> from matbackprop.train import TrainConfig, resolve_total_steps
    >>> resolve_total_steps(TrainConfig(epochs=2.0, batch_size=8), num_items=100)
    25
    >>> resolve_total_steps(TrainConfig(steps=50), num_items=100)
    50
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
    epochs = cast(float, config.epochs)  # validated above: `epochs` is set when `steps` is not
    return max(1, math.ceil(epochs * per_rank / config.batch_size))


def grad_norm(params: list[torch.nn.Parameter], clip: float | None) -> float:
    """Global L2 norm of the gradients, after clipping it to ``clip`` (if given)."""
    if clip is not None:
        return float(torch.nn.utils.clip_grad_norm_(params, clip))
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.nn.utils.get_total_norm(grads))


def as_float_metrics(metrics: Any, where: str) -> dict[str, float]:
    """``{name: float}`` from a dict of numbers / one-element tensors (``ValueError`` else)."""
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


def checked_loss(out: Any) -> tuple[torch.Tensor, dict[str, float]]:
    """The ``(loss, metrics)`` of a ``loss_fn`` result (a scalar tensor, or that and a dict)."""
    metrics: dict[str, float] | None
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
    return loss.reshape(()), as_float_metrics(metrics, "`loss_fn`")


@dataclass
class LossWindow:
    """Sums of the steps since the last log record."""

    loss: float = 0.0
    grad_norm: float = 0.0
    count: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, loss: float, grad_norm: float, metrics: dict[str, float]) -> None:
        self.loss += loss
        self.grad_norm += grad_norm
        self.count += 1
        for k, v in metrics.items():
            self.metrics[k] = self.metrics.get(k, 0.0) + v
