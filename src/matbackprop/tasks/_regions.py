"""What region classification needs besides its models: batches, the loss, predictions and
scores (used by the ``o2p`` task; a new head or data set reuses them)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from matbackprop.data import RegionItems, collate_regions
from matbackprop.metrics import accuracy, mean_class_accuracy
from matbackprop.models import ImageNormalization
from matbackprop.train import move_to_device


def class_weights(items: RegionItems, power: float) -> torch.Tensor | None:
    """Cross-entropy weights ``∝ (n_c + 1)^(-power)``, mean 1 over the regions (0: None)."""
    if power == 0:
        return None
    counts = items.label_counts()
    weights = (counts + 1.0) ** (-power)
    weights = weights / (weights * counts).sum() * counts.sum()  # mean 1 over the regions
    return torch.as_tensor(weights, dtype=torch.float32)


def collate_for(normalization: ImageNormalization) -> Callable[[list[dict]], dict]:
    """:func:`~matbackprop.data.collate_regions` padding in the mean colour of the model's
    input ``normalization``: the padding is zero once the model normalizes the batch."""
    return functools.partial(collate_regions, fill=normalization.mean)


def cross_entropy_loss(weights: torch.Tensor | None):
    def loss_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        logits = model(batch["images"], batch["masks"], batch["valid"])
        labels = batch["labels"]
        weight = weights.to(logits.device) if weights is not None else None
        loss = F.cross_entropy(logits, labels, weight=weight)
        accuracy = (logits.detach().argmax(-1) == labels).float().mean()
        return loss, {"accuracy": accuracy}

    return loss_fn


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    items: RegionItems,
    batch_size: int,
    device: torch.device,
    collate: Callable[[list[dict]], dict],
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Logits ``(Q, K)``, labels ``(Q,)`` and the number of regions of each item."""
    model.eval()
    logits, labels, counts = [], [], []
    for start in range(0, len(items), batch_size):
        chunk = [items[i] for i in range(start, min(start + batch_size, len(items)))]
        batch = move_to_device(collate(chunk), device)
        logits.append(model(batch["images"], batch["masks"], batch["valid"]).float().cpu())
        labels.append(batch["labels"].cpu())
        counts += [int(it["masks"].shape[0]) for it in chunk]
    return torch.cat(logits), torch.cat(labels), counts


def scores(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    return {
        "accuracy": accuracy(logits, labels),
        "mean_class_accuracy": mean_class_accuracy(logits, labels, num_classes),
        "num_regions": int(labels.numel()),
    }
