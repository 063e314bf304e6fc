"""``matbackprop train|eval ncuts``: DeepNCuts on BSDS500 against its two baselines.

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
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from matbackprop.data import BSDS500, default_bsds_root
from matbackprop.models import ClassicNCuts, DeepNCuts, EfficientNetLite0Backbone
from matbackprop.train import (
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
    Trainer,
    config_to_dict,
    is_main_process,
    load_model_weights,
    resolve_device,
    seed_everything,
)

from ._figures import save_segmentation_figure
from ._ncuts_common import (
    NCutsTrainingSet,
    NodeSpec,
    collate_ncuts,
    evaluate_segmenters,
    ncuts_training_loss,
    tune_classic,
)
from ._report import command_line, environment, format_table

DESCRIPTION = "DeepNCuts on BSDS500 vs classic and frozen-feature normalized cuts"
METHODS = ("classic_ncuts", "frozen_feature_ncuts", "deep_ncuts")


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
    max_size: int = 240
    output_stride: int = 8
    trainable_blocks: int = 2
    feature_dim: int = 64
    superpixels: int = 300
    compactness: float = 10.0
    k_max: int = 16
    max_segments: int = 16
    tune_images: int = 20
    classic_sigma_rgb: list[float] = field(default_factory=lambda: [0.025, 0.05, 0.1, 0.2])
    classic_sigma_xy: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.4])
    eval_limit: int | None = None
    boundaries: bool = True
    figure_images: int = 4
    eval_workers: int = 2

    def __post_init__(self) -> None:
        if self.output_stride not in (8, 16):
            raise ValueError(f"`output_stride` must be 8 or 16, got {self.output_stride}")
        for name in ("max_size", "feature_dim", "superpixels", "tune_images", "max_segments"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}")
        if not isinstance(self.k_max, int) or self.k_max < 2:
            raise ValueError(f"`k_max` must be an int >= 2, got {self.k_max!r}")
        if self.k_max > self.feature_dim:
            raise ValueError(
                f"`k_max` ({self.k_max}) cannot exceed `feature_dim` ({self.feature_dim}): the "
                "affinity FFᵀ has rank <= d"
            )
        if self.trainable_blocks < 0:
            raise ValueError(f"`trainable_blocks` must be >= 0, got {self.trainable_blocks}")

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

    @property
    def run_dir(self) -> Path:
        return Path(self.train.out_dir) / self.train.name


def build_deep_ncuts(config: Config, *, pretrained: bool = True) -> DeepNCuts:
    backbone = EfficientNetLite0Backbone(
        output_stride=config.output_stride,
        pretrained=pretrained,
        trainable=config.trainable_blocks if config.trainable_blocks else False,
    )
    return DeepNCuts(backbone, config.feature_dim, nonneg="softplus")


def build_frozen_ncuts(config: Config) -> DeepNCuts:
    backbone = EfficientNetLite0Backbone(output_stride=config.output_stride, trainable=False)
    return DeepNCuts(backbone, None, nonneg="relu").eval()


def train(config: Config, *, resume: bool = False) -> dict:
    """Tune the classic baseline on training images, then train DeepNCuts."""
    start = time.perf_counter()
    seed_everything(config.train.seed)
    warnings.filterwarnings("ignore", message=".*eigengap.*")
    root = config.root()
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    data = BSDS500(root, config.train_split, max_size=config.max_size)

    # classic baseline: bandwidths by covering ODS on the first training images
    classic_file = run_dir / "classic_ncuts.json"
    if (resume and classic_file.is_file()) or not is_main_process():
        # under DDP only rank 0 tunes the baseline; it is not needed for training
        classic_summary = json.loads(classic_file.read_text()) if classic_file.is_file() else {}
    else:
        samples = [data[i] for i in range(min(config.tune_images, len(data)))]
        classic, scores = tune_classic(
            [s.image for s in samples],
            [config.nodes.node_index(s.image) for s in samples],
            [s.segmentations for s in samples],
            config.k_max,
            sigma_rgb=config.classic_sigma_rgb,
            sigma_xy=config.classic_sigma_xy,
        )
        classic_summary = {
            "sigma_rgb": classic.sigma_rgb,
            "sigma_xy": classic.sigma_xy,
            "tuning_covering_ods": scores,
            "tune_images": len(samples),
        }
        classic_file.write_text(json.dumps(classic_summary, indent=2))

    model = build_deep_ncuts(config)
    dataset = NCutsTrainingSet(data, config.nodes, max_segments=config.max_segments)
    trainer = Trainer(
        config.train,
        model,
        dataset,
        ncuts_training_loss,
        collate_fn=collate_ncuts,
        run_config=config,
    )
    summary = trainer.fit(resume=resume)
    summary = {k: v for k, v in summary.items() if isinstance(v, (int, float, str, type(None)))}
    summary.update(
        classic=classic_summary,
        wall_time_seconds=time.perf_counter() - start,
        checkpoint=str(trainer.checkpoint_path),
        command=command_line(),
        environment=environment(),
    )
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def evaluate(config: Config, *, checkpoint: Path, split: str | None, out_dir: Path) -> dict:
    """Score the three methods on ``split``; the classic bandwidths come from the run folder of
    ``checkpoint`` (``classic_ncuts.json`` written by ``train``)."""
    start = time.perf_counter()
    warnings.filterwarnings("ignore", message=".*eigengap.*")
    split = split or config.eval_split
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classic_file = Path(checkpoint).parent / "classic_ncuts.json"
    if not classic_file.is_file():
        raise FileNotFoundError(
            f"{classic_file} not found: run `matbackprop train ncuts` first (it tunes the "
            "classic baseline on training images)"
        )
    classic_params = json.loads(classic_file.read_text())
    training = _training_record(Path(checkpoint).parent)
    classic = ClassicNCuts(classic_params["sigma_rgb"], classic_params["sigma_xy"])
    device = resolve_device(config.train.device)
    model = build_deep_ncuts(config, pretrained=False)
    load_model_weights(model, checkpoint)
    model = model.to(device).eval()
    frozen = build_frozen_ncuts(config).to(device)

    small = BSDS500(config.root(), split, max_size=config.max_size)
    full = BSDS500(config.root(), split)
    count = len(small) if config.eval_limit is None else min(config.eval_limit, len(small))
    images, gts, names, indices = [], [], [], []
    for i in range(count):
        sample, original = small[i], full[i]
        images.append(sample.image)
        gts.append(original.segmentations)
        names.append(sample.image_id)
        indices.append(config.nodes.node_index(sample.image))

    k = config.k_max

    def on_device(net):
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
        images,
        dict.fromkeys(METHODS, indices),
        gts,
        k,
        boundaries=config.boundaries,
        names=names,
    )
    shown = min(config.figure_images, count)
    figure = save_segmentation_figure(
        out_dir / f"segmentations_{split}.png",
        [full[i].image for i in range(shown)],
        [gts[i][0] for i in range(shown)],
        {m: [hierarchies[m][i][_ods_level(metrics[m])] for i in range(shown)] for m in METHODS},
        scale=1,
    )
    result = {
        "task": "ncuts",
        "split": split,
        "images": count,
        "methods": metrics,
        "classic_params": classic_params,
        "checkpoint": str(checkpoint),
        "device": str(device),
        "config": config_to_dict(config),
        "figure": str(figure),
        "commands": [*training.get("commands", []), command_line()],
        "training": training.get("summary", {}),
        "environment": environment(),
        "wall_time_seconds": time.perf_counter() - start,
    }
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2, default=str))
    print(format_table(metrics), file=sys.stderr)
    return {"metrics": str(out_dir / "metrics.json"), "methods": metrics}


def _training_record(run_dir: Path) -> dict:
    """What ``train`` recorded in the run folder (its command, steps and wall time)."""
    path = run_dir / "train_summary.json"
    if not path.is_file():
        return {}
    summary = json.loads(path.read_text())
    keep = ("step", "last_loss", "wall_time_seconds", "environment")
    return {
        "commands": [summary["command"]] if "command" in summary else [],
        "summary": {k: summary[k] for k in keep if k in summary},
    }


def _ods_level(entry: dict) -> int:
    """Index of the hierarchy level with the best dataset covering (the ODS level)."""
    per_level = entry["covering_per_level"]
    return max(range(len(per_level)), key=per_level.__getitem__)
