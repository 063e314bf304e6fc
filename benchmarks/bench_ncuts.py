"""Benchmark: normalized-cuts layer + loss, forward and backward, low-rank vs dense route.

Each configuration (m, route) runs in a fresh subprocess: ``NormalizedCuts`` on random
non-negative features ``F (1, m, d)`` followed by :func:`ncuts_loss` against a random
``k``-way partition and ``backward()``. Reported per configuration:

* time: median over ``--repeats`` timed runs of forward + backward, after one warm-up run;
* peak memory: ``ru_maxrss`` of the worker (``resource.getrusage(RUSAGE_SELF)``) minus the
  ``ru_maxrss`` of an idle worker that imported torch and matbackprop and built nothing (so
  the figure is what the configuration itself added on top of the interpreter and libraries).

Routes: ``lowrank`` (thin SVD of ``D^-½F``, the default), ``lowrank-gram`` (eigh of the
``d × d`` Gram matrix) and ``dense`` (forms ``W = FFᵀ`` and runs the full ``m × m`` eigh). The
dense route is timed over at most ``--dense-repeats`` (3) runs, and skipped where its estimated
memory (``12 m²`` floats, ``--dense-mem-limit-gib`` 6) or total time (cubic extrapolation from the
largest dense size measured, else a nominal 5 GFLOP/s for ``30 m³`` flops;
``--dense-time-limit-s`` 600) exceeds the limits.

Threads: ``--threads 1`` by default. On a small shared machine (2 cores used by other jobs too)
multi-threaded MKL/OpenMP kernels suffer a large, erratic oversubscription penalty (we saw the
low-rank route at m = 1024 go from 4 ms to 0.7 s and the dense route at m = 4096 from 14 s to
36 s with 2 threads), so single-threaded figures are the reproducible ones; ``--threads 0``
keeps torch's default.

Usage::

    python benchmarks/bench_ncuts.py              # full: m in {1024, 4096, 16384, 65536}
    python benchmarks/bench_ncuts.py --quick      # tiny sizes (used by the test suite)

Writes a Markdown table to stdout and JSON to ``benchmarks/out/ncuts.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "out" / "ncuts.json"
ROUTES = ("lowrank", "lowrank-gram", "dense")
FULL_SIZES = (1024, 4096, 16384, 65536)
QUICK_SIZES = (128,)
DENSE_BUFFERS = 12  # m × m buffers at the peak of the dense backward (measured ~11 at m = 4096)
NOMINAL_FLOPS = 5e9  # used only when no dense size was measured yet
DENSE_FLOPS_PER_M3 = 30.0


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _worker(args: argparse.Namespace) -> dict:
    """Run inside a fresh process; print one JSON line."""
    import warnings

    import torch

    from matbackprop.nn import EigengapWarning, NormalizedCuts
    from matbackprop.nn.functional import ncuts_loss

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.route == "baseline":
        return {
            "maxrss_mib": _maxrss_mib(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    F0 = torch.rand(1, args.m, args.d, generator=gen, dtype=dtype)
    labels = torch.randint(0, args.k, (1, args.m), generator=gen)
    route, solver = ("lowrank", "gram") if args.route == "lowrank-gram" else (args.route, "svd")
    layer = NormalizedCuts(args.k, route=route, solver=solver)

    def step() -> float:
        F = F0.clone().requires_grad_(True)
        start = time.perf_counter()
        loss = ncuts_loss(layer(F), labels)
        loss.backward()
        return time.perf_counter() - start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EigengapWarning)
        step()  # warm-up
        times = [step() for _ in range(args.repeats)]
        gap = float(layer(F0).eigengap[0])
    return {"times_s": times, "maxrss_mib": _maxrss_mib(), "eigengap": gap}


def _run_worker(
    script: Path, route: str, m: int, cfg: argparse.Namespace, repeats: int | None = None
) -> dict:
    cmd = [
        sys.executable,
        str(script),
        "--worker",
        "--route",
        route,
        "--m",
        str(m),
        "--d",
        str(cfg.d),
        "--k",
        str(cfg.k),
        "--repeats",
        str(cfg.repeats if repeats is None else repeats),
        "--dtype",
        cfg.dtype,
        "--threads",
        str(cfg.threads),
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {route} m={m} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _dense_estimate(
    m: int, itemsize: int, calibration: tuple[int, float] | None, repeats: int
) -> tuple[float, float]:
    """Estimated peak memory (GiB) and total time (s, warm-up + repeats) of the dense route."""
    mem_gib = DENSE_BUFFERS * m * m * itemsize / 2**30
    if calibration is not None:
        m_ref, t_ref = calibration
        per_run = t_ref * (m / m_ref) ** 3
    else:
        per_run = DENSE_FLOPS_PER_M3 * m**3 / NOMINAL_FLOPS
    return mem_gib, per_run * (repeats + 1)


def _table(rows: list[dict], cfg) -> str:
    lines = [
        f"NCuts layer + loss, fwd+bwd, d={cfg.d}, k={cfg.k}, {cfg.dtype}, CPU "
        f"({cfg.threads or 'default'} threads); median of {cfg.repeats} runs (dense: "
        f"{min(cfg.repeats, cfg.dense_repeats)}) after 1 warm-up",
        "",
        "| m | route | median time (s) | min time (s) | peak RSS above idle (MiB) | note |",
        "|---:|:---|---:|---:|---:|:---|",
    ]
    for r in rows:
        if r["status"] == "ok":
            lines.append(
                f"| {r['m']} | {r['route']} | {r['time_s_median']:.4f} | {r['time_s_min']:.4f} | "
                f"{r['peak_rss_mib']:.0f} | |"
            )
        else:
            note = f"skipped (est. {r['est_mem_gib']:.1f} GiB / {r['est_time_s']:.0f} s)"
            lines.append(f"| {r['m']} | {r['route']} | - | - | - | {note} |")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--sizes", type=str, default=None, help="comma-separated m values")
    p.add_argument("--routes", type=str, default=",".join(ROUTES))
    p.add_argument("--d", type=int, default=None)
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1; 0: torch's default)"
    )
    p.add_argument("--dense-mem-limit-gib", type=float, default=6.0)
    p.add_argument("--dense-time-limit-s", type=float, default=600.0)
    p.add_argument("--dense-repeats", type=int, default=3, help="timed repeats of the dense route")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    # internal
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--route", type=str, default="lowrank", help=argparse.SUPPRESS)
    p.add_argument("--m", type=int, default=0, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> dict:
    cfg = _parser().parse_args(argv)
    if cfg.worker:
        result = _worker(cfg)
        print(json.dumps(result))
        return result
    cfg.d = cfg.d or (16 if cfg.quick else 64)
    cfg.k = cfg.k or (4 if cfg.quick else 8)
    cfg.repeats = cfg.repeats or (2 if cfg.quick else 11)
    sizes = (
        tuple(int(s) for s in cfg.sizes.split(","))
        if cfg.sizes
        else (QUICK_SIZES if cfg.quick else FULL_SIZES)
    )
    routes = tuple(r for r in cfg.routes.split(",") if r)
    unknown = set(routes) - set(ROUTES)
    if unknown:
        raise SystemExit(f"unknown routes {sorted(unknown)}; choose from {ROUTES}")
    itemsize = 4 if cfg.dtype == "float32" else 8
    script = Path(__file__).resolve()
    idle = _run_worker(script, "baseline", 0, cfg)
    baseline = idle["maxrss_mib"]
    rows: list[dict] = []
    calibration: tuple[int, float] | None = None
    for m in sizes:
        for route in routes:
            row: dict = {"m": m, "route": route, "d": cfg.d, "k": cfg.k}
            repeats = cfg.repeats
            if route == "dense":
                repeats = min(cfg.repeats, cfg.dense_repeats)
                mem, est = _dense_estimate(m, itemsize, calibration, repeats)
                row.update(est_mem_gib=mem, est_time_s=est)
                if mem > cfg.dense_mem_limit_gib or est > cfg.dense_time_limit_s:
                    row["status"] = "skipped"
                    rows.append(row)
                    print(
                        f"m={m} dense: skipped (est. {mem:.1f} GiB / {est:.0f} s)", file=sys.stderr
                    )
                    continue
            out = _run_worker(script, route, m, cfg, repeats)
            row.update(
                status="ok",
                times_s=out["times_s"],
                time_s_median=statistics.median(out["times_s"]),
                time_s_min=min(out["times_s"]),
                peak_rss_mib=max(out["maxrss_mib"] - baseline, 0.0),
                eigengap=out["eigengap"],
            )
            if route == "dense":
                calibration = (m, row["time_s_median"])
            rows.append(row)
            print(f"m={m} {route}: {row['time_s_median']:.4f} s", file=sys.stderr)
    speedup = {}
    for m in sizes:
        by_route = {r["route"]: r for r in rows if r["m"] == m and r["status"] == "ok"}
        if "dense" in by_route and "lowrank" in by_route:
            speedup[str(m)] = (
                by_route["dense"]["time_s_median"] / by_route["lowrank"]["time_s_median"]
            )
    report = {
        "benchmark": "ncuts",
        "config": {
            "sizes": list(sizes),
            "routes": list(routes),
            "d": cfg.d,
            "k": cfg.k,
            "dtype": cfg.dtype,
            "repeats": cfg.repeats,
            "threads": cfg.threads,
            "quick": cfg.quick,
            "dense_mem_limit_gib": cfg.dense_mem_limit_gib,
            "dense_time_limit_s": cfg.dense_time_limit_s,
            "dense_repeats": min(cfg.repeats, cfg.dense_repeats),
        },
        "method": (
            "time: median of repeats (fwd+bwd of NormalizedCuts + ncuts_loss) after one warm-up; "
            "memory: ru_maxrss of a fresh worker process minus ru_maxrss of an idle worker "
            "that imported torch and matbackprop"
        ),
        "baseline_rss_mib": baseline,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": idle["torch"],
            "torch_threads": idle["torch_threads"],
        },
        "results": rows,
        "speedup_dense_over_lowrank": speedup,
    }
    table = _table(rows, cfg)
    print(table)
    if speedup:
        print(
            "\nspeed-up dense / lowrank: "
            + ", ".join(f"m={m}: {s:.1f}x" for m, s in speedup.items())
        )
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
