"""The classic baseline of the ``ncuts`` task: its grid search, and its tuned parameters.

``tune_classic`` grid-searches :class:`~matbackprop.models.ClassicLabNCuts` (``σ_lab``,
``σ_xy``, radius, ``k``) by covering ODS on training images and writes the winner to
``<run_dir>/classic_ncuts.json`` (and to a copy in the cache, keyed by the grid, the nodes and
the decoder settings, that any run with the same ones reuses); ``read_classic`` rebuilds the
tuned model.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from matbackprop.models import ClassicLabNCuts

from ._segmentation import benchmark_entry
from ._ucm_benchmark import UCMBenchmark

CLASSIC_FILE = "classic_ncuts.json"


def tune_classic(config: Any, run_dir: Path, load_images: Callable[[], Any], nodes: Any) -> dict:
    """Grid-search the classic baseline by covering ODS (region benchmark) on the first
    ``tune_images`` training images; written to ``<run_dir>/classic_ncuts.json`` (reused on
    resume, and by any run with the same grid, nodes and decoder settings)."""
    path = run_dir / CLASSIC_FILE
    grid: dict[str, Any] = {
        "sigma_lab": config.classic_sigma_lab,
        "sigma_xy": config.classic_sigma_xy,
        "radius": config.classic_radius,
        "k": config.classic_k,
        "tune_images": config.tune_images,
        "nodes": nodes,
        # every decoder setting but k (which the grid searches): levels, merge criterion, ...
        "decoder": {f: v for f, v in asdict(config.decoder_for(1)).items() if f != "k"},
    }
    shared = config.cache_root() / "classic" / f"{_fingerprint(grid)}.json"
    for known_path in (path, shared):
        if known_path.is_file():
            known = json.loads(known_path.read_text())
            if known.get("grid") == grid:
                path.write_text(json.dumps(known, indent=2))
                return known
    start = time.perf_counter()
    images = load_images()
    gts = [s.segmentations for s in images.samples]
    scores = []
    bench_cache = config.cache_root() / "benchmark"
    with UCMBenchmark(config.eval_workers, boundaries=False, cache=bench_cache) as bench:
        for s_lab in config.classic_sigma_lab:
            for s_xy in config.classic_sigma_xy:
                for radius in config.classic_radius:
                    base = ClassicLabNCuts(s_lab, s_xy, radius)
                    spectra = [
                        base.spectral_embedding(s.image, e.node_index, max(config.classic_k)).Z[0]
                        for s, e in zip(images.samples, images.entries, strict=True)
                    ]
                    for k in config.classic_k:
                        decoder = config.decoder_for(k)
                        ucms = [
                            decoder.ucm2(Z, e.node_index)
                            for Z, e in zip(spectra, images.entries, strict=True)
                        ]
                        score = benchmark_entry(bench.score(ucms, gts), False)["covering_ods"]
                        scores.append(
                            {"sigma_lab": s_lab, "sigma_xy": s_xy, "radius": radius, "k": k,
                             "covering_ods": score}
                        )  # fmt: skip
                        print(f"classic NCuts {scores[-1]}", file=sys.stderr, flush=True)
    best = max(scores, key=lambda s: s["covering_ods"])
    params = {
        **{key: best[key] for key in ("sigma_lab", "sigma_xy", "radius", "k")},
        "tuning": scores,
        "grid": grid,
        "seconds": time.perf_counter() - start,
    }
    for target in (shared, path):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(params, indent=2))
    return params


def _fingerprint(data: Any) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_classic(config: Any, run_dir: Path) -> ClassicLabNCuts:
    """The classic baseline tuned by ``matbackprop train ncuts`` in ``run_dir``."""
    path = run_dir / CLASSIC_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `matbackprop train ncuts` first (it tunes the classic "
            "baseline on training images)"
        )
    p = json.loads(path.read_text())
    return ClassicLabNCuts(
        p["sigma_lab"],
        p["sigma_xy"],
        p["radius"],
        decoder=config.decoder_for(int(p["k"])),
        superpixels=config.nodes,
    )
