"""What region classification needs besides its models: batches, the loss, predictions and
scores (used by the ``o2p`` task; a new head or data set reuses them)."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from matbackprop.data import RegionItems, collate_regions
from matbackprop.errors import DataFileError
from matbackprop.metrics import accuracy, mean_class_accuracy, paired_bootstrap_ci
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


class Predictions(NamedTuple):
    """What :func:`predict` returns: logits ``(Q, K)``, labels ``(Q,)``, the number of regions
    of each item, and the image id of each region ``(Q,)``."""

    logits: torch.Tensor
    labels: torch.Tensor
    counts: list[int]
    image_ids: torch.Tensor


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    items: RegionItems,
    batch_size: int,
    device: torch.device,
    collate: Callable[[list[dict]], dict],
) -> Predictions:
    """The model's logits of every region of ``items``, in item order."""
    model.eval()
    logits, labels, counts, ids = [], [], [], []
    for start in range(0, len(items), batch_size):
        chunk = [items[i] for i in range(start, min(start + batch_size, len(items)))]
        batch = move_to_device(collate(chunk), device)
        logits.append(model(batch["images"], batch["masks"], batch["valid"]).float().cpu())
        labels.append(batch["labels"].cpu())
        sizes = [int(it["masks"].shape[0]) for it in chunk]
        ids.append(torch.repeat_interleave(batch["image_ids"].cpu(), torch.tensor(sizes)))
        counts += sizes
    return Predictions(torch.cat(logits), torch.cat(labels), counts, torch.cat(ids))


def scores(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    return {
        "accuracy": accuracy(logits, labels),
        "mean_class_accuracy": mean_class_accuracy(logits, labels, num_classes),
        "num_regions": int(labels.numel()),
    }


# --------------------------------------------------------------------------------------------
# per-region predictions and paired comparisons
# --------------------------------------------------------------------------------------------

REGIONS_FILE = "regions.npz"
COMPARED_METRICS = ("accuracy", "mean_class_accuracy")


def save_region_predictions(
    path: Path, labels: torch.Tensor, image_ids: torch.Tensor, predicted: Mapping[str, Any]
) -> Path:
    """Write ``labels``, ``image_ids`` and ``predicted_<method>`` (one class per region, in
    region order) as a NumPy ``.npz`` file, atomically."""
    path = Path(path)
    arrays = {"labels": np.asarray(labels), "image_ids": np.asarray(image_ids)}
    arrays |= {f"predicted_{m}": np.asarray(p) for m, p in predicted.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(tmp, path)
    return path


def read_region_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays written by :func:`save_region_predictions`.

    Raises
    ------
    FileNotFoundError
        For a missing file; ``DataFileError`` for one without ``labels`` / ``image_ids``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"region predictions not found: {path}")
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise DataFileError(path, f"not a region predictions file ({exc})") from exc
    if "labels" not in arrays or "image_ids" not in arrays:
        raise DataFileError(path, "region predictions need `labels` and `image_ids`")
    return arrays


def bootstrap_comparisons(
    runs: list[dict[str, np.ndarray]],
    reference: str,
    methods: list[str],
    *,
    split: str | None,
    n_resamples: int,
    confidence: float,
    seed: int,
) -> list[dict[str, Any]]:
    """``reference − baseline`` for every other method of ``methods`` and both metrics of
    :data:`COMPARED_METRICS`, each with the paired cluster bootstrap interval of
    :func:`~matbackprop.metrics.paired_bootstrap_ci` over the images (the regions of an image
    resampled together), the correctness of each region averaged over ``runs`` (the seeds).

    ``runs`` are the arrays of :func:`read_region_predictions` of each seed, which must score
    the same regions; methods missing from a run are left out.

    Raises
    ------
    ValueError
        If the runs do not hold the same regions.
    """
    if not runs:
        return []
    labels, images = runs[0]["labels"], runs[0]["image_ids"]
    for run in runs[1:]:
        if not (np.array_equal(run["labels"], labels) and np.array_equal(run["image_ids"], images)):
            raise ValueError("the seeds' region predictions do not hold the same regions")
    present = [m for m in methods if all(f"predicted_{m}" in run for run in runs)]
    if reference not in present:
        return []
    correct = {m: np.stack([run[f"predicted_{m}"] == labels for run in runs]) for m in present}
    out = []
    for baseline in present:
        if baseline == reference:
            continue
        for metric in COMPARED_METRICS:
            ci = paired_bootstrap_ci(
                correct[reference],
                correct[baseline],
                clusters=images,
                labels=labels,
                statistic=metric,
                n_resamples=n_resamples,
                confidence=confidence,
                seed=seed,
            )
            out.append(
                {
                    "method": reference,
                    "baseline": baseline,
                    "metric": metric,
                    "difference": ci.difference,
                    "low": ci.low,
                    "high": ci.high,
                    "confidence": ci.confidence,
                    "standard_error": ci.standard_error,
                    "resamples": ci.n_resamples,
                    "clusters": ci.n_clusters,
                    "regions": ci.n_samples,
                    "seeds": len(runs),
                    "procedure": (
                        f"Intervals: paired cluster bootstrap over the {ci.n_clusters} "
                        f"{split or ''} images (all regions of an image resampled together; "
                        f"{ci.n_samples} regions), {ci.n_resamples} resamples, percentile "
                        f"interval; each region's correctness averaged over the {len(runs)} "
                        f"seed(s) (metrics.paired_bootstrap_ci)."
                    ).replace("  ", " "),
                }
            )
    return out
