"""Pieces shared by the NCuts experiments (the demo on texture mosaics and BSDS500).

- nodes: a node index map per image (a grid of feature cells, or SLIC superpixels);
- :class:`NCutsTrainingSet`: items ``(image, node index, node labels of one annotator)``;
- :func:`ncuts_training_loss`: the loss function handed to the shared trainer;
- :func:`evaluate_segmenters`: hierarchies of every method scored with the BSDS metrics;
- :func:`tune_classic`: the classic baseline's bandwidths, grid-searched on training images.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from matbackprop.data import grid_superpixels, majority_labels, resize_labels, slic_superpixels
from matbackprop.metrics import aggregate_boundary, aggregate_region, evaluate_hierarchy
from matbackprop.models import IGNORE_INDEX as IGNORE
from matbackprop.models import ClassicNCuts

Segmenter = Callable[[Tensor, Tensor], list[Tensor]]  # (image, node index) -> hierarchy


@dataclass(frozen=True)
class NodeSpec:
    """How an image is cut into graph nodes.

    ``mode="grid"``: cells of ``cell`` × ``cell`` pixels (use the backbone's output stride);
    ``mode="slic"``: SLIC superpixels (``n_segments``, ``compactness``).
    """

    mode: Literal["grid", "slic"] = "grid"
    cell: int = 4
    n_segments: int = 200
    compactness: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("grid", "slic"):
            raise ValueError(f"`mode` must be 'grid' or 'slic', got {self.mode!r}")
        if self.cell < 1 or self.n_segments < 2 or self.compactness <= 0:
            raise ValueError(f"invalid node settings: {self}")

    def node_index(self, image: Tensor) -> Tensor:
        H, W = image.shape[-2:]
        if self.mode == "grid":
            grid = (-(-H // self.cell), -(-W // self.cell))
            return grid_superpixels((H, W), grid).long()
        return slic_superpixels(image, self.n_segments, self.compactness).long()


def annotator_node_labels(segmentations: Sequence[Tensor], node_index: Tensor) -> list[Tensor]:
    """Node labels (majority vote) of every human segmentation."""
    return [majority_labels(seg, node_index) for seg in segmentations]


def pick_annotator(candidates: Sequence[Tensor], max_segments: int, generator) -> Tensor:
    """One annotator's node labels, drawn at random among those with at most ``max_segments``
    segments. If none qualifies, the coarsest one is used with only its ``max_segments``
    largest segments; nodes of the others get :data:`IGNORE` (dropped from the loss, see
    ``ncuts_loss(ignore_index=...)``)."""
    counts = [int(torch.unique(c).numel()) for c in candidates]
    ok = [i for i, c in enumerate(counts) if c <= max_segments]
    if ok:
        return candidates[ok[int(torch.randint(len(ok), (1,), generator=generator))]]
    labels = candidates[min(range(len(counts)), key=counts.__getitem__)]
    values, sizes = torch.unique(labels, return_counts=True)
    keep = values[torch.argsort(sizes, descending=True, stable=True)[:max_segments]]
    return torch.where(torch.isin(labels, keep), labels, torch.full_like(labels, IGNORE))


class NCutsTrainingSet(Dataset):
    """Training items for DeepNCuts from samples with an image and human segmentations.

    Parameters
    ----------
    samples : sequence
        Each ``sample`` has ``.image (3, H, W)`` and either ``.segmentations`` (a list of label
        maps, BSDS) or ``.labels`` (one label map, mosaics).
    nodes : NodeSpec
    max_segments : int
        Annotators with more segments (at node level) are not used for training, since
        ``k`` cannot exceed the feature dimension; one qualifying annotator is drawn per item
        and epoch from the trainer's seeded per-item generator (deterministic, resumable);
        see :func:`pick_annotator`.

    Node index maps and the annotators' node labels are computed once per image and cached.
    """

    def __init__(self, samples, nodes: NodeSpec, max_segments: int = 16) -> None:
        self.samples = samples
        self.nodes = nodes
        self.max_segments = max_segments
        self._cache: dict[int, tuple[Tensor, list[Tensor]]] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        sample = self.samples[i]
        if i not in self._cache:
            index = self.nodes.node_index(sample.image)
            segs = getattr(sample, "segmentations", None) or [sample.labels]
            self._cache[i] = (index, annotator_node_labels(segs, index))
        index, candidates = self._cache[i]
        labels = pick_annotator(candidates, self.max_segments, torch.default_generator)
        return sample.image, index, labels


def collate_ncuts(items):
    """Lists of images, node index maps and node labels (sizes may differ across images)."""
    images, indices, labels = zip(*items, strict=True)
    return list(images), list(indices), list(labels)


def ncuts_training_loss(model, batch):
    """Loss for :class:`matbackprop.train.Trainer`: mean normalized NCuts loss over images.

    Images of equal size are stacked into one backbone call; others go one by one.
    """
    images, indices, labels = batch
    if all(img.shape == images[0].shape for img in images):
        loss = model(torch.stack(images), indices, labels)
    else:
        loss = torch.stack(
            [
                model(img[None], [i], [lab])
                for img, i, lab in zip(images, indices, labels, strict=True)
            ]
        ).mean()
    return loss, {}


def pad_hierarchy(levels: list[Tensor], n_levels: int) -> list[Tensor]:
    """Repeat the finest level so every image has ``n_levels`` (needed by ODS)."""
    return levels + [levels[-1]] * (n_levels - len(levels))


def _score(args) -> object:
    levels, gts, boundaries, name = args
    return evaluate_hierarchy(levels, gts, boundaries=boundaries, name=name)


def evaluate_segmenters(
    segmenters: dict[str, Segmenter],
    images: Sequence[Tensor],
    node_indices: dict[str, Sequence[Tensor]],
    ground_truths: Sequence[Sequence[Tensor]],
    k_max: int,
    *,
    boundaries: bool = False,
    names: Sequence[str] | None = None,
    workers: int = 1,
) -> tuple[dict[str, dict], dict[str, list[list[Tensor]]]]:
    """Score each method's hierarchy ``k = 2 .. k_max`` with the BSDS region (and boundary)
    benchmark. Levels computed at another resolution than the ground truth are resized
    (nearest) to it first. With ``workers > 1`` the benchmark (not the segmentation) runs in a
    pool of processes. Returns ``(metrics per method, hierarchies per method)``."""
    metrics, hierarchies = {}, {}
    pool = None
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        for method, segment in segmenters.items():
            start = time.perf_counter()
            levels_all, jobs = [], []
            bar = tqdm(images, desc=f"segment {method}", disable=None, leave=False, file=sys.stderr)
            for i, image in enumerate(bar):
                levels = pad_hierarchy(segment(image, node_indices[method][i]), k_max - 1)
                size = tuple(ground_truths[i][0].shape)
                if tuple(levels[0].shape) != size:  # segmented at model resolution: upsample
                    levels = [resize_labels(level, size) for level in levels]
                levels_all.append(levels)
                jobs.append(
                    (
                        [lv.numpy() for lv in levels],
                        [g.numpy() for g in ground_truths[i]],
                        boundaries,
                        None if names is None else names[i],
                    )
                )
            evaluations = list(pool.map(_score, jobs)) if pool else [_score(j) for j in jobs]
            region = aggregate_region(evaluations)
            entry = {
                "covering_ods": region.covering_ods,
                "covering_ois": region.covering_ois,
                "covering_best": region.covering_best,
                "pri_ods": region.pri_ods,
                "pri_ois": region.pri_ois,
                "voi_ods": region.voi_ods,
                "voi_ois": region.voi_ois,
                "covering_per_level": [float(x) for x in region.covering],
                "seconds": time.perf_counter() - start,
            }
            if boundaries:
                boundary = aggregate_boundary(evaluations)
                entry.update(
                    boundary_ods_f=boundary.ods_f,
                    boundary_ois_f=boundary.ois_f,
                    boundary_ap=boundary.ap,
                )
            metrics[method] = entry
            print(
                f"{method}: covering ODS {entry['covering_ods']:.3f} ({entry['seconds']:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            hierarchies[method] = levels_all
    finally:
        if pool is not None:
            pool.shutdown()
    return metrics, hierarchies


def tune_classic(
    images: Sequence[Tensor],
    node_indices: Sequence[Tensor],
    ground_truths: Sequence[Sequence[Tensor]],
    k_max: int,
    sigma_rgb: Sequence[float] = (0.05, 0.1, 0.2),
    sigma_xy: Sequence[float] = (0.1, 0.2, 0.4),
) -> tuple[ClassicNCuts, dict]:
    """Grid-search the classic baseline's bandwidths by covering (ODS) on training images."""
    scores = {}
    grid = list(itertools.product(sigma_rgb, sigma_xy))
    for s_rgb, s_xy in tqdm(grid, desc="tune classic NCuts", disable=None, file=sys.stderr):
        model = ClassicNCuts(sigma_rgb=s_rgb, sigma_xy=s_xy)
        metrics, _ = evaluate_segmenters(
            {
                "classic": lambda image, index, model=model: model.segment_hierarchy(
                    image, index, k_max
                )
            },
            images,
            {"classic": node_indices},
            ground_truths,
            k_max,
        )
        scores[f"sigma_rgb={s_rgb},sigma_xy={s_xy}"] = metrics["classic"]["covering_ods"]
        print(
            f"classic NCuts sigma_rgb={s_rgb} sigma_xy={s_xy}: covering ODS "
            f"{scores[f'sigma_rgb={s_rgb},sigma_xy={s_xy}']:.3f}",
            file=sys.stderr,
            flush=True,
        )
    best = max(scores, key=scores.get)
    s_rgb, s_xy = (float(part.split("=")[1]) for part in best.split(","))
    return ClassicNCuts(sigma_rgb=s_rgb, sigma_xy=s_xy), scores
