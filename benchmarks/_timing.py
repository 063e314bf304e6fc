"""Shared timing helpers for the benchmark scripts (median of interleaved repeats)."""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

OUT_DIR = Path(__file__).resolve().parent / "out"


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1):
    """Run each function ``warmup`` times, then ``repeats`` rounds in which every function runs
    once (interleaved, so slow drifts of the machine hit all methods alike). Returns the median
    seconds per function."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def environment() -> dict:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "threads": torch.get_num_threads(),
    }


def write_json(name: str, payload: dict, out_dir: Path | None = None) -> Path:
    folder = OUT_DIR if out_dir is None else Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(payload, indent=2))
    return path


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def size_sweep_parser(doc: str, default_sizes: list[int]) -> argparse.ArgumentParser:
    """The options every size-sweep benchmark shares: ``--quick``, ``--repeats``, ``--sizes``
    (read with :func:`sizes_of`) and ``--out-dir``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=5)
    listed = ", ".join(str(n) for n in default_sizes)
    parser.add_argument("--sizes", default=None, help=f"comma-separated n (default {listed})")
    parser.add_argument("--out-dir", default=None, help="where to write the JSON")
    return parser


def sizes_of(args: argparse.Namespace, default_sizes: list[int]) -> list[int]:
    return [int(n) for n in args.sizes.split(",")] if args.sizes else list(default_sizes)
