"""What the segmentation tasks (``demo`` on texture mosaics, ``ncuts`` on BSDS500) share.

- :func:`fit_deep_ncuts` with :func:`ncuts_training_loss`: DeepNCuts on the shared trainer;
- :func:`evaluate_segmenters`: hierarchies of every method scored with the BSDS metrics
  (:func:`benchmark_entry`: the metrics of one method over images);
- :func:`tune_classic`: the classic baseline's bandwidths, grid-searched on training images
  (:func:`tune_and_save_classic` / :func:`read_classic`: into and from the run folder);
- :func:`ods_level`, :func:`ods_threshold`, :func:`level_like_ground_truth`: which hierarchy
  level a picture shows;
- :func:`quiet_eigengaps`: eigengap warnings silenced inside a block only;
- :class:`Segmentation`: what a task's ``segment`` returns (``matbackprop segment``).
"""

from __future__ import annotations

import itertools
import json
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from matbackprop.data import collate_columns, resize_labels
from matbackprop.metrics import aggregate_boundary, aggregate_region, evaluate_hierarchy
from matbackprop.models import ClassicNCuts
from matbackprop.nn import EigengapWarning
from matbackprop.train import TrainConfig, Trainer

Segmenter = Callable[[Tensor, Tensor], list[Tensor]]  # (image, node index) -> hierarchy


@dataclass
class Segmentation:
    """One image segmented by a task's ``segment``, at the image's full resolution.

    Attributes
    ----------
    levels : list of Tensor
        ``(H, W)`` int64 label maps, coarse to fine (the BSDS ``segs`` cell).
    thresholds : list of float
        The ``ucm2`` threshold of each level (decreasing): level ``j`` is the map of the
        regions left when every boundary of strength ``<= thresholds[j]`` is removed.
    ucm2 : Tensor, optional
        ``(2H + 1, 2W + 1)`` ultrametric contour map in ``[0, 1]``, for models that build one.

    Examples
    --------
    >>> import torch
    >>> from matbackprop.tasks import Segmentation
    >>> coarse, fine = torch.zeros(2, 3, dtype=torch.long), torch.tensor([[0, 0, 1], [0, 0, 1]])
    >>> seg = Segmentation(levels=[coarse, fine], thresholds=[0.8, 0.3])
    >>> seg.level_at(0.5), seg.level_at(0.9)
    (1, 0)
    """

    levels: list[Tensor]
    thresholds: list[float]
    ucm2: Tensor | None = None

    def level_at(self, threshold: float | None) -> int:
        """Index of the level the ``ucm2`` gives at ``threshold`` (the benchmark's cut
        ``ucm2 > threshold``: the level with the largest threshold ``<= threshold``, the
        finest if none is); the middle level for ``None``."""
        if threshold is None:
            return len(self.levels) // 2
        below = [j for j, t in enumerate(self.thresholds) if t <= threshold]
        return below[0] if below else len(self.levels) - 1


@contextmanager
def quiet_eigengaps() -> Iterator[None]:
    """Ignore :class:`~matbackprop.nn.EigengapWarning` inside the block (early in training
    and on flat images the top eigenvalues are close; the decoding copes with it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EigengapWarning)
        yield


def ncuts_training_loss(model: torch.nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
    """Loss for :class:`matbackprop.train.Trainer`: mean normalized NCuts loss over images.

    ``batch`` is ``(images, node indices, node labels)`` lists (``collate_columns`` of
    :class:`~matbackprop.data.NodeLabelItems`). Images of equal size are stacked into one
    backbone call; others go one by one.
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


def fit_deep_ncuts(
    train_config: TrainConfig, model: torch.nn.Module, items: Any, run_config: Any, resume: bool
) -> dict[str, Any]:
    """Train ``model`` (a :class:`~matbackprop.models.DeepNCuts`) on ``items`` (a
    :class:`~matbackprop.data.NodeLabelItems`) with the shared trainer; its summary."""
    trainer = Trainer(
        train_config,
        model,
        items,
        ncuts_training_loss,
        collate_fn=collate_columns,
        run_config=run_config,
    )
    return trainer.fit(resume=resume)


def pad_hierarchy(levels: list[Tensor], n_levels: int) -> list[Tensor]:
    """Repeat the finest level so every image has ``n_levels`` (needed by ODS)."""
    return levels + [levels[-1]] * (n_levels - len(levels))


def _score(args) -> object:
    levels, gts, boundaries, name = args
    return evaluate_hierarchy(levels, gts, boundaries=boundaries, name=name)


def _segment_all(
    segment: Segmenter,
    images: Sequence[Tensor],
    node_indices: Sequence[Tensor],
    ground_truths: Sequence[Sequence[Tensor]],
    k_max: int,
    desc: str,
) -> list[list[Tensor]]:
    """Every image's hierarchy, padded to ``k_max - 1`` levels, at ground-truth resolution."""
    hierarchies = []
    for i, image in enumerate(tqdm(images, desc=desc, disable=None, leave=False, file=sys.stderr)):
        levels = pad_hierarchy(segment(image, node_indices[i]), k_max - 1)
        size = tuple(ground_truths[i][0].shape)
        if tuple(levels[0].shape) != size:  # segmented at model resolution: upsample
            levels = [resize_labels(level, size) for level in levels]  # type: ignore[arg-type]
        hierarchies.append(levels)
    return hierarchies


def benchmark_entry(evaluations: Sequence[Any], boundaries: bool) -> dict[str, Any]:
    """The metrics of a method over images (``ImageEvaluation`` list): covering, PRI and VoI
    at ODS/OIS (and the covering of each level), with ``boundaries`` also boundary F ODS/OIS
    and AP -- the keys every report reads."""
    region = aggregate_region(evaluations)
    entry: dict[str, Any] = {
        "covering_ods": region.covering_ods,
        "covering_ois": region.covering_ois,
        "covering_best": region.covering_best,
        "pri_ods": region.pri_ods,
        "pri_ois": region.pri_ois,
        "voi_ods": region.voi_ods,
        "voi_ois": region.voi_ois,
        "covering_per_level": [float(x) for x in region.covering],
    }
    if boundaries:
        boundary = aggregate_boundary(evaluations)
        entry.update(
            boundary_ods_f=boundary.ods_f, boundary_ois_f=boundary.ois_f, boundary_ap=boundary.ap
        )
    return entry


def evaluate_segmenters(
    segmenters: dict[str, Segmenter],
    images: Sequence[Tensor],
    node_indices: Mapping[str, Sequence[Tensor]],
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
            levels_all = _segment_all(
                segment, images, node_indices[method], ground_truths, k_max, f"segment {method}"
            )
            jobs = [
                (
                    [lv.numpy() for lv in levels],
                    [g.numpy() for g in ground_truths[i]],
                    boundaries,
                    None if names is None else names[i],
                )
                for i, levels in enumerate(levels_all)
            ]
            evaluations = list(pool.map(_score, jobs)) if pool else [_score(j) for j in jobs]
            entry = benchmark_entry(evaluations, boundaries)
            entry["seconds"] = time.perf_counter() - start
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
) -> tuple[ClassicNCuts, list[dict[str, float]]]:
    """Grid-search the classic baseline's bandwidths by covering (ODS) on training images.

    Returns the best model (the first of the grid on a tie) and one record
    ``{"sigma_rgb", "sigma_xy", "covering_ods"}`` per grid point, in grid order.
    """
    scores = []
    grid = list(itertools.product(sigma_rgb, sigma_xy))
    for s_rgb, s_xy in tqdm(grid, desc="tune classic NCuts", disable=None, file=sys.stderr):
        model = ClassicNCuts(sigma_rgb=s_rgb, sigma_xy=s_xy)
        metrics, _ = evaluate_segmenters(
            {
                "classic": lambda image, index, model=model: model.segment_hierarchy(  # type: ignore[misc]
                    image, index, k_max
                )
            },
            images,
            {"classic": node_indices},
            ground_truths,
            k_max,
        )
        score = metrics["classic"]["covering_ods"]
        scores.append({"sigma_rgb": s_rgb, "sigma_xy": s_xy, "covering_ods": score})
        print(
            f"classic NCuts sigma_rgb={s_rgb} sigma_xy={s_xy}: covering ODS {score:.3f}",
            file=sys.stderr,
            flush=True,
        )
    best = max(scores, key=lambda s: s["covering_ods"])
    return ClassicNCuts(sigma_rgb=best["sigma_rgb"], sigma_xy=best["sigma_xy"]), scores


CLASSIC_FILE = "classic_ncuts.json"


def tune_and_save_classic(
    samples: Sequence[Any],
    nodes: Any,
    k_max: int,
    sigma_rgb: Sequence[float],
    sigma_xy: Sequence[float],
    run_dir: Path,
) -> dict[str, Any]:
    """:func:`tune_classic` on ``samples`` (with ``.image`` and ``.segmentations`` or
    ``.labels``) cut into ``nodes`` (a :class:`~matbackprop.data.NodeSpec`); the bandwidths and
    the tuning scores are written to ``<run_dir>/classic_ncuts.json`` and returned."""
    classic, scores = tune_classic(
        [s.image for s in samples],
        [nodes.node_index(s.image) for s in samples],
        [getattr(s, "segmentations", None) or [s.labels] for s in samples],
        k_max,
        sigma_rgb=sigma_rgb,
        sigma_xy=sigma_xy,
    )
    params = {
        "sigma_rgb": classic.sigma_rgb,
        "sigma_xy": classic.sigma_xy,
        "tuning": scores,
        "tune_images": len(samples),
    }
    (run_dir / CLASSIC_FILE).write_text(json.dumps(params, indent=2))
    return params


def read_classic(run_dir: Path, task: str) -> tuple[ClassicNCuts, dict[str, Any]]:
    """The classic baseline tuned by ``matbackprop train <task>`` in ``run_dir``."""
    path = run_dir / CLASSIC_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `matbackprop train {task}` first (it tunes the "
            "classic baseline on training images)"
        )
    params = json.loads(path.read_text())
    return ClassicNCuts(params["sigma_rgb"], params["sigma_xy"]), params


def ods_level(entry: dict) -> int:
    """Index of the hierarchy level with the best dataset covering (the ODS level)."""
    per_level = entry["covering_per_level"]
    return max(range(len(per_level)), key=per_level.__getitem__)


def ods_threshold(entry: dict) -> float:
    """The ``ucm2`` threshold of the ODS level of a ucm benchmark entry (``covering_per_level``
    over the benchmark's thresholds ``t_i = i / (n + 1)``, ``i = 1 .. n``)."""
    per_level = entry["covering_per_level"]
    return (ods_level(entry) + 1) / (len(per_level) + 1)


def level_like_ground_truth(levels: list[Tensor], ground_truth: Tensor) -> Tensor:
    """The level whose number of segments matches the ground truth's (``levels`` start at
    ``k = 2``)."""
    k = int(torch.unique(ground_truth).numel())
    return levels[min(max(k - 2, 0), len(levels) - 1)]
