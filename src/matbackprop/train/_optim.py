"""Optimizer construction and the learning-rate schedule.

The schedule is a pure function of the step (:class:`LRSchedule`): before optimizer step ``k``
(0-based) every parameter group gets ``lr = base_lr * f(k)``, where ``base_lr = optim.lr *
lr_scale`` of the group. Being stateless, it resumes exactly from the step counter alone.

Parameter groups: by default all parameters with ``requires_grad`` are optimised, split into a
decayed group (>= 2-D tensors) and a non-decayed one (biases, norm scales) unless
``optim.decay_norm_and_bias``. Custom groups (e.g. a lower LR for a pretrained backbone) are
given as ``[{"params": [...], "lr_scale": 0.1}, ...]``; a group may also set its own
``weight_decay``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from matbackprop.train._train_config import OptimConfig, ScheduleConfig

__all__ = ["LRSchedule", "apply_lr", "build_optimizer"]


class LRSchedule:
    """Learning-rate multiplier ``f(step)`` (see :class:`~matbackprop.train.ScheduleConfig`).

    Parameters
    ----------
    config : ScheduleConfig
    total_steps : int
        Length of the run (>= 1), the cosine period's end.

    Examples
    --------
    >>> from matbackprop.train import LRSchedule, ScheduleConfig
    >>> schedule = LRSchedule(ScheduleConfig("cosine", warmup_steps=2), total_steps=10)
    >>> [round(schedule(step), 3) for step in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """

    def __init__(self, config: ScheduleConfig, total_steps: int) -> None:
        if total_steps < 1:
            raise ValueError(f"`total_steps` must be >= 1, got {total_steps}")
        self.config = config
        self.total_steps = total_steps

    def __call__(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        t = step - c.warmup_steps
        if c.name == "constant":
            return 1.0
        if c.name == "cosine":
            span = max(1, self.total_steps - c.warmup_steps)
            progress = min(t / span, 1.0)
            cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
            return c.min_lr_ratio + (1.0 - c.min_lr_ratio) * cosine
        return c.gamma ** (t // c.step_size)


def _default_groups(model: torch.nn.Module, config: OptimConfig) -> list[dict[str, Any]]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("`model` has no parameter with requires_grad=True: nothing to train")
    if config.decay_norm_and_bias or config.weight_decay == 0:
        return [{"params": params}]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups: list[dict[str, Any]] = []
    if decay:
        groups.append({"params": decay})
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    model: torch.nn.Module,
    config: OptimConfig,
    param_groups: Iterable[dict[str, Any]] | None = None,
) -> torch.optim.Optimizer:
    """Create the AdamW or SGD optimizer.

    Parameters
    ----------
    model : torch.nn.Module
        Used for the default parameter groups.
    config : OptimConfig
    param_groups : iterable of dict, optional
        Custom groups: ``"params"`` (required), optional ``"lr_scale"`` (multiplies
        ``config.lr``, default 1) and ``"weight_decay"``.

    Returns
    -------
    torch.optim.Optimizer
        Each group carries ``base_lr`` (its peak LR) for :func:`apply_lr`.

    Raises
    ------
    ValueError
        If there is nothing to optimise or a group is malformed.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.train import OptimConfig, build_optimizer
    >>> optimizer = build_optimizer(torch.nn.Linear(2, 1), OptimConfig(name="sgd", lr=0.1))
    >>> type(optimizer).__name__, optimizer.param_groups[0]["lr"]
    ('SGD', 0.1)
    """
    if param_groups is None:
        groups = _default_groups(model, config)
    else:
        groups = []
        for i, group in enumerate(param_groups):
            if not isinstance(group, dict) or "params" not in group:
                raise ValueError(f"`param_groups[{i}]` must be a dict with 'params', got {group!r}")
            group = dict(group)
            group["params"] = [p for p in group["params"] if p.requires_grad]
            scale = group.get("lr_scale", 1.0)
            if not isinstance(scale, int | float) or not scale > 0:
                raise ValueError(f"`param_groups[{i}]['lr_scale']` must be > 0, got {scale!r}")
            groups.append(group)
        if not any(g["params"] for g in groups):
            raise ValueError("`param_groups` hold no parameter with requires_grad=True")
    for group in groups:
        group.setdefault("lr_scale", 1.0)
        group["base_lr"] = config.lr * float(group["lr_scale"])
        group["lr"] = group["base_lr"]
        group.setdefault("weight_decay", config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(
            groups, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas,
            eps=config.eps,
        )
    return torch.optim.SGD(
        groups, lr=config.lr, weight_decay=config.weight_decay, momentum=config.momentum,
        nesterov=config.nesterov,
    )


def apply_lr(optimizer: torch.optim.Optimizer, schedule: LRSchedule, step: int) -> float:
    """Set every group's ``lr = base_lr * schedule(step)``; return the first group's LR."""
    factor = schedule(step)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
    return optimizer.param_groups[0]["lr"]


def group_hyperparameters(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Copy of each group's settings (everything except ``params``)."""
    return [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]


def restore_hyperparameters(
    optimizer: torch.optim.Optimizer, hyper: Sequence[dict[str, Any]]
) -> None:
    """Overwrite the groups' settings (after ``load_state_dict``) with the current config's."""
    for group, values in zip(optimizer.param_groups, hyper, strict=True):
        group.update(values)
