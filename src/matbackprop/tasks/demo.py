"""``demo``: the main job on the embedded default data (no files needed); ``matbackprop demo``.

1. Generate :class:`~matbackprop.data.TextureMosaics` (train / test by disjoint seeds).
2. Train DeepNCuts -- a small VGG trunk from scratch, 1×1 projection, softplus, the low-rank
   normalized-cuts layer on a grid of feature cells, the Bach–Jordan loss -- with the shared
   trainer (checkpoints, JSONL log, progress bar).
3. Baselines: (a) classic normalized cuts on SLIC superpixels with a Gaussian affinity on
   colour and position, bandwidths tuned on training mosaics; (b) normalized cuts on frozen
   ImageNet features (EfficientNet-Lite0, no training).
4. Score the hierarchies ``k = 2 .. k_max`` of all three on the test mosaics (covering, PRI,
   VoI: ODS and OIS); write ``metrics.json`` and ``segmentations.png``.

Run folder ``<train.out_dir>/<train.name>/`` (``runs/demo``): ``deep_ncuts/`` (the trainer's
run: ``last.pt``, ``metrics.jsonl``), ``classic_ncuts.json``, ``run.json``, ``metrics.json``
and ``segmentations.png``. The preset ``quick`` shrinks everything for smoke tests.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch

from matbackprop.data import NodeLabelItems, NodeSpec, TextureMosaics
from matbackprop.models import ClassicNCuts, DeepNCuts, EfficientNetLite0Backbone, VGGTrunk
from matbackprop.train import (
    OptimConfig,
    Range,
    RunRecord,
    ScheduleConfig,
    TrainConfig,
    load_model_weights,
    recording,
    seed_everything,
    validate_fields,
)

from ._figures import save_segmentation_figure
from ._runs import save_evaluation_record, save_training_record
from ._segmentation import (
    evaluate_segmenters,
    fit_deep_ncuts,
    level_like_ground_truth,
    quiet_eigengaps,
    read_classic,
    tune_and_save_classic,
)

DESCRIPTION = "DeepNCuts vs baselines on texture mosaics generated on the fly"
METHODS = ("classic_ncuts", "frozen_feature_ncuts", "deep_ncuts")
PRESETS: dict[str, tuple[str, ...]] = {
    "quick": (
        "n_train=8",
        "n_test=3",
        "n_tune=2",
        "size=48",
        "train.steps=3",
        "train.batch_size=2",
        "widths=8,16,16",
        "feature_dim=8",
        "k_max=4",
        "superpixels=40",
    ),
}
TRAINED = "deep_ncuts"

_POSITIVE = Range(ge=1)
_START = time.perf_counter()


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


def _default_train() -> TrainConfig:
    return TrainConfig(
        name="demo",
        steps=350,
        batch_size=8,
        optim=OptimConfig(name="adamw", lr=3e-3, weight_decay=1e-4),
        schedule=ScheduleConfig(name="cosine"),
        grad_clip=5.0,
    )


@dataclass
class Config:
    """Sizes of the demo (section ``train``: the trainer of DeepNCuts).

    ``schedule_from_steps``: derive the warm-up (5 % of ``train.steps``), checkpoint (every
    20 %) and log (every 4 %) intervals from ``train.steps``; false: use the ``train`` section's
    own ``schedule.warmup_steps``, ``checkpoint_every`` and ``log_every``.
    """

    train: TrainConfig = field(default_factory=_default_train)
    schedule_from_steps: bool = True
    n_train: Annotated[int, _POSITIVE] = 256
    n_test: Annotated[int, _POSITIVE] = 32
    n_tune: Annotated[int, _POSITIVE] = 12
    size: Annotated[int, Range(ge=16)] = 96
    widths: tuple[Annotated[int, _POSITIVE], ...] = (32, 64, 96)
    feature_dim: Annotated[int, _POSITIVE] = 32
    k_max: Annotated[int, Range(ge=2)] = 8
    superpixels: Annotated[int, Range(ge=2)] = 150
    classic_sigma_rgb: list[Annotated[float, Range(gt=0)]] = field(
        default_factory=lambda: [0.05, 0.1, 0.2]
    )
    classic_sigma_xy: list[Annotated[float, Range(gt=0)]] = field(
        default_factory=lambda: [0.1, 0.2, 0.4]
    )
    eval_split: Literal["test"] = "test"

    def __post_init__(self) -> None:
        validate_fields(self)

    @property
    def trainer_config(self) -> TrainConfig:
        """The trainer's config: in ``<run_dir>/deep_ncuts``, intervals from the steps."""
        tc = dataclasses.replace(self.train, out_dir=self.train.run_dir, name=TRAINED)
        if not self.schedule_from_steps or tc.steps is None:
            return tc
        return dataclasses.replace(
            tc,
            schedule=dataclasses.replace(tc.schedule, warmup_steps=max(1, tc.steps // 20)),
            checkpoint_every=max(1, tc.steps // 5),
            log_every=max(1, tc.steps // 25),
        )


def _log(message: str) -> None:
    print(f"[demo {time.perf_counter() - _START:5.1f}s] {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# models and data
# --------------------------------------------------------------------------------------------


def build_model(config: Config, method: str) -> Any:
    """DeepNCuts on a small VGG trunk (from scratch), the frozen-feature baseline, or classic
    NCuts with default bandwidths (tuned by ``train``)."""
    if method == "deep_ncuts":
        trunk = VGGTrunk(widths=config.widths, output_stride=4)  # normalization 0.5 / 0.25
        return DeepNCuts(trunk, config.feature_dim, nonneg="softplus")
    if method == "frozen_feature_ncuts":
        backbone = EfficientNetLite0Backbone(output_stride=8, pretrained=True, trainable=False)
        # block outputs are linear bottlenecks: rectify for W = FFᵀ >= 0
        return DeepNCuts(backbone, feature_dim=None, nonneg="relu").eval()
    if method == "classic_ncuts":
        return ClassicNCuts()
    raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")


def _mosaics(config: Config, which: str) -> TextureMosaics:
    seed = config.train.seed
    if which == "train":
        return TextureMosaics(config.n_train, size=config.size, seed=3 * seed)
    return TextureMosaics(config.n_test, size=config.size, seed=3 * seed + 2)


def train_data(config: Config) -> NodeLabelItems:
    """Training mosaics on a grid of 4 × 4 cells (the trunk's output stride)."""
    return NodeLabelItems(_mosaics(config, "train"), NodeSpec("grid", cell=4), config.k_max)


def eval_data(config: Config, split: str | None = None) -> list[Any]:
    """The test mosaics (generated on the fly from their own seed)."""
    if (split or config.eval_split) != "test":
        raise ValueError(f"`split` must be 'test' for the demo, got {split!r}")
    test = _mosaics(config, "test")
    return [test[i] for i in range(len(test))]


def _slic(config: Config) -> NodeSpec:
    return NodeSpec("slic", n_segments=config.superpixels, compactness=10.0)


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


def train(config: Config, *, resume: bool = False) -> RunRecord:
    """Train DeepNCuts, then tune the classic baseline's bandwidths on training mosaics."""
    run_dir = config.train.run_dir
    with recording("train", resume=resume) as command, quiet_eigengaps():
        seed_everything(config.train.seed)
        items = train_data(config)
        _log(f"{config.n_train} training and {config.n_test} test mosaics of {config.size}px")
        model = build_model(config, TRAINED)
        summary = fit_deep_ncuts(config.trainer_config, model, items, config, resume)
        loss = summary["last_loss"]
        _log(f"trained DeepNCuts for {summary['step']} steps (last loss {loss:.3f})")

        tune = [items.samples[i] for i in range(config.n_tune)]
        grid = (config.classic_sigma_rgb, config.classic_sigma_xy)
        params = tune_and_save_classic(tune, _slic(config), config.k_max, *grid, run_dir)
        _log(
            f"classic NCuts tuned on {len(tune)} training mosaics: "
            f"sigma_rgb={params['sigma_rgb']}, sigma_xy={params['sigma_xy']}"
        )
        details = {"classic_params": params}
        return save_training_record(
            "demo", config, command, {TRAINED: summary}, resume=resume, details=details
        )


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
    """Score the three methods on the test mosaics; ``checkpoint``: DeepNCuts' ``last.pt`` or
    the run folder (default ``config.train.run_dir``), which also holds the classic bandwidths."""
    checkpoint = Path(checkpoint or config.train.run_dir)
    run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent.parent
    checkpoint = run_dir / TRAINED / "last.pt" if checkpoint.is_dir() else checkpoint
    out_dir = Path(out_dir or config.train.run_dir)
    with recording("eval", split="test") as command, quiet_eigengaps():
        samples = eval_data(config, split)
        classic, params = read_classic(run_dir, "demo")
        model = build_model(config, TRAINED)
        load_model_weights(model, checkpoint)
        model = model.eval()
        k = config.k_max

        images = [s.image for s in samples]
        gts = [[s.labels] for s in samples]
        grid = [NodeSpec("grid", cell=4).node_index(image) for image in images]
        slic = [_slic(config).node_index(image) for image in images]
        segmenters = {
            "classic_ncuts": lambda image, index: classic.segment_hierarchy(image, index, k),
            "frozen_feature_ncuts": _frozen_feature_segmenter(config),
            "deep_ncuts": lambda image, index: model.segment_hierarchy(image, index, k),
        }
        indices = {"classic_ncuts": slic, "frozen_feature_ncuts": grid, "deep_ncuts": grid}
        metrics, hierarchies = evaluate_segmenters(segmenters, images, indices, gts, k)
        _log("evaluated all methods")

        shown = min(4, len(images))
        figure = save_segmentation_figure(
            out_dir / "segmentations.png",
            images[:shown],
            [g[0] for g in gts[:shown]],
            {
                m: [level_like_ground_truth(hierarchies[m][i], gts[i][0]) for i in range(shown)]
                for m in ("classic_ncuts", "deep_ncuts")
            },
        )
        seed = config.train.seed
        data = {
            "dataset": "TextureMosaics",
            "train": config.n_train,
            "test": len(samples),
            "size": config.size,
            "train_seed": 3 * seed,
            "test_seed": 3 * seed + 2,
        }
        return save_evaluation_record(
            "demo",
            config,
            command,
            run_dir=run_dir,
            out_dir=out_dir,
            split="test",
            methods=metrics,
            figures=[figure],
            details={
                "settings": _settings(config),
                "data": data,
                "classic_params": {k: params[k] for k in ("sigma_rgb", "sigma_xy")},
            },
            device="cpu",
        )


def _settings(config: Config) -> dict[str, Any]:
    """The demo's sizes and its trainer's main settings, for the report."""
    own = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    keep = ("n_train", "n_test", "n_tune", "size", "widths", "feature_dim", "k_max")
    train = {"steps": config.train.steps, "batch_size": config.train.batch_size}
    return {
        **{k: own[k] for k in keep},
        **train,
        "lr": config.train.optim.lr,
        "superpixels": config.superpixels,
    }


def _frozen_feature_segmenter(config: Config):
    """NCuts on frozen EfficientNet-Lite0 features (stride 8 on the image upsampled 2x, so the
    node grid matches DeepNCuts' stride-4 grid)."""
    model = build_model(config, "frozen_feature_ncuts")

    def segment(image: torch.Tensor, node_index: torch.Tensor) -> list[torch.Tensor]:
        big = torch.nn.functional.interpolate(
            image[None], scale_factor=2, mode="bilinear", align_corners=False
        )[0]
        index = node_index.repeat_interleave(2, 0).repeat_interleave(2, 1)
        levels = model.segment_hierarchy(big, index, config.k_max)
        return [lv[::2, ::2] for lv in levels]

    return segment
