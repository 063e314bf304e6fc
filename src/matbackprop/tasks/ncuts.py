"""``ncuts``: DeepNCuts on BSDS500 against three baselines, decoded into ultrametric contour maps.

Every method uses the same nodes (SLIC superpixels at full resolution), the same decoding
(:class:`~matbackprop.models.UCMDecoder`: top-k NCuts eigenvectors → row-normalized embedding →
greedy merging by mean boundary strength → ucm2 with 32 levels) and is scored with the official
benchmark protocol (99 thresholds on the ucm2):

- ``classic_ncuts``: Shi–Malik NCuts on mean Lab colour and centroid with a radius-limited
  Gaussian affinity (:class:`~matbackprop.models.ClassicLabNCuts`); ``σ_lab``, ``σ_xy``, the
  radius and ``k`` are grid-searched by covering ODS on ``tune_images`` training images;
- ``frozen_feature_ncuts``: NCuts on frozen ImageNet hypercolumns (EfficientNet-Lite0 taps,
  each rectified and L2-normalized, :class:`~matbackprop.models.FrozenTapFeatures`), no training;
- ``local_loss``: the same descriptors and head as DeepNCuts, trained with a *local* objective
  (class-balanced BCE of the cosine affinity of adjacent superpixels,
  :func:`~matbackprop.models.local_objective`): no eigendecomposition in training;
- ``deep_ncuts``: the head trained *through the NCuts layer* with the Bach–Jordan loss
  (:func:`~matbackprop.models.bach_jordan_objective`) plus ``edge_weight`` (default 10,
  chosen on val) times :func:`~matbackprop.models.spectral_edge_objective`, the same pairwise
  objective as ``local_loss`` but on the layer's row-normalized eigenvectors, which is what the
  decoder reads, so that both terms train through the eigendecomposition; and ``local_weight``
  times the ``local_loss`` objective, which makes DeepNCuts the local objective *plus* the
  global one).

At test time the three hypercolumn methods see each image twice, as it is and mirrored (the
training augmentation), and average the two affinities (``eval_views = 2``,
:meth:`~matbackprop.models.HypercolumnNCuts.features_of_views`: ``W = ½(F₁F₁ᵀ + F₂F₂ᵀ)``, still
low rank); ``classic_ncuts`` is left as it is.

The two trained methods share everything else: the frozen descriptors, the head
(:class:`~matbackprop.models.NodeHead`), the optimizer, schedule, steps and batch. Descriptors are
cached per image (``cache_dir``, :mod:`matbackprop.tasks._node_cache`), so training runs the
head only.

Run folder ``<train.out_dir>/<train.name>/``: ``run.json``, ``classic_ncuts.json`` (the tuned
baseline), and ``<method>/last.pt`` (trainer checkpoints of seed ``train.seed``;
``build_model(config, method)`` + :func:`~matbackprop.train.load_model_weights` rebuild a
trained model, whose ``segment_hierarchy(image)`` gives the ucm2 and levels of one image).
With several seeds (``train.seeds``, as in configs/ncuts_bsds.toml) the run folder holds one
such folder per seed, ``seed_<s>/``, and ``eval`` takes the run folder itself.

Work that does not depend on the seed is done once per ``cache_dir`` (default
``<train.out_dir>/cache_bsds``): node entries, the classic grid search, and the benchmark of
any ucm2 scored before (keyed by its values), so evaluating another seed re-scores only the
trained methods.

Evaluation writes ``metrics.json`` (each method's metrics; the seconds of each piece),
``segmentations_<split>.png`` and, with ``save_segmentations``, ``<dir>/<method>/<id>.mat`` in
the official BSDS format (``segs``: the levels coarse to fine as uint16, ``ucm2``).

:func:`segment` (``SEGMENT_METHOD = "deep_ncuts"``) is the same pipeline on one image of any
size for ``matbackprop segment`` and the shipped weights (``tasks/_pretrained.py``): nodes and
descriptors at the image's resolution (or shrunk to ``max_size``), ucm2 and levels at full size.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from tqdm import tqdm

from matbackprop.data import (
    BSDS500,
    NodeSpec,
    collate_list,
    default_bsds_root,
    keep_aspect_size,
    resize_image,
    resize_labels,
    save_bsds_result,
)
from matbackprop.errors import ConfigError
from matbackprop.models import (
    ClassicLabNCuts,
    FrozenTapFeatures,
    HypercolumnEncoder,
    HypercolumnNCuts,
    NodeHead,
    UCMDecoder,
    bach_jordan_objective,
    local_objective,
    spectral_edge_objective,
)
from matbackprop.train import (
    OptimConfig,
    Range,
    RunRecord,
    ScheduleConfig,
    TrainConfig,
    Trainer,
    load_model_weights,
    recording,
    resolve_device,
    seed_everything,
    validate_fields,
)

from ._classic_tuning import CLASSIC_FILE, read_classic, tune_classic
from ._figures import save_ucm_figure
from ._node_cache import CachedNodeItems, NodeCache, NodeEntry
from ._runs import (
    evaluate_over_seeds,
    save_evaluation_record,
    save_training_record,
    seed_folder,
    train_over_seeds,
)
from ._segmentation import Segmentation, benchmark_entry, ods_threshold, quiet_eigengaps
from ._ucm_benchmark import UCMBenchmark

DESCRIPTION = (
    "DeepNCuts on BSDS500 vs classic, frozen-feature and local-loss NCuts (ultrametric maps)"
)
METHODS = ("classic_ncuts", "frozen_feature_ncuts", "local_loss", "deep_ncuts")
TRAINED = ("local_loss", "deep_ncuts")
#: The method ``matbackprop segment`` and the shipped weights use (see :func:`segment`).
SEGMENT_METHOD = "deep_ncuts"
PRESETS: dict[str, tuple[str, ...]] = {
    "quick": (
        "train_images=8",
        "eval_limit=4",
        "tune_images=4",
        "train.steps=20",
        "classic_sigma_lab=[5.0]",
        "classic_sigma_xy=[0.05]",
        "classic_k=[16]",
    ),
}

_POSITIVE = Range(ge=1)


# --------------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------------


def _default_train() -> TrainConfig:
    return TrainConfig(
        name="ncuts_bsds",
        steps=1000,
        batch_size=8,  # chosen on val: configs/ncuts_bsds.toml
        optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4),
        schedule=ScheduleConfig(name="cosine", warmup_steps=50),
        grad_clip=5.0,
        checkpoint_every=500,
        log_every=50,
    )


@dataclass
class Config:
    """Settings of the BSDS500 experiment (TOML/YAML sections mirror the fields)."""

    train: TrainConfig = field(default_factory=_default_train)
    data_root: Path | None = None
    train_split: str = "train"
    eval_split: str = "val"
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    # nodes and descriptors (shared by every method)
    superpixels: Annotated[int, Range(ge=2)] = 600
    compactness: Annotated[float, Range(gt=0)] = 10.0
    views: Annotated[int, Range(ge=1, le=2)] = 2
    eval_views: Annotated[int, Range(ge=1, le=2)] = 2  # HypercolumnNCuts.views (flip at test)
    cache_dir: Path | None = None
    train_images: Annotated[int | None, _POSITIVE] = None
    # learned head (local_loss, deep_ncuts)
    feature_dim: Annotated[int, _POSITIVE] = 64
    hidden: Annotated[int, Range(ge=0)] = 256
    max_segments: Annotated[int, _POSITIVE] = 16
    edge_weight: Annotated[float, Range(ge=0)] = 10.0  # chosen on val: configs/ncuts_bsds.toml
    local_weight: Annotated[float, Range(ge=0)] = 0.0
    # decoding
    k: Annotated[int, _POSITIVE] = 8
    levels: Annotated[int, _POSITIVE] = 32
    merge_alpha: Annotated[float, Range(ge=0, le=1)] = 1.0  # UCMDecoder.alpha
    calibration: Literal["max", "exp"] = "max"  # UCMDecoder.calibration
    height_scale: Annotated[float, Range(gt=0)] = 1.0  # UCMDecoder.scale
    # classic baseline grid (covering ODS on tune_images training images)
    tune_images: Annotated[int, _POSITIVE] = 40
    classic_sigma_lab: list[Annotated[float, Range(gt=0)]] = field(
        default_factory=lambda: [5.0, 10.0]
    )
    classic_sigma_xy: list[Annotated[float, Range(gt=0)]] = field(
        default_factory=lambda: [0.05, 0.1]
    )
    classic_radius: list[Annotated[float, Range(gt=0)]] = field(default_factory=lambda: [0.1])
    classic_k: list[Annotated[int, Range(ge=2)]] = field(default_factory=lambda: [8, 16])
    # evaluation
    eval_limit: Annotated[int | None, _POSITIVE] = None
    boundaries: bool = True
    figure_images: Annotated[int, Range(ge=0)] = 4
    eval_workers: Annotated[int, _POSITIVE] = 2
    save_segmentations: Path | None = None

    def __post_init__(self) -> None:
        validate_fields(self)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods or len(set(self.methods)) != len(self.methods):
            raise ConfigError(
                f"`methods` must be distinct names among {list(METHODS)}, got {self.methods}"
            )
        if self.k > self.feature_dim:
            raise ConfigError(
                f"`k` ({self.k}) cannot exceed `feature_dim` ({self.feature_dim}): the affinity "
                "FFᵀ has rank <= d"
            )
        for name in ("classic_sigma_lab", "classic_sigma_xy", "classic_radius", "classic_k"):
            if not getattr(self, name):
                raise ConfigError(f"`{name}` must list at least one value")

    def for_seed(self, seed: int, *, first: bool) -> dict[str, Any]:
        """Field changes for one seed of several (:func:`~._runs.seed_configs`): the first
        seed writes its segmentations to ``save_segmentations``, seed ``s`` of the others to
        ``<save_segmentations>/seed_<s>``."""
        if self.save_segmentations is None or first:
            return {}
        return {"save_segmentations": Path(self.save_segmentations) / seed_folder(seed)}

    @property
    def nodes(self) -> NodeSpec:
        return NodeSpec("slic", n_segments=self.superpixels, compactness=self.compactness)

    @property
    def decoder(self) -> UCMDecoder:
        return self.decoder_for(self.k)

    def decoder_for(self, k: int) -> UCMDecoder:
        """The shared decoder (``levels``, ``merge_alpha``, ``calibration``, ``height_scale``)
        reading ``k`` eigenvectors."""
        return UCMDecoder(
            k=k,
            levels=self.levels,
            alpha=self.merge_alpha,
            calibration=self.calibration,
            scale=self.height_scale,
        )

    def root(self) -> Path:
        root = self.data_root if self.data_root is not None else default_bsds_root()
        if root is None:
            raise ValueError(
                "no BSDS500 root: pass --data-root or set MATBACKPROP_BSDS_ROOT "
                "(the folder holding data/images and data/groundTruth)"
            )
        return Path(root)

    def cache_root(self) -> Path:
        """Where node entries are cached (shared by runs with the same ``out_dir``)."""
        return (
            Path(self.cache_dir)
            if self.cache_dir is not None
            else (self.train.out_dir / "cache_bsds")
        )


# --------------------------------------------------------------------------------------------
# models and data
# --------------------------------------------------------------------------------------------


def build_encoder(config: Config, *, pretrained: bool = True) -> HypercolumnEncoder:
    """The frozen descriptor network every learned method uses (Lite0 taps + Lab + centroid)."""
    return HypercolumnEncoder(pretrained=pretrained, trainable=False).eval()


def build_model(config: Config, method: str, *, pretrained: bool = True) -> Any:
    """The (untrained) model of ``method``.

    ``classic_ncuts``: :class:`~matbackprop.models.ClassicLabNCuts` with the first grid values
    (``train`` tunes them); ``frozen_feature_ncuts``: :class:`HypercolumnNCuts` with
    :class:`FrozenTapFeatures`; ``local_loss`` / ``deep_ncuts``: :class:`HypercolumnNCuts` with
    a :class:`NodeHead` (``pretrained=False``: random backbone, to load a checkpoint into).
    """
    if method == "classic_ncuts":
        return ClassicLabNCuts(
            config.classic_sigma_lab[0],
            config.classic_sigma_xy[0],
            config.classic_radius[0],
            decoder=config.decoder_for(config.classic_k[0]),
            superpixels=config.nodes,
        )
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}, got {method!r}")
    encoder = build_encoder(config, pretrained=pretrained)
    if method == "frozen_feature_ncuts":
        head: torch.nn.Module = FrozenTapFeatures(encoder.tap_channels)
    else:
        head = NodeHead(encoder.out_dim, config.feature_dim, config.hidden)
    return HypercolumnNCuts(
        encoder, head, decoder=config.decoder, superpixels=config.nodes, views=config.eval_views
    )


@dataclass
class Images:
    """A split's samples (full resolution) with their cached node entries."""

    split: str
    samples: list[Any]
    entries: list[NodeEntry]


def _images(config: Config, split: str, limit: int | None, views: int, cache: NodeCache) -> Images:
    data = BSDS500(config.root(), split)
    count = len(data) if limit is None else min(limit, len(data))
    samples, entries = [], []
    for i in tqdm(range(count), desc=f"nodes {split}", disable=None, leave=False, file=sys.stderr):
        sample = data[i]
        samples.append(sample)
        entries.append(cache.get(split, sample, views))
    return Images(split, samples, entries)


def _cache(config: Config) -> NodeCache:
    return NodeCache(config.cache_root(), config.nodes, build_encoder(config))


def train_data(config: Config, cache: NodeCache | None = None) -> CachedNodeItems:
    """Training items of the cached train split (descriptors of a random view, one
    annotator's node labels, adjacent pairs)."""
    images = _images(
        config, config.train_split, config.train_images, config.views, cache or _cache(config)
    )
    return CachedNodeItems(images.entries, config.max_segments)


def eval_data(config: Config, split: str | None = None, cache: NodeCache | None = None) -> Images:
    """The first ``eval_limit`` images of ``split`` (default ``eval_split``) with their nodes
    (``eval_views`` descriptor views)."""
    return _images(
        config,
        split or config.eval_split,
        config.eval_limit,
        config.eval_views,
        cache or _cache(config),
    )


# --------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------


def objective(config: Config, method: str):
    """``loss_fn(model, batch)`` of a trained method for :class:`~matbackprop.train.Trainer`:
    the mean over the batch's images of the method's loss (see the module docstring)."""

    def loss_fn(model: torch.nn.Module, batch: list) -> tuple[torch.Tensor, dict[str, float]]:
        losses, parts = [], {"bach_jordan": 0.0, "edge": 0.0, "local": 0.0}
        for descriptors, labels, pairs in batch:
            features = model(descriptors)
            if method == "local_loss":
                losses.append(local_objective(features, pairs, labels))
                continue
            loss = bach_jordan_objective(features, labels)
            parts["bach_jordan"] += float(loss.detach()) / len(batch)
            if config.edge_weight > 0:
                edge = spectral_edge_objective(features, pairs, labels, config.k)
                parts["edge"] += float(edge.detach()) / len(batch)
                loss = loss + config.edge_weight * edge
            if config.local_weight > 0:
                local = local_objective(features, pairs, labels)
                parts["local"] += float(local.detach()) / len(batch)
                loss = loss + config.local_weight * local
            losses.append(loss)
        metrics = {} if method == "local_loss" else parts
        return torch.stack(losses).mean(), metrics

    return loss_fn


def _method_train_config(config: Config, method: str) -> TrainConfig:
    """The trainer settings of a method: ``train``, with the run folder ``<run_dir>/<method>``."""
    return dataclasses.replace(config.train, out_dir=config.train.run_dir, name=method)


@train_over_seeds
def train(config: Config, *, resume: bool = False) -> RunRecord:
    """Tune the classic baseline, then train the local-loss head and DeepNCuts (seed
    ``train.seed``) on cached descriptors of the train split."""
    run_dir = config.train.run_dir
    with recording("train", resume=resume) as command, quiet_eigengaps():
        start = time.perf_counter()
        run_dir.mkdir(parents=True, exist_ok=True)
        cache = _cache(config)
        items = train_data(config, cache)
        timings: dict[str, Any] = {"nodes": time.perf_counter() - start, **cache.timings}
        classic = {}
        if "classic_ncuts" in config.methods:
            classic = tune_classic(
                config,
                run_dir,
                lambda: _images(config, config.train_split, config.tune_images, 1, cache),
                cache.settings(1),
            )
            timings["classic_tuning"] = classic.get("seconds", 0.0)
        descriptors = torch.cat([e.descriptors[0].float() for e in items.entries])
        summaries = {}
        for method in (m for m in TRAINED if m in config.methods):
            seed_everything(config.train.seed)
            model = build_model(config, method)
            model.head.fit_normalization(descriptors)
            trainer = Trainer(
                _method_train_config(config, method),
                model,
                items,
                objective(config, method),
                collate_fn=collate_list,
                run_config=config,
            )
            summaries[method] = trainer.fit(resume=resume)
            timings[f"train_{method}"] = summaries[method].get("wall_time_seconds")
        return save_training_record(
            "ncuts",
            config,
            command,
            summaries,
            resume=resume,
            details={"classic_params": classic, "seconds": timings, "train_images": len(items)},
        )


# --------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------


def _run_dir_of(checkpoint: str | Path | None, config: Config) -> Path:
    """The run folder: ``checkpoint`` itself if a folder, else the folder of the run that holds
    the file (``run.json``, or a method's ``<method>/seed_<s>/last.pt``)."""
    path = Path(checkpoint) if checkpoint is not None else config.train.run_dir
    if path.is_dir():
        return path
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    for parent in path.parents:
        if (parent / "run.json").is_file():
            return parent
    raise FileNotFoundError(f"no run.json above {path}: pass the run folder of `train ncuts`")


def _segment(config: Config, method: str, model: Any, images: Images, device: Any):
    """Each image's ucm2 for ``method``, with the seconds of its spectra and its merging."""
    spectra_s = merge_s = 0.0
    ucms = []
    for sample, entry in zip(images.samples, images.entries, strict=True):
        start = time.perf_counter()
        if method == "classic_ncuts":
            Z = model.spectral_embedding(sample.image, entry.node_index, model.decoder.k).Z[0]
        else:
            with torch.no_grad():
                views = [x.float().to(device) for x in entry.descriptors[: model.views]]
                Z = model.embed(model.features_of_views(views)).Z[0].cpu()
        middle = time.perf_counter()
        ucms.append(model.decoder.ucm2(Z, entry.node_index))
        spectra_s += middle - start
        merge_s += time.perf_counter() - middle
    return ucms, {"spectra": spectra_s, "merging": merge_s}


def _trained_model(config: Config, method: str, run_dir: Path, device: Any):
    path = run_dir / method / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `matbackprop train ncuts` first")
    model = build_model(config, method, pretrained=False)
    load_model_weights(model, path)
    return model.to(device).eval(), path


@evaluate_over_seeds
def evaluate(
    config: Config,
    *,
    checkpoint: str | Path | None = None,
    split: str | None = None,
    out_dir: str | Path | None = None,
) -> RunRecord:
    """Score every method of ``config.methods`` on ``split``; the classic parameters and the
    trained heads come from the run folder ``checkpoint`` (default ``train.run_dir``)."""
    run_dir = _run_dir_of(checkpoint, config)
    split = split or config.eval_split
    out_dir = Path(out_dir or config.train.run_dir)
    with recording("eval", split=split) as command, quiet_eigengaps():
        device = resolve_device(config.train.device)
        start = time.perf_counter()
        cache = _cache(config)
        images = eval_data(config, split, cache)
        seconds: dict[str, Any] = {"nodes": time.perf_counter() - start, **cache.timings}
        gts = [s.segmentations for s in images.samples]
        names = [s.image_id for s in images.samples]
        metrics, shown, sources = {}, {}, {}
        bench_cache = config.cache_root() / "benchmark"
        with UCMBenchmark(
            config.eval_workers, boundaries=config.boundaries, cache=bench_cache
        ) as bench:
            for method in config.methods:
                if method == "classic_ncuts":
                    model, sources[method] = (
                        read_classic(config, run_dir),
                        str(run_dir / CLASSIC_FILE),
                    )
                elif method == "frozen_feature_ncuts":
                    model = build_model(config, method).to(device).eval()
                else:
                    model, path = _trained_model(config, method, run_dir, device)
                    sources[method] = str(path)
                ucms, pieces = _segment(config, method, model, images, device)
                before = bench.seconds
                entry = benchmark_entry(bench.score(ucms, gts, names), config.boundaries)
                pieces["benchmark"] = bench.seconds - before
                entry["seconds"] = pieces
                metrics[method] = entry
                seconds[method] = pieces
                print(
                    f"{method}: covering ODS {entry['covering_ods']:.3f} "
                    f"({sum(pieces.values()):.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
                shown[method] = ucms[: config.figure_images]
                if config.save_segmentations is not None:
                    _save_results(Path(config.save_segmentations) / method, names, ucms)
        figure = save_ucm_figure(
            out_dir / f"segmentations_{split}.png",
            [s.image for s in images.samples[: config.figure_images]],
            [s.segmentations[0] for s in images.samples[: config.figure_images]],
            shown,
            {m: ods_threshold(metrics[m]) for m in shown},
        )
        return save_evaluation_record(
            "ncuts",
            config,
            command,
            run_dir=run_dir,
            out_dir=out_dir,
            split=split,
            methods=metrics,
            figures=[figure],
            details={
                "images": len(images.samples),
                "seed": config.train.seed,
                "sources": sources,
                "seconds": seconds,
                "benchmark_reused": bench.reused,
            },
            device=device,
        )


def _save_results(folder: Path, names: list[str], ucms: list[torch.Tensor]) -> None:
    """``<folder>/<id>.mat``: ``segs`` (the levels, coarse to fine) and ``ucm2`` (official)."""
    from matbackprop.nn.functional import ucm2_levels

    for name, u in zip(names, ucms, strict=True):
        _, levels = ucm2_levels(u)
        save_bsds_result(folder / f"{name}.mat", segs=levels, ucm2=u)


# --------------------------------------------------------------------------------------------
# segment (``matbackprop segment``, shipped weights)
# --------------------------------------------------------------------------------------------


def segment(
    config: Config, model: HypercolumnNCuts, image: torch.Tensor, *, max_size: int | None = None
) -> Segmentation:
    """The hierarchy of one RGB image ``(3, H, W)`` in ``[0, 1]`` at its full resolution.

    As the evaluation computes it: SLIC nodes (``config.nodes``) and their descriptors at the
    image's resolution, the NCuts embedding and :class:`~matbackprop.models.UCMDecoder`. With
    ``max_size``, an image whose long side is larger is shrunk to it for the nodes and the
    network, and the node map is enlarged back (nearest) before decoding, so the ucm2 and the
    levels are still at ``(H, W)``.
    """
    height, width = int(image.shape[-2]), int(image.shape[-1])
    small = image
    if max_size is not None and max(height, width) > max_size:
        small = resize_image(image, keep_aspect_size(height, width, max_side=max_size))
        small = small.clamp_(0.0, 1.0)
    index = config.nodes.node_index(small.cpu())
    device = next(model.parameters()).device
    with torch.no_grad(), quiet_eigengaps():
        features = model.node_features(small.to(device), index.to(device))
        if small is not image:
            index = resize_labels(index, (height, width))
        hierarchy = model.hierarchy_from_features(features, index)
    return Segmentation(hierarchy.levels, hierarchy.thresholds, hierarchy.ucm2)
