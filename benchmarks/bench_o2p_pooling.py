"""Benchmark: DeepO2P second-order pooling (log) vs first-order average pooling, fwd + bwd.

Both heads feed the same kind of linear classifier over region descriptors; regions are
realistic masks on a 28 × 28 stride-8 map with C = 256 channels, float32, CPU:

- ``superpixels``: 32 cells of a seeded Voronoi partition (≈ 25 pixels each, p < C);
- ``candidates``: 32 overlapping candidate regions, unions of Voronoi cells covering 5–40 %
  of the map (39–314 pixels; some have p > C).

Heads (pooling + classifier, forward + backward into the features and the classifier):

- ``first_order``: region average ``Σ w f / Σ w`` → Linear(C, K);
- ``o2p_covariance``: ``SecondOrderPooling("log", route="covariance")`` → Linear(C(C+1)/2, K);
- ``o2p_gram``: ``route="gram"``, the exact low-rank route (one p × p eigendecomposition) for
  every region with p < C; regions with p >= C take the covariance route (their Gram matrix
  would be the singular one);
- ``o2p_auto``: the default; per region, Gram when p < ``gram_ratio`` · C (default 1, i.e. every
  rank-deficient region, for accuracy), else covariance.

(a) head-only times on a fixed feature map; (b) end-to-end training steps (forward, backward,
SGD update) of a self-contained stride-8 conv trunk (224 × 224 image → 28 × 28 × 256: a small
5-layer stack, or ``--trunk vgg16``, VGG16 up to conv4_3, plus a 1×1 conv) with each head.
(c) pooling fwd + bwd of each route for regions of a fixed support size ``p`` from ``C/8`` to
``C − 1`` (where the Gram route stops paying). Median (and min) of interleaved repeats after
warm-up, ``torch.manual_seed``. Prints a Markdown table and writes
``benchmarks/out/o2p_pooling.json``.

Usage::

    python benchmarks/bench_o2p_pooling.py                  # full run, small trunk
    python benchmarks/bench_o2p_pooling.py --trunk vgg16    # full run, VGG16-conv4_3 trunk
    python benchmarks/bench_o2p_pooling.py --quick          # tiny smoke configuration
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from matbackprop.nn import SecondOrderPooling
from matbackprop.nn.functional import second_order_pooling

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "o2p_pooling.json"
EIGH_THREADS_ENV = "MATBACKPROP_EIGH_THREADS"
METHODS = ("first_order", "o2p_covariance", "o2p_gram", "o2p_auto")
SETTINGS = ("superpixels", "candidates")


@dataclass(frozen=True)
class Config:
    image_size: int = 224
    map_size: int = 28
    channels: int = 256
    regions: int = 32
    classes: int = 21
    batch: int = 1
    repeats: int = 9
    warmup: int = 3
    seed: int = 0
    trunk: str = "small"
    eigh_threads: int = 1
    candidate_cells: int = 96
    candidate_min_fraction: float = 0.05
    candidate_max_fraction: float = 0.40


QUICK = Config(
    image_size=64, map_size=8, channels=16, regions=4, classes=5, repeats=1, warmup=1,
    candidate_cells=12,
)  # fmt: skip


# ----------------------------------------------------------------------------- regions


def voronoi_labels(size: int, cells: int, generator: torch.Generator) -> Tensor:
    """``(size, size)`` labels of a Voronoi partition with ``cells`` distinct random seeds."""
    seeds = torch.randperm(size * size, generator=generator)[:cells]
    sy, sx = seeds // size, seeds % size
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    d2 = (yy[..., None] - sy) ** 2 + (xx[..., None] - sx) ** 2  # (size, size, cells)
    return d2.argmin(-1)


def superpixel_masks(config: Config, generator: torch.Generator) -> Tensor:
    """``(B, R, H, W)`` bool: each image partitioned into ``R`` Voronoi cells."""
    masks = []
    for _ in range(config.batch):
        labels = voronoi_labels(config.map_size, config.regions, generator)
        masks.append(labels.unsqueeze(0) == torch.arange(config.regions)[:, None, None])
    return torch.stack(masks)


def candidate_masks(config: Config, generator: torch.Generator) -> Tensor:
    """``(B, R, H, W)`` bool: overlapping unions of Voronoi cells, 5–40 % of the map each.

    A candidate grows from a random cell by adding the cells nearest to it (by centroid)
    until it reaches a target area drawn uniformly in the configured range.
    """
    size, total = config.map_size, config.map_size**2
    masks = []
    for _ in range(config.batch):
        labels = voronoi_labels(size, config.candidate_cells, generator)
        cells = labels.unsqueeze(0) == torch.arange(config.candidate_cells)[:, None, None]
        yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        area = cells.sum((1, 2)).double()
        centroid = torch.stack(
            [(cells * yy).sum((1, 2)) / area, (cells * xx).sum((1, 2)) / area], -1
        )
        regions = []
        for _ in range(config.regions):
            lo, hi = config.candidate_min_fraction, config.candidate_max_fraction
            target = (lo + (hi - lo) * float(torch.rand((), generator=generator))) * total
            start = int(torch.randint(config.candidate_cells, (), generator=generator))
            order = ((centroid - centroid[start]) ** 2).sum(-1).argsort()
            region = torch.zeros(size, size, dtype=torch.bool)
            for cell in order.tolist():
                region |= cells[cell]
                if region.sum() >= target:
                    break
            regions.append(region)
        masks.append(torch.stack(regions))
    return torch.stack(masks)


# ----------------------------------------------------------------------------- networks


def _conv_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True)]


class StrideEightTrunk(nn.Module):
    """Self-contained conv trunk: ``(B, 3, S, S)`` image → ``(B, C, S/8, S/8)`` ReLU features.

    ``"small"``: three stride-2 3×3 convolutions (32, 64, 128 channels) with an extra 3×3 layer
    at strides 4 and 8 (≈ 0.36 GMAC at 224²). ``"vgg16"``: the VGG16 layout up to conv4_3
    (stride 8, 512 channels, ≈ 12 GMAC at 224²), as in the stride-8 trunks DeepO2P builds on.
    Both end with the DeepO2P-style 1×1 convolution to ``channels`` and a ReLU. Random weights
    (only the shapes matter for timing).
    """

    def __init__(self, channels: int, kind: str = "small") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if kind == "small":
            layers += _conv_relu(3, 32, 2) + _conv_relu(32, 64, 2) + _conv_relu(64, 64)
            layers += _conv_relu(64, 128, 2) + _conv_relu(128, 128)
            width = 128
        elif kind == "vgg16":
            width = 3
            for stage, (out, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3)]):
                if stage:
                    layers.append(nn.MaxPool2d(2))
                for _ in range(convs):
                    layers += _conv_relu(width, out)
                    width = out
        else:
            raise ValueError(f"`kind` must be 'small' or 'vgg16', got {kind!r}")
        layers += [nn.Conv2d(width, channels, 1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)

    def forward(self, image: Tensor) -> Tensor:
        return self.body(image)


class FirstOrderHead(nn.Module):
    """Region average ``Σ_p w_p f_p / Σ_p w_p`` followed by a linear classifier."""

    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(channels, classes)

    def forward(self, features: Tensor, masks: Tensor) -> Tensor:
        w = masks.to(features.dtype).flatten(2)  # (B, R, N)
        w = w / w.sum(-1, keepdim=True)
        pooled = w @ features.flatten(2).mT  # (B, R, C)
        return self.classifier(pooled)


class SecondOrderHead(nn.Module):
    """``SecondOrderPooling("log")`` followed by a linear classifier on ``C(C+1)/2`` entries."""

    def __init__(self, channels: int, classes: int, route: str) -> None:
        super().__init__()
        self.pool = SecondOrderPooling("log", route=route, in_channels=channels)
        self.classifier = nn.Linear(self.pool.descriptor_size(), classes)

    def forward(self, features: Tensor, masks: Tensor) -> Tensor:
        return self.classifier(self.pool(features, masks))


def make_head(method: str, config: Config) -> nn.Module:
    if method == "first_order":
        return FirstOrderHead(config.channels, config.classes)
    route = method.removeprefix("o2p_")
    return SecondOrderHead(config.channels, config.classes, route)


# ----------------------------------------------------------------------------- timing


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict:
    """Seconds per call of each function: ``{"median": …, "min": …}``.

    Each function runs ``warmup`` times, then ``repeats`` rounds call every function once
    (interleaved, so slow drifts of a shared machine hit all methods alike).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {
        name: {"median": statistics.median(values), "min": min(values)}
        for name, values in samples.items()
    }


def head_step(head: nn.Module, features: Tensor, masks: Tensor, labels: Tensor) -> Callable:
    def step() -> None:
        head.zero_grad(set_to_none=True)
        features.grad = None
        logits = head(features, masks)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels)
        loss.backward()

    return step


def network_step(
    trunk: nn.Module, head: nn.Module, image: Tensor, masks: Tensor, labels: Tensor
) -> Callable:
    params = list(trunk.parameters()) + list(head.parameters())

    def step() -> None:
        for p in params:
            p.grad = None
        logits = head(trunk(image), masks)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels)
        loss.backward()
        # Plain SGD update (torch.optim would import torch._dynamo); lr = 0 keeps the network
        # fixed across repeats and methods (random labels would otherwise drift it).
        with torch.no_grad():
            torch._foreach_add_(params, [p.grad for p in params], alpha=-0.0)

    return step


def support_stats(masks: Tensor, channels: int) -> dict:
    counts = masks.flatten(2).sum(-1).flatten().double()
    return {
        "min_pixels": int(counts.min()),
        "median_pixels": float(counts.median()),
        "max_pixels": int(counts.max()),
        "regions_below_channels": int((counts < channels).sum()),
        "regions": int(counts.numel()),
    }


def accuracy(features: Tensor, masks: Tensor) -> dict:
    """Max abs deviation of the float32 routes from a float64 reference (one forward each)."""
    with torch.no_grad():
        reference = SecondOrderPooling("log", route="covariance")(features.double(), masks)
        out = {}
        for route in ("covariance", "gram"):
            got = SecondOrderPooling("log", route=route)(features, masks).double()
            out[f"max_abs_error_{route}_float32"] = float((got - reference).abs().max())
        out["max_abs_reference"] = float(reference.abs().max())
    return out


# ----------------------------------------------------------------------------- driver


def run(config: Config) -> dict:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    trunk = StrideEightTrunk(config.channels, config.trunk)
    image = torch.randn(config.batch, 3, config.image_size, config.image_size)
    with torch.no_grad():
        base_features = trunk(image)
    if base_features.shape[-1] != config.map_size:
        raise ValueError(
            f"`image_size` {config.image_size} gives a {base_features.shape[-1]}-pixel map, "
            f"expected map_size {config.map_size} (stride 8)"
        )
    labels = torch.randint(config.classes, (config.batch * config.regions,), generator=generator)
    results: dict = {}
    for setting in SETTINGS:
        builder = superpixel_masks if setting == "superpixels" else candidate_masks
        masks = builder(config, generator)
        features = base_features.clone().requires_grad_()
        heads = {m: make_head(m, config) for m in METHODS}
        head = time_interleaved(
            {m: head_step(h, features, masks, labels) for m, h in heads.items()},
            config.repeats,
            config.warmup,
        )
        net = time_interleaved(
            {m: network_step(trunk, h, image, masks, labels) for m, h in heads.items()},
            config.repeats,
            config.warmup,
        )
        results[setting] = {
            "support": support_stats(masks, config.channels),
            "head_seconds": {m: head[m]["median"] for m in METHODS},
            "head_seconds_min": {m: head[m]["min"] for m in METHODS},
            "head_ratio": {m: head[m]["median"] / head["first_order"]["median"] for m in METHODS},
            "end_to_end_seconds": {m: net[m]["median"] for m in METHODS},
            "end_to_end_seconds_min": {m: net[m]["min"] for m in METHODS},
            "end_to_end_ratio": {
                m: net[m]["median"] / net["first_order"]["median"] for m in METHODS
            },
            "accuracy": accuracy(base_features, masks),
        }
    crossover = route_crossover(config, base_features, generator)
    return results, crossover


def route_crossover(config: Config, features: Tensor, generator: torch.Generator) -> dict:
    """Pooling fwd + bwd (``"log"``) per route for regions of one fixed support size ``p``.

    ``config.regions`` regions of ``p`` random pixels each, ``p`` from ``C/8`` to ``C − 1``:
    where the Gram route stops paying for speed (a ``gram_ratio`` below the default 1 trades the
    covariance route's float32 inaccuracy on such rank-deficient regions for that speed).
    """
    C, N = config.channels, config.map_size**2
    sizes = sorted({max(2, C // 8), C // 4, C // 2, (3 * C) // 4, min(C - 1, N)})
    out: dict = {}
    for p in sizes:
        masks = torch.zeros(config.batch, config.regions, N, dtype=torch.bool)
        for b in range(config.batch):
            for r in range(config.regions):
                masks[b, r, torch.randperm(N, generator=generator)[:p]] = True
        masks = masks.reshape(config.batch, config.regions, config.map_size, config.map_size)
        x = features.detach().clone().requires_grad_()

        def step(route: str, masks: Tensor = masks, x: Tensor = x) -> Callable:
            def run_once() -> None:
                x.grad = None
                second_order_pooling(x, masks, route=route).sum().backward()

            return run_once

        times = time_interleaved(
            {r: step(r) for r in ("gram", "covariance")}, config.repeats, config.warmup
        )
        out[str(p)] = {r: t["median"] for r, t in times.items()}
    return out


def environment() -> dict:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
    }


def markdown(results: dict) -> str:
    lines = [
        "| setting | method | head fwd+bwd ms (min) | head ratio | network step ms (min) "
        "| step ratio |",
        "|---|---|---|---|---|---|",
    ]
    for setting, res in results.items():
        for m in METHODS:
            lines.append(
                f"| {setting} | {m} | {1e3 * res['head_seconds'][m]:.2f} "
                f"({1e3 * res['head_seconds_min'][m]:.2f}) | {res['head_ratio'][m]:.2f} | "
                f"{1e3 * res['end_to_end_seconds'][m]:.1f} "
                f"({1e3 * res['end_to_end_seconds_min'][m]:.1f}) | "
                f"{res['end_to_end_ratio'][m]:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke configuration")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (median)")
    parser.add_argument("--trunk", choices=("small", "vgg16"), default="small")
    parser.add_argument(
        "--eigh-threads",
        type=int,
        default=1,
        help="MATBACKPROP_EIGH_THREADS for linalg's batched eigh (0: linalg's default pool). "
        "Default 1: on a shared 2-core machine the eigh thread pool made timings erratic.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else Config()
    overrides: dict = {"trunk": args.trunk, "eigh_threads": args.eigh_threads}
    if args.repeats is not None:
        if args.repeats < 1:
            raise ValueError(f"`--repeats` must be >= 1, got {args.repeats}")
        overrides["repeats"] = args.repeats
    config = Config(**{**asdict(config), **overrides})
    previous = os.environ.get(EIGH_THREADS_ENV)
    if config.eigh_threads > 0:
        os.environ[EIGH_THREADS_ENV] = str(config.eigh_threads)
    else:
        os.environ.pop(EIGH_THREADS_ENV, None)
    try:
        results, crossover = run(config)
    finally:
        if previous is None:
            os.environ.pop(EIGH_THREADS_ENV, None)
        else:
            os.environ[EIGH_THREADS_ENV] = previous
    payload = {
        "benchmark": "o2p_pooling",
        "command": " ".join(["python", "benchmarks/bench_o2p_pooling.py", *(argv or sys.argv[1:])]),
        "config": asdict(config),
        "environment": environment(),
        "settings": results,
        "route_crossover_seconds": crossover,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(markdown(results))
    for setting, res in results.items():
        print(f"{setting}: support {res['support']}; accuracy {res['accuracy']}")
    print("pooling fwd+bwd by support size p (ms): " + "; ".join(
        f"p={p}: gram {1e3 * t['gram']:.1f}, covariance {1e3 * t['covariance']:.1f}"
        for p, t in crossover.items()
    ))  # fmt: skip
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
