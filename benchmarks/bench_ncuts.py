"""Benchmark: normalized-cuts layer + loss, forward and backward, ours against plain torch.

Each configuration (m, method) runs in a fresh subprocess: the NCuts embedding of random
non-negative features ``F (1, m, d)`` (``F = rand²``), :func:`ncuts_loss` against a random
``k``-way partition, and the gradient ``∂loss/∂F``. Methods:

``default``
    ``NormalizedCuts(k)`` with default settings (``solver="auto"``: the float64 Gram solver with
    its fused streaming backward for ``m >= 2d``).
``svd``
    ``NormalizedCuts(k, solver="svd")``: our thin SVD of ``D^-½F`` (matrix backpropagation).
``gram``
    ``NormalizedCuts(k, solver="gram")`` (what ``"auto"`` takes for ``m >= 2d``).
``dense``
    ``route="dense"``: forms ``W = FFᵀ`` and runs the ``m × m`` eigh (skipped where its
    estimated memory ``12 m²`` floats or time exceeds ``--dense-mem-limit-gib`` /
    ``--dense-time-limit-s``).
``torch``
    The plain torch reference: degrees ``F(Fᵀ1)``, ``G = D^-½F``, autograd through
    ``torch.linalg.svd(G, full_matrices=False)``, ``Z = U[:, :k]``, the same O(mk)
    :func:`ncuts_loss` (``degrees=`` given, so the gradient also flows through the degrees).

Reported per configuration:

* time: median over ``--repeats`` timed runs of forward + backward after one warm-up run;
* peak memory: ``ru_maxrss`` of the worker (``resource.getrusage(RUSAGE_SELF)``) minus the
  ``ru_maxrss`` of an idle worker that imported torch and matbackprop and built nothing
  (so it counts the input ``F``, its gradient and everything the step allocates; one copy of
  ``F`` serves every repeat, with ``F.grad`` reset);
* ratio: time of the method / time of ``torch`` at the same ``m`` (same run);
* accuracy (``m <= --accuracy-max-m``, in a separate worker so that it does not count in the
  memory): ``‖g₃₂ − g₆₄‖ / ‖g₆₄‖`` of the float32 gradient of each method against the
  float64 gradient of our SVD route, and whether the gradient is finite;
* target: the figures issue 12 asks for at m = 2²⁰ (in the same table).

Notes printed with the table: the issue-12 baseline and the peers' anchors quoted from
issue 12 (not measured here).

Threads: ``--threads 2`` by default (the figures of issue 12). On a shared machine the
timings are only meaningful in a quiet window; ``--threads 1`` is the reproducible choice
there.

Usage::

    python benchmarks/bench_ncuts.py              # m in {4096, 65536, 2^20, 2^22}
    python benchmarks/bench_ncuts.py --crossover  # m around 2d: where "auto" switches solver
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
METHODS = ("default", "svd", "gram", "dense", "torch")
DEFAULT_METHODS = ("default", "svd", "torch", "dense")
FULL_SIZES = (4096, 65536, 2**20, 2**22)
CROSSOVER_ROWS_PER_COLUMN = (1, 1.5, 2, 3, 4, 8, 16)  # m / d for --crossover
QUICK_SIZES = (256,)
REFERENCE = "torch"
DENSE_BUFFERS = 12  # m × m buffers at the peak of the dense backward (measured ~11 at m = 4096)
NOMINAL_FLOPS = 5e9  # used only when no dense size was measured yet
DENSE_FLOPS_PER_M3 = 30.0
#: issue 12's targets at m = 2²⁰ (d = 64, k = 8, float32, 2 threads)
TARGET_M = 2**20
TARGETS = {"time_s": 1.0, "peak_gib": 1.0, "ratio_to_torch": 0.3}
NOTES = [
    "issue 12, measured before this work (2 threads, float32, m = 2^20): default 4.45 s / "
    "1.56 GiB; solver='gram' 2.60 s / 1.11 GiB; plain torch reference 3.9 s / 1.8 GiB.",
    "peers (quoted from issue 12, not measured here; top-8 embedding of 64-d features, fwd+bwd, "
    "2 threads): ncut_pytorch default (Nystrom, its own RBF graph) 1.06 s / 8.4 s / 38.5 s at "
    "m = 4096 / 65536 / 2^20, 7 GiB peak at 2^20, NaN gradients with exact_gradient=True above "
    "4096; xitorch dense symeig 6.4 s at 4096.",
    "accuracy: relative 2-norm error of the float32 gradient dloss/dF against float64 "
    "(our SVD route in float64); issue 12 measured 4e-4 for the SVD route at m = 4096.",
]


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


# ----------------------------------------------------------------------------- workers


def _problem(torch, m: int, d: int, k: int, dtype):
    """``F = rand(1, m, d)²`` (drawn in float64, rounded to ``dtype``) and random labels.

    Drawn in row chunks straight into the result, so that making the problem never holds more
    than ``F`` itself (the peak-memory column would otherwise measure the set-up).
    """
    gen = torch.Generator().manual_seed(0)
    F = torch.empty(1, m, d, dtype=dtype)
    rows = max(1, (1 << 20) // d)
    for start in range(0, m, rows):
        chunk = torch.rand(1, min(rows, m - start), d, generator=gen, dtype=torch.float64)
        F[:, start : start + chunk.shape[1]] = chunk.square_()
    labels = torch.randint(0, k, (1, m), generator=gen)
    return F, labels


def _step_function(torch, method: str, k: int, labels, policy_rtol: float | None = None):
    """``F -> loss`` of one method (forward only; the caller differentiates); ``policy_rtol``
    sets the degeneracy tolerance of our methods (``DegeneracyPolicy(rtol=...)``)."""
    from matbackprop.linalg import DegeneracyPolicy
    from matbackprop.nn import NormalizedCuts
    from matbackprop.nn.functional import ncuts_loss

    if method == "torch":

        def loss_of(F):
            degrees = (F @ F.sum(-2, keepdim=True).mT).squeeze(-1)  # F(Fᵀ1)
            G = F * degrees.rsqrt().unsqueeze(-1)
            U, _, _ = torch.linalg.svd(G, full_matrices=False)
            Z = U[..., :k]
            return ncuts_loss(Z, labels, degrees=degrees, num_segments=k)

        return loss_of
    options = {
        "default": {},
        "svd": {"solver": "svd"},
        "gram": {"solver": "gram"},
        "dense": {"route": "dense"},
    }[method]
    if policy_rtol is not None:
        options = {**options, "policy": DegeneracyPolicy(rtol=policy_rtol)}
    layer = NormalizedCuts(k, **options)
    return lambda F: ncuts_loss(layer(F, num_segments=k), labels, num_segments=k)


def _time_worker(args: argparse.Namespace) -> dict:
    """Time one method (fresh process): forward + backward, median of repeats."""
    import warnings

    import torch

    from matbackprop.nn import EigengapWarning

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.method == "baseline":
        return {
            "maxrss_mib": _maxrss_mib(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }
    F, labels = _problem(torch, args.m, args.d, args.k, getattr(torch, args.dtype))
    F.requires_grad_(True)  # no method writes into F: one copy serves every repeat
    loss_of = _step_function(torch, args.method, args.k, labels, args.policy_rtol)

    def step() -> float:
        F.grad = None
        start = time.perf_counter()
        loss_of(F).backward()
        return time.perf_counter() - start

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EigengapWarning)
        step()  # warm-up
        times = [step() for _ in range(args.repeats)]
    return {"times_s": times, "maxrss_mib": _maxrss_mib()}


def _accuracy_worker(args: argparse.Namespace) -> dict:
    """Float32 gradients of each method against the float64 gradient of our SVD route."""
    import warnings

    import torch

    from matbackprop.nn import EigengapWarning
    from matbackprop.nn.functional import normalized_cuts

    if args.threads:
        torch.set_num_threads(args.threads)
    F64, labels = _problem(torch, args.m, args.d, args.k, torch.float64)

    def gradient(method: str, F):
        F = F.clone().requires_grad_(True)
        rtol = None if F.dtype == torch.float64 else args.policy_rtol  # the reference: default
        return torch.autograd.grad(_step_function(torch, method, args.k, labels, rtol)(F), F)[0]

    out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EigengapWarning)
        reference = gradient("svd", F64)
        gap = float(normalized_cuts(F64, args.k).eigengap[0])
        gap32 = float(normalized_cuts(F64.float(), args.k).eigengap[0])
        for method in args.methods.split(","):
            g = gradient(method, F64.float()).double()
            finite = bool(torch.isfinite(g).all())
            error = float((g - reference).norm() / reference.norm()) if finite else float("nan")
            out[method] = {"gradient_error": error, "finite": finite}
    return {"accuracy": out, "eigengap": gap, "eigengap_float32": gap32}


def _run_worker(script: Path, cfg: argparse.Namespace, *extra: str) -> dict:
    cmd = [sys.executable, str(script), "--worker", *extra]
    cmd += ["--d", str(cfg.d), "--k", str(cfg.k), "--dtype", cfg.dtype]
    cmd += ["--threads", str(cfg.threads)]
    if cfg.policy_rtol is not None:
        cmd += ["--policy-rtol", str(cfg.policy_rtol)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(extra)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- driver


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


def _target(row: dict) -> str:
    if row["m"] != TARGET_M or row["method"] != "default":
        return ""
    return (
        f"<= {TARGETS['time_s']:g} s, <= {TARGETS['peak_gib']:g} GiB, "
        f"<= {TARGETS['ratio_to_torch']:g}x torch"
    )


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(rows: list[dict], cfg) -> str:
    lines = [
        f"NCuts layer + ncuts_loss, fwd+bwd, d={cfg.d}, k={cfg.k}, {cfg.dtype}, CPU "
        f"({cfg.threads or 'default'} threads); median of {cfg.repeats} runs (dense: "
        f"{min(cfg.repeats, cfg.dense_repeats)}) after 1 warm-up; ratio = time / torch",
        "",
        "| m | method | median (s) | min (s) | ratio to torch | peak RSS above idle (MiB) "
        "| grad error vs float64 | target | note |",
        "|---:|:---|---:|---:|---:|---:|---:|:---|:---|",
    ]
    for r in rows:
        if r["status"] != "ok":
            note = f"skipped (est. {r['est_mem_gib']:.1f} GiB / {r['est_time_s']:.0f} s)"
            lines.append(
                f"| {r['m']} | {r['method']} | - | - | - | - | - | {_target(r)} | {note} |"
            )
            continue
        error = r.get("gradient_error")
        error_text = "-" if error is None else ("non-finite" if error != error else f"{error:.1e}")
        lines.append(
            f"| {r['m']} | {r['method']} | {r['time_s_median']:.4f} | {r['time_s_min']:.4f} | "
            f"{_fmt(r.get('ratio_to_torch'), '.2f')} | {r['peak_rss_mib']:.0f} | {error_text} | "
            f"{_target(r)} | |"
        )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    p.add_argument("--crossover", action="store_true", help="m = d·{1 … 16}: the solver switch")
    p.add_argument("--sizes", type=str, default=None, help="comma-separated m values")
    p.add_argument("--methods", type=str, default=None, help=f"comma-separated, of {METHODS}")
    p.add_argument("--d", type=int, default=None)
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default 2, --quick 1; 0: torch's default)",
    )
    p.add_argument(
        "--accuracy-max-m",
        type=int,
        default=2**20,
        help="measure float32-vs-float64 gradient errors up to this m (0: never)",
    )
    p.add_argument("--dense-mem-limit-gib", type=float, default=6.0)
    p.add_argument("--dense-time-limit-s", type=float, default=600.0)
    p.add_argument("--dense-repeats", type=int, default=3, help="timed repeats of the dense route")
    p.add_argument(
        "--policy-rtol",
        type=float,
        default=None,
        help="degeneracy tolerance of our methods (DegeneracyPolicy(rtol=...); default per dtype)",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    # internal
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--accuracy", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--method", type=str, default="default", help=argparse.SUPPRESS)
    p.add_argument("--m", type=int, default=0, help=argparse.SUPPRESS)
    return p


def _sizes(cfg) -> tuple[int, ...]:
    if cfg.sizes:
        return tuple(int(s) for s in cfg.sizes.split(","))
    if cfg.crossover:
        return tuple(int(r * cfg.d) for r in CROSSOVER_ROWS_PER_COLUMN)
    return QUICK_SIZES if cfg.quick else FULL_SIZES


def main(argv: list[str] | None = None) -> dict:
    cfg = _parser().parse_args(argv)
    if cfg.worker:
        result = _accuracy_worker(cfg) if cfg.accuracy else _time_worker(cfg)
        print(json.dumps(result))
        return result
    cfg.d = cfg.d or (16 if cfg.quick else 64)
    cfg.k = cfg.k or (4 if cfg.quick else 8)
    cfg.repeats = cfg.repeats or (2 if cfg.quick else 5)
    if cfg.threads is None:
        cfg.threads = 1 if cfg.quick else 2
    sizes = _sizes(cfg)
    if cfg.methods:
        methods = tuple(x for x in cfg.methods.split(",") if x)
    elif cfg.crossover:
        methods = ("default", "svd", "gram", "torch")
    else:
        methods = DEFAULT_METHODS
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    itemsize = 4 if cfg.dtype == "float32" else 8
    script = Path(__file__).resolve()
    idle = _run_worker(script, cfg, "--method", "baseline", "--m", "0", "--repeats", "1")
    baseline = idle["maxrss_mib"]
    rows: list[dict] = []
    accuracy: dict[str, dict] = {}
    calibration: tuple[int, float] | None = None
    for m in sizes:
        if cfg.accuracy_max_m and m <= cfg.accuracy_max_m:
            exact = [x for x in methods if x != "dense" or m <= 4096]
            accuracy[str(m)] = _run_worker(
                script, cfg, "--accuracy", "--m", str(m), "--methods", ",".join(exact)
            )
        for method in methods:
            row: dict = {"m": m, "method": method, "d": cfg.d, "k": cfg.k}
            repeats = cfg.repeats
            if method == "dense":
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
            out = _run_worker(
                script, cfg, "--method", method, "--m", str(m), "--repeats", str(repeats)
            )
            row.update(
                status="ok",
                times_s=out["times_s"],
                time_s_median=statistics.median(out["times_s"]),
                time_s_min=min(out["times_s"]),
                peak_rss_mib=max(out["maxrss_mib"] - baseline, 0.0),
            )
            measured = accuracy.get(str(m), {}).get("accuracy", {}).get(method)
            if measured is not None:
                row.update(gradient_error=measured["gradient_error"], finite=measured["finite"])
            if method == "dense":
                calibration = (m, row["time_s_median"])
            rows.append(row)
            print(f"m={m} {method}: {row['time_s_median']:.4f} s", file=sys.stderr)
    for m in sizes:
        by_method = {r["method"]: r for r in rows if r["m"] == m and r["status"] == "ok"}
        if REFERENCE in by_method:
            for r in by_method.values():
                r["ratio_to_torch"] = r["time_s_median"] / by_method[REFERENCE]["time_s_median"]
    targets_met = None
    at_target = [r for r in rows if r["m"] == TARGET_M and r["method"] == "default"]
    if at_target and at_target[0]["status"] == "ok":
        r = at_target[0]
        targets_met = {
            "time_s": r["time_s_median"] <= TARGETS["time_s"],
            "peak_gib": r["peak_rss_mib"] / 1024 <= TARGETS["peak_gib"],
            "ratio_to_torch": r.get("ratio_to_torch", float("inf")) <= TARGETS["ratio_to_torch"],
        }
    report = {
        "benchmark": "ncuts",
        "config": {
            "sizes": list(sizes),
            "methods": list(methods),
            "policy_rtol": cfg.policy_rtol,
            "d": cfg.d,
            "k": cfg.k,
            "dtype": cfg.dtype,
            "repeats": cfg.repeats,
            "threads": cfg.threads,
            "quick": cfg.quick,
            "crossover": cfg.crossover,
            "accuracy_max_m": cfg.accuracy_max_m,
            "dense_mem_limit_gib": cfg.dense_mem_limit_gib,
            "dense_time_limit_s": cfg.dense_time_limit_s,
            "dense_repeats": min(cfg.repeats, cfg.dense_repeats),
        },
        "method": (
            "time: median of repeats (fwd+bwd: embedding + ncuts_loss + dloss/dF) after one "
            "warm-up, each method in a fresh process; memory: ru_maxrss of the worker minus "
            "ru_maxrss of an idle worker that imported torch and matbackprop; accuracy: separate "
            "worker, float32 gradient vs float64 gradient of our SVD route"
        ),
        "baseline_rss_mib": baseline,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": idle["torch"],
            "torch_threads": idle["torch_threads"],
        },
        "targets": {"m": TARGET_M, **TARGETS},
        "targets_met": targets_met,
        "accuracy": accuracy,
        "notes": NOTES,
        "results": rows,
    }
    print(_table(rows, cfg))
    gaps = ", ".join(
        f"m={m}: {a['eigengap']:.2g} (float32 {a['eigengap_float32']:.2g})"
        for m, a in accuracy.items()
    )
    if gaps:
        print(f"\nrelative eigengap (λ_k − λ_k+1)/λ_1: {gaps}")
    if targets_met is not None:
        print(f"targets at m = {TARGET_M} met: {targets_met}")
    print("\nNotes:\n" + "\n".join(f"- {note}" for note in NOTES))
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
