"""``ncuts``: DeepNCuts on BSDS500 against its two baselines.

Methods (all share the same SLIC superpixel nodes and the same hierarchy decoding):

- ``classic_ncuts``: Shi–Malik normalized cuts on superpixel colour and position; its two
  bandwidths are grid-searched on training images (covering ODS) during ``train``;
- ``frozen_feature_ncuts``: normalized cuts on frozen ImageNet features (EfficientNet-Lite0,
  rectified), no training;
- ``deep_ncuts``: the same backbone with its last blocks fine-tuned and a learned 1×1
  projection, trained end to end through the normalized-cuts layer with the Bach–Jordan loss.

Training annotator: for each item and epoch one human segmentation is drawn at random among
those with at most ``max_segments`` segments at superpixel level (the coarsest one if none
qualifies), from the trainer's per-item seeded generator (deterministic, resumable).

Evaluation: hierarchies ``k = 2 .. k_max`` are computed at the model resolution
(``max_size``), upsampled (nearest) to the original image size and scored against all human
segmentations with the BSDS benchmark (covering, PRI, VoI, boundary F: ODS/OIS/AP).

Run folder ``<train.out_dir>/<train.name>/``: ``last.pt`` (DeepNCuts), ``metrics.jsonl``,
``config.yaml``, ``classic_ncuts.json`` (the tuned bandwidths) and ``run.json``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch

from matbackprop.data import (
    BSDS500,
    NodeLabelItems,
    NodeSpec,
    default_bsds_root,
    keep_aspect_size,
    resize_image,
    resize_labels,
)
from matbackprop.errors import ConfigError
from matbackprop.models import ClassicNCuts, DeepNCuts, EfficientNetLite0Backbone
from matbackprop.train import (
    OptimConfig,
    Range,
    RunRecord,
    ScheduleConfig,
    TrainConfig,
    is_main_process,
    load_model_weights,
    recording,
    resolve_device,
    seed_everything,
    validate_fields,
)

from ._figures import save_segmentation_figure
from ._runs import save_evaluation_record, save_training_record
from ._segmentation import (
    CLASSIC_FILE,
    Segmentation,
    evaluate_segmenters,
    fit_deep_ncuts,
    ods_level,
    quiet_eigengaps,
    read_classic,
    tune_and_save_classic,
)

DESCRIPTION = "DeepNCuts on BSDS500 vs classic and frozen-feature normalized cuts"
METHODS = ("classic_ncuts", "frozen_feature_ncuts", "deep_ncuts")
#: The method ``matbackprop segment`` and the shipped weights use (see :func:`segment`).
SEGMENT_METHOD = "deep_ncuts"
PRESETS: dict[str, tuple[str, ...]] = {}

_POSITIVE = Range(ge=1)


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


def _default_train() -> TrainConfig:
    return TrainConfig(
        name="ncuts_bsds",
        steps=3000,
        batch_size=2,
        optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4),
        schedule=ScheduleConfig(name="cosine", warmup_steps=50),
        grad_clip=5.0,
        checkpoint_every=100,
        log_every=20,
    )


@dataclass
class Config:
    """Settings of the BSDS500 NCuts experiment (TOML/YAML sections mirror the fields)."""

    train: TrainConfig = field(default_factory=_default_train)
    data_root: Path | None = None
    train_split: str = "train"
    eval_split: str = "val"
    max_size: Annotated[int, _POSITIVE] = 240
    output_stride: Literal[8, 16] = 8
    trainable_blocks: Annotated[int, Range(ge=0)] = 2
    feature_dim: Annotated[int, _POSITIVE] = 64
    superpixels: Annotated[int, _POSITIVE] = 300
    compactness: Annotated[float, Range(gt=0)] = 10.0
    k_max: Annotated[int, Range(ge=2)] = 16
    max_segments: Annotated[int, _POSITIVE] = 16
    tune_images: Annotated[int, _POSITIVE] = 20
    classic_sigma_rgb: list[Annotated[float, Range(gt=0)]] = field(
        default_factory=lambda: [0.025, 0.05, 0.1, 0.2]
    )
    classic_sigma_xy: list[Annotated[float, Range(gt=0)]] = field(
        default_factory=lambda: [0.05, 0.1, 0.2, 0.4]
    )
    eval_limit: Annotated[int | None, _POSITIVE] = None
    boundaries: bool = True
    figure_images: Annotated[int, Range(ge=0)] = 4
    eval_workers: Annotated[int, _POSITIVE] = 2

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.k_max > self.feature_dim:
            raise ConfigError(
                f"`k_max` ({self.k_max}) cannot exceed `feature_dim` ({self.feature_dim}): the "
                "affinity FFᵀ has rank <= d"
            )

    @property
    def nodes(self) -> NodeSpec:
        return NodeSpec("slic", n_segments=self.superpixels, compactness=self.compactness)

    def root(self) -> Path:
        root = self.data_root if self.data_root is not None else default_bsds_root()
        if root is None:
            raise ValueError(
                "no BSDS500 root: pass --data-root or set MATBACKPROP_BSDS_ROOT "
                "(the folder holding data/images and data/groundTruth)"
            )
        return Path(root)


# --------------------------------------------------------------------------------------------
# models and data
# --------------------------------------------------------------------------------------------


def build_model(config: Config, method: str, *, pretrained: bool = True) -> Any:
    """The model of ``method``: DeepNCuts (``pretrained=False``: to load a checkpoint into),
    the frozen-feature baseline, or classic NCuts with default bandwidths (tuned by ``train``)."""
    if method == "deep_ncuts":
        trainable = config.trainable_blocks if config.trainable_blocks else False
        backbone = EfficientNetLite0Backbone(
            output_stride=config.output_stride, pretrained=pretrained, trainable=trainable
        )
        return DeepNCuts(backbone, config.feature_dim, nonneg="softplus")
    if method == "frozen_feature_ncuts":
        backbone = EfficientNetLite0Backbone(output_stride=config.output_stride, trainable=False)
        return DeepNCuts(backbone, None, nonneg="relu").eval()
    if method == "classic_ncuts":
        return ClassicNCuts()
    raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")


def train_data(config: Config) -> NodeLabelItems:
    """Training items: BSDS images at ``max_size``, SLIC nodes, one annotator's node labels."""
    data = BSDS500(config.root(), config.train_split, max_size=config.max_size)
    return NodeLabelItems(data, config.nodes, max_segments=config.max_segments)


@dataclass
class EvalImages:
    """Evaluation samples: images at model resolution, human segmentations at full size."""

    images: list[torch.Tensor]
    ground_truths: list[list[torch.Tensor]]
    names: list[str]
    full_images: list[torch.Tensor]


def eval_data(config: Config, split: str | None = None) -> EvalImages:
    """The first ``eval_limit`` images of ``split`` (default ``eval_split``)."""
    split = split or config.eval_split
    small = BSDS500(config.root(), split, max_size=config.max_size)
    full = BSDS500(config.root(), split)
    count = len(small) if config.eval_limit is None else min(config.eval_limit, len(small))
    images, gts, names, originals = [], [], [], []
    for i in range(count):
        sample, original = small[i], full[i]
        images.append(sample.image)
        gts.append(original.segmentations)
        names.append(sample.image_id)
        originals.append(original.image)
    return EvalImages(images, gts, names, originals)


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


def train(config: Config, *, resume: bool = False) -> RunRecord:
    """Tune the classic baseline on training images, then train DeepNCuts."""
    run_dir = config.train.run_dir
    with recording("train", resume=resume) as command, quiet_eigengaps():
        seed_everything(config.train.seed)
        run_dir.mkdir(parents=True, exist_ok=True)
        items = train_data(config)
        classic = _tuned_classic(config, items.samples, run_dir, resume)
        model = build_model(config, "deep_ncuts")
        summary = fit_deep_ncuts(config.train, model, items, config, resume)
        return save_training_record(
            "ncuts",
            config,
            command,
            {"deep_ncuts": summary},
            resume=resume,
            details={"classic_params": classic},
        )


def _tuned_classic(config: Config, samples: Any, run_dir: Path, resume: bool) -> dict:
    """The classic bandwidths: grid-searched by covering ODS on the first training images, or
    read back on resume (under DDP only rank 0 tunes; training does not need them)."""
    if (resume and (run_dir / CLASSIC_FILE).is_file()) or not is_main_process():
        return read_classic(run_dir, "ncuts")[1] if (run_dir / CLASSIC_FILE).is_file() else {}
    tune = [samples[i] for i in range(min(config.tune_images, len(samples)))]
    grid = (config.classic_sigma_rgb, config.classic_sigma_xy)
    return tune_and_save_classic(tune, config.nodes, config.k_max, *grid, run_dir)


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def evaluate(
    config: Config,
    *,
    checkpoint: str | Path | None = None,
    split: str | None = None,
    out_dir: str | Path | None = None,
) -> RunRecord:
    """Score the three methods on ``split``; the classic bandwidths and the training record
    come from the run folder of ``checkpoint`` (default ``<run_dir>/last.pt``)."""
    checkpoint = Path(checkpoint or config.train.run_dir / "last.pt")
    if checkpoint.is_dir():
        checkpoint = checkpoint / "last.pt"
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    run_dir, split = checkpoint.parent, split or config.eval_split
    out_dir = Path(out_dir or config.train.run_dir)
    with recording("eval", split=split) as command, quiet_eigengaps():
        classic, classic_params = read_classic(run_dir, "ncuts")
        device = resolve_device(config.train.device)
        model = build_model(config, "deep_ncuts", pretrained=False)
        load_model_weights(model, checkpoint)
        model = model.to(device).eval()
        frozen = build_model(config, "frozen_feature_ncuts").to(device)

        data = eval_data(config, split)
        indices = [config.nodes.node_index(image) for image in data.images]
        k = config.k_max

        def on_device(net: DeepNCuts):
            def segment(img, idx):
                levels = net.segment_hierarchy(img.to(device), idx.to(device), k)
                return [level.cpu() for level in levels]

            return segment

        segmenters = {
            "classic_ncuts": lambda img, idx: classic.segment_hierarchy(img, idx, k),
            "frozen_feature_ncuts": on_device(frozen),
            "deep_ncuts": on_device(model),
        }
        metrics, hierarchies = evaluate_segmenters(
            segmenters,
            data.images,
            dict.fromkeys(METHODS, indices),
            data.ground_truths,
            k,
            boundaries=config.boundaries,
            names=data.names,
            workers=config.eval_workers,
        )
        shown = min(config.figure_images, len(data.images))
        figure = save_segmentation_figure(
            out_dir / f"segmentations_{split}.png",
            data.full_images[:shown],
            [gts[0] for gts in data.ground_truths[:shown]],
            {m: [hierarchies[m][i][ods_level(metrics[m])] for i in range(shown)] for m in METHODS},
            scale=1,
        )
        record = save_evaluation_record(
            "ncuts",
            config,
            command,
            run_dir=run_dir,
            out_dir=out_dir,
            split=split,
            methods=metrics,
            figures=[figure],
            details={"images": len(data.images), "classic_params": classic_params},
            device=device,
        )
    print(record.table(), file=sys.stderr)
    return record


# --------------------------------------------------------------------------------------------
# segment (``matbackprop segment``, shipped weights)
# --------------------------------------------------------------------------------------------


def segment(config: Config, model: DeepNCuts, image: torch.Tensor) -> Segmentation:
    """The hierarchy ``k = 2 .. k_max`` of one RGB image ``(3, H, W)`` in ``[0, 1]``, as the
    evaluation computes it: the image shrunk to a long side of ``max_size`` (never enlarged),
    its SLIC nodes, one decomposition, and every level resized (nearest) back to ``(H, W)``."""
    height, width = int(image.shape[-2]), int(image.shape[-1])
    small = image
    if max(height, width) > config.max_size:
        size = keep_aspect_size(height, width, max_side=config.max_size)
        small = resize_image(image, size).clamp_(0.0, 1.0)
    index = config.nodes.node_index(small)
    device = next(model.parameters()).device
    with quiet_eigengaps():
        levels = model.segment_hierarchy(small.to(device), index.to(device), config.k_max)
    full = [resize_labels(level.cpu(), (height, width)) for level in levels]
    return Segmentation(levels=full, ks=list(range(2, 2 + len(full))))
