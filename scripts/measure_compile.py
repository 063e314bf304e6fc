"""Time ``torch.compile`` over ``logm`` forward + backward, each setting in a fresh process.

Measures, per function (``logm``; ``two_op``: ``(A @ A).sin().sum()``, the plain baseline), per
backend (``aot_eager``, ``inductor``) and ``check``:

- ``first_s``: the first call (tracing, compiling, running) -- with a cold cache (an empty
  ``TORCHINDUCTOR_CACHE_DIR``) and a warm one (the same folder, a second process);
- ``steady_ms``: later calls, against eager;
- ``graphs``: the graphs Dynamo built (``torch._dynamo.explain``), and the recompiles after a
  call with another batch size;
- ``max_err``: the largest difference of output and gradient from eager;
- ``compile``: inductor's own counters (graphs compiled, C++ kernels generated) and the seconds
  spent in Dynamo tracing, AOT autograd (which includes the backend's compile of the forward),
  inductor's graph compiles and its C++ builds (``torch._dynamo.utils``).

    python scripts/measure_compile.py [--batch 64] [--n 256] [--threads 1] [--functions ...]

Results are quoted in docs/compile.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, sys, time, warnings
import torch
warnings.simplefilter("ignore")
from matbackprop.linalg import logm
backend, check, B, n = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4])
function = sys.argv[5]
torch.manual_seed(0)
X = torch.randn(B, n, n, dtype=torch.float64)
A = (X @ X.mT / n + 0.1 * torch.eye(n, dtype=torch.float64)).requires_grad_(True)

def step(A):
    if function == "two_op":
        return (A @ A).sin().sum()
    return (logm(A, check=check) ** 2).sum()

def run(fn):
    A.grad = None
    y = fn(A)
    y.backward()
    return y.detach(), A.grad.clone()

t = time.perf_counter(); y0, g0 = run(step); eager_first = time.perf_counter() - t
fn = torch.compile(step, backend=backend)
from torch._dynamo.utils import compilation_time_metrics, counters
t = time.perf_counter(); y1, g1 = run(fn); first = time.perf_counter() - t
PHASES = ("bytecode_tracing", "create_aot_dispatcher_function", "compile_fx_inner",
          "compile_file", "async_compile.wait")
phases = {k: round(sum(compilation_time_metrics.get(k, [])), 3) for k in PHASES}
kept = {k: dict(counters[k]) for k in ("frames", "stats", "inductor")}
times = {"eager": [], "compiled": []}
for _ in range(3):
    for name, f in (("eager", step), ("compiled", fn)):
        t = time.perf_counter(); run(f); times[name].append(time.perf_counter() - t)
err = max(float((y1 - y0).abs().max()), float((g1 - g0).abs().max() / g0.abs().max()))
explain = torch._dynamo.explain(step)(A)
torch._dynamo.reset()
print(json.dumps({
    "first_s": first, "eager_first_s": eager_first,
    "steady_ms": 1e3 * min(times["compiled"]), "eager_ms": 1e3 * min(times["eager"]),
    "graphs": explain.graph_count, "breaks": explain.graph_break_count,
    "break_reasons": sorted({r.reason.splitlines()[0] for r in explain.break_reasons}),
    "max_err": err,
    "compile": {"phases_s": phases, "counters": kept},
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--compile-threads", type=int, default=None,
                        help="TORCHINDUCTOR_COMPILE_THREADS (default: inductor's choice)")
    parser.add_argument("--backends", default="aot_eager,inductor")
    parser.add_argument("--functions", default="two_op,logm")
    args = parser.parse_args()
    rows = []
    for function, backend in (
        (f, b) for f in args.functions.split(",") for b in args.backends.split(",")
    ):
        for check in (True, False) if function == "logm" else (False,):
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "OMP_NUM_THREADS": str(args.threads),
                       "TORCHINDUCTOR_CACHE_DIR": cache}
                if args.compile_threads is not None:
                    env["TORCHINDUCTOR_COMPILE_THREADS"] = str(args.compile_threads)
                for cache_state in ("cold", "warm"):
                    cmd = [sys.executable, "-c", CHILD, backend, str(int(check)),
                           str(args.batch), str(args.n), function]
                    start = time.perf_counter()
                    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    result.update(function=function, backend=backend, check=check,
                                  cache=cache_state,
                                  process_s=time.perf_counter() - start)
                    rows.append(result)
                    print(f"{function:6s} {backend:9s} check={check!s:5s} {cache_state}: first "
                          f"call {result['first_s']:.1f} s (process {result['process_s']:.1f} s), "
                          f"steady {result['steady_ms']:.0f} ms vs eager {result['eager_ms']:.0f}"
                          f" ms, graphs {result['graphs']}, max err {result['max_err']:.1e}, "
                          f"{json.dumps(result['compile'])}",
                          flush=True)
    os.makedirs("benchmarks/out", exist_ok=True)
    with open("benchmarks/out/compile.json", "w") as f:
        json.dump({"args": vars(args), "torch": __import__("torch").__version__, "rows": rows},
                  f, indent=2)


if __name__ == "__main__":
    main()
