"""``matbackprop demo``: the main job on the embedded default data (no files needed).

1. Generate :class:`~matbackprop.data.TextureMosaics` (train / test by disjoint seeds).
2. Train DeepNCuts -- a small VGG trunk from scratch, 1×1 projection, softplus, the low-rank
   normalized-cuts layer on a grid of feature cells, the Bach–Jordan loss -- with the shared
   trainer (checkpoints, JSONL log, progress bar).
3. Baselines: (a) classic normalized cuts on SLIC superpixels with a Gaussian affinity on
   colour and position, bandwidths tuned on training mosaics; (b) normalized cuts on frozen
   ImageNet features (EfficientNet-Lite0, no training).
4. Score the hierarchies ``k = 2 .. 8`` of all three on the test mosaics (covering, PRI, VoI:
   ODS and OIS), print a table, write ``metrics.json`` and ``segmentations.png``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from matbackprop.data import TextureMosaics
from matbackprop.models import DeepNCuts, EfficientNetLite0Backbone, VGGTrunk
from matbackprop.train import OptimConfig, ScheduleConfig, TrainConfig, Trainer, seed_everything

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


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo; ``quick`` shrinks everything for smoke tests."""

    n_train: int = 256
    n_test: int = 32
    n_tune: int = 12
    size: int = 96
    steps: int = 350
    batch_size: int = 8
    lr: float = 3e-3
    widths: tuple[int, ...] = (32, 64, 96)
    feature_dim: int = 32
    k_max: int = 8
    superpixels: int = 150

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(
            n_train=8,
            n_test=3,
            n_tune=2,
            size=48,
            steps=3,
            batch_size=2,
            widths=(8, 16, 16),
            feature_dim=8,
            k_max=4,
            superpixels=40,
        )


def _frozen_feature_segmenter(k_max: int, size: int):
    """NCuts on frozen EfficientNet-Lite0 features (stride 8 on the image upsampled 2x, so the
    node grid matches DeepNCuts' stride-4 grid)."""
    backbone = EfficientNetLite0Backbone(output_stride=8, pretrained=True, trainable=False)
    model = DeepNCuts(
        backbone,
        feature_dim=None,
        nonneg="relu",  # block outputs are linear bottlenecks: rectify for W = FFᵀ >= 0
    ).eval()

    def segment(image, node_index):
        big = torch.nn.functional.interpolate(
            image[None], scale_factor=2, mode="bilinear", align_corners=False
        )[0]
        levels = model.segment_hierarchy(big, _upsample_index(node_index), k_max)
        return [lv[::2, ::2] for lv in levels]

    return segment


def _upsample_index(node_index):
    return node_index.repeat_interleave(2, 0).repeat_interleave(2, 1)


def run_demo(
    out_dir: Path = Path("runs/demo"),
    steps: int | None = None,
    quick: bool = False,
    seed: int = 0,
    device: str | None = None,
    resume: bool = False,
) -> dict:
    """Run the demo end to end; returns the metrics written to ``out_dir/metrics.json``.

    ``resume=True`` continues an interrupted training run from its last checkpoint.
    """
    start = time.perf_counter()
    settings = DemoSettings.quick() if quick else DemoSettings()
    if steps is not None:
        settings = DemoSettings(**{**asdict(settings), "steps": steps})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    warnings.filterwarnings("ignore", message=".*eigengap.*")
    log = lambda msg: print(f"[demo {time.perf_counter() - start:5.1f}s] {msg}", file=sys.stderr)

    # ---------------------------------------------------------------- data
    train = TextureMosaics(settings.n_train, size=settings.size, seed=3 * seed)
    test = TextureMosaics(settings.n_test, size=settings.size, seed=3 * seed + 2)
    grid = NodeSpec("grid", cell=4)
    slic = NodeSpec("slic", n_segments=settings.superpixels, compactness=10.0)
    test_samples = [test[i] for i in range(len(test))]
    test_images = [s.image for s in test_samples]
    test_gts = [[s.labels] for s in test_samples]
    log(f"{len(train)} training and {len(test)} test mosaics of {settings.size}px")

    # ---------------------------------------------------------------- DeepNCuts
    trunk = VGGTrunk(widths=settings.widths, output_stride=4)
    model = DeepNCuts(trunk, settings.feature_dim, nonneg="softplus")
    config = TrainConfig(
        name="deep_ncuts",
        out_dir=out_dir,
        steps=settings.steps,
        batch_size=settings.batch_size,
        optim=OptimConfig(name="adamw", lr=settings.lr, weight_decay=1e-4),
        schedule=ScheduleConfig(name="cosine", warmup_steps=max(1, settings.steps // 20)),
        grad_clip=5.0,
        seed=seed,
        checkpoint_every=max(1, settings.steps // 5),
        log_every=max(1, settings.steps // 25),
        device=device or "auto",
    )
    trainer = Trainer(
        config,
        model,
        NCutsTrainingSet(train, grid, max_segments=settings.k_max),
        ncuts_training_loss,
        collate_fn=collate_ncuts,
    )
    summary = trainer.fit(resume=resume)
    model = model.cpu().eval()
    log(f"trained DeepNCuts for {summary['step']} steps (last loss {summary['last_loss']:.3f})")

    # ---------------------------------------------------------------- baselines
    tune_samples = [train[i] for i in range(settings.n_tune)]
    tune_index = [slic.node_index(s.image) for s in tune_samples]
    classic, tuning = tune_classic(
        [s.image for s in tune_samples],
        tune_index,
        [[s.labels] for s in tune_samples],
        settings.k_max,
    )
    log(
        f"classic NCuts tuned on {len(tune_samples)} training mosaics: "
        f"sigma_rgb={classic.sigma_rgb}, sigma_xy={classic.sigma_xy}"
    )

    # ---------------------------------------------------------------- evaluation
    grid_index = [grid.node_index(img) for img in test_images]
    slic_index = [slic.node_index(img) for img in test_images]
    segmenters = {
        "classic_ncuts": lambda image, index: classic.segment_hierarchy(
            image, index, settings.k_max
        ),
        "frozen_feature_ncuts": _frozen_feature_segmenter(settings.k_max, settings.size),
        "deep_ncuts": lambda image, index: model.segment_hierarchy(image, index, settings.k_max),
    }
    indices = {
        "classic_ncuts": slic_index,
        "frozen_feature_ncuts": grid_index,
        "deep_ncuts": grid_index,
    }
    metrics, hierarchies = evaluate_segmenters(
        segmenters, test_images, indices, test_gts, settings.k_max
    )
    log("evaluated all methods")

    # ---------------------------------------------------------------- outputs
    figure = save_segmentation_figure(
        out_dir / "segmentations.png",
        test_images[:4],
        [g[0] for g in test_gts[:4]],
        {
            name: [
                _level_for(h, gt) for h, gt in zip(hierarchies[name][:4], test_gts[:4], strict=True)
            ]
            for name in ("classic_ncuts", "deep_ncuts")
        },
    )
    result = {
        "task": "demo",
        "data": {
            "dataset": "TextureMosaics",
            "train": len(train),
            "test": len(test),
            "size": settings.size,
            "train_seed": 3 * seed,
            "test_seed": 3 * seed + 2,
        },
        "settings": asdict(settings),
        "methods": metrics,
        "classic_tuning": tuning,
        "classic_params": {"sigma_rgb": classic.sigma_rgb, "sigma_xy": classic.sigma_xy},
        "training": {k: summary[k] for k in ("step", "last_loss", "wall_time")},
        "figure": str(figure),
        "command": command_line(),
        "environment": environment(),
        "wall_time_seconds": time.perf_counter() - start,
    }
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    print(format_table(metrics))
    print(f"\nwrote {out_dir / 'metrics.json'} and {figure} ({result['wall_time_seconds']:.0f} s)")
    return result


def _level_for(levels, gts):
    """The hierarchy level whose number of segments matches the ground truth (for pictures)."""
    k = int(torch.unique(gts[0]).numel())
    return levels[min(max(k - 2, 0), len(levels) - 1)]
