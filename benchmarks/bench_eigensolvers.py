"""Benchmark: one symmetric eigendecomposition, one thread, by every LAPACK driver in reach.

The floor of ``logm`` / ``sqrtm`` forward + backward is the ``eigh`` both routes pay for
(``bench_matrix_functions.py``'s ``floor`` column). Our eigh runs the batch on a thread pool,
one matrix per thread, so that floor is the time of one single-threaded eigendecomposition.
This benchmark asks whether another driver could lower it: per matrix, on one thread, in one
run, interleaved:

- ``torch``: ``torch.linalg.eigh`` (the LAPACK torch ships: MKL's ``syevd``, divide and
  conquer; the only symmetric driver in torch's wheel);
- ``scipy_evd`` / ``scipy_evr`` / ``scipy_ev``: ``scipy.linalg.eigh(driver=...)`` with SciPy's
  own LAPACK (``syevd``; ``syevr``, MRRR; ``syev``, QR iteration).

Matrices are covariances ``XᵀX/(2n) + 10⁻³I`` (the benchmark's batch of
``bench_matrix_functions.py``). A ratio below 1 in the ``best other / torch`` column would be
a lever for issue 12 §3; the JSON has every time.

Threads: the script sets ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS``
to 1 before importing NumPy, SciPy and torch (when run as a script, so that SciPy's BLAS reads
them), and ``torch.set_num_threads(1)``.

Usage::

    python benchmarks/bench_eigensolvers.py            # n = 32 ... 512, both dtypes
    python benchmarks/bench_eigensolvers.py --quick    # smoke run
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before NumPy / SciPy / torch read them
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import (  # noqa: E402
    environment,
    markdown_table,
    size_sweep_parser,
    sizes_of,
    time_interleaved,
    write_json,
)
from bench_matrix_functions import FULL_SIZES, covariance_batch  # noqa: E402

DRIVERS = ("evd", "evr", "ev")


def measure(n: int, dtype: torch.dtype, count: int, repeats: int) -> tuple[dict, list]:
    """Seconds per matrix of each driver, and the largest eigenvalue error against float64."""
    A = covariance_batch(count, n, 2 * n, dtype, 1e-3, seed=n).contiguous()
    arrays = [a.numpy() for a in A]

    def scipy_route(driver):
        return lambda: [scipy.linalg.eigh(a, driver=driver, check_finite=False) for a in arrays]

    fns = {"torch": lambda: [torch.linalg.eigh(a) for a in A]}
    fns.update({f"scipy_{d}": scipy_route(d) for d in DRIVERS})
    per_matrix = {k: v / count for k, v in time_interleaved(fns, repeats).items()}

    exact = torch.linalg.eigvalsh(A.double())
    scale = exact.abs().amax(-1)
    eigenvalues = {"torch": torch.linalg.eigvalsh(A).double()}
    for d in DRIVERS:
        w = np.stack([scipy.linalg.eigh(a, driver=d, eigvals_only=True) for a in arrays])
        eigenvalues[f"scipy_{d}"] = torch.from_numpy(w).double()
    rel_error = {
        k: float(((w - exact).abs().amax(-1) / scale).max()) for k, w in eigenvalues.items()
    }

    others = {k: v for k, v in per_matrix.items() if k != "torch"}
    best = min(others, key=others.get)
    entry = {
        "dtype": str(dtype).replace("torch.", ""),
        "n": n,
        "matrices": count,
        "seconds_per_matrix": per_matrix,
        "eigenvalue_relative_error": rel_error,
        "best_other": best,
        "ratio_best_other_over_torch": others[best] / per_matrix["torch"],
    }
    row = [entry["dtype"], n]
    row += [f"{1e3 * per_matrix[k]:.3f}" for k in fns]
    row += [best, f"{entry['ratio_best_other_over_torch']:.2f}"]
    row += [f"{max(rel_error.values()):.1e}"]
    return entry, row


def run(sizes, dtypes, count, repeats, out_dir=None) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows, results = [], []
    try:
        for dtype in dtypes:
            for n in sizes:
                entry, row = measure(n, dtype, count, repeats)
                results.append(entry)
                rows.append(row)
                print(f"done {entry['dtype']} n={n}", file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(threads)
    header = ["dtype", "n", "torch ms", *(f"scipy {d} ms" for d in DRIVERS)]
    header += ["best other", "best other / torch", "max eigenvalue rel. error"]
    table = markdown_table(header, rows)
    payload = {
        "benchmark": "eigensolvers",
        "matrices": count,
        "repeats": repeats,
        "environment": environment(),
        "threads": {
            "torch": 1,
            **{v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        },
        "results": results,
        "table": table,
    }
    write_json("eigensolvers.json", payload, out_dir)
    return payload


def main(argv=None) -> dict:
    parser = size_sweep_parser(__doc__, FULL_SIZES)
    parser.add_argument("--matrices", type=int, default=16, help="matrices per size")
    args = parser.parse_args(argv)
    dtypes = [torch.float32, torch.float64]
    if args.quick:
        payload = run([8, 16], dtypes, count=2, repeats=2, out_dir=args.out_dir)
    else:
        sizes = sizes_of(args, FULL_SIZES)
        payload = run(sizes, dtypes, args.matrices, args.repeats, args.out_dir)
    print(payload["table"])
    print(
        "\nper matrix, one thread; best other / torch < 1 would lower the eigh floor of "
        "bench_matrix_functions.py"
    )
    return payload


if __name__ == "__main__":
    main()
