"""The raw symmetric eigensolver every forward pass calls (no autograd here).

On CPU, LAPACK's ``syevd`` runs one matrix at a time and threads poorly for small matrices, so
a large batch is split into contiguous chunks solved on a thread pool (PyTorch releases the GIL
inside ``torch.linalg.eigh``), each worker running LAPACK single-threaded. On accelerators, and
inside ``torch.func`` transforms (whose state is thread-local) and under ``torch.compile``, a single
batched call is made.

Thread state
------------
The workers limit *their own* OpenMP and MKL thread counts (``omp_set_num_threads`` and
``MKL_Set_Num_Threads_Local`` of the runtimes torch ships, both thread-local) once, when the
worker starts. ``torch.set_num_threads`` is never called: it also stores the count process-wide,
so every thread created afterwards (data loaders, user threads) would inherit 1. Where those two
thread-local controls are not available (other builds of torch), no pool is used.
"""

from __future__ import annotations

import ctypes
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

# Smaller matrices gain nothing from threading (measured with
# benchmarks/bench_matrix_functions.py; see docs/numerics.md).
_MIN_N_FOR_THREADS = 128
_MIN_BATCH_PER_THREAD = 2


def _thread_count() -> int:
    env = os.environ.get("MATBACKPROP_EIGH_THREADS")
    if env is not None:
        return max(1, int(env))
    return max(1, torch.get_num_threads())


@lru_cache(maxsize=1)
def _thread_local_limits():
    """``(omp_set_num_threads, MKL_Set_Num_Threads_Local)`` of torch's own runtimes, or None.

    Both set the calling thread's count only. Looked up in the libraries of the torch install
    (an OpenMP runtime loaded by another package could be a different one).
    """
    lib = Path(torch.__file__).parent / "lib"
    omp_libs = sorted(lib.glob("libgomp*.so*")) + sorted(lib.glob("libiomp5*.so*"))
    try:
        omp = ctypes.CDLL(str(omp_libs[0])).omp_set_num_threads
        mkl = ctypes.CDLL(str(lib / "libtorch_cpu.so")).MKL_Set_Num_Threads_Local
    except (IndexError, OSError, AttributeError):
        return None
    omp.argtypes = mkl.argtypes = [ctypes.c_int]
    return omp, mkl


def _single_threaded_worker(limits) -> None:
    """Pool initializer: this worker thread runs OpenMP and MKL with one thread."""
    # torch initializes a thread's count lazily on first use (from the process-wide setting);
    # do that first so that it cannot undo the thread-local limit set next.
    torch.get_num_threads()
    omp_set_num_threads, mkl_set_num_threads_local = limits
    omp_set_num_threads(1)
    mkl_set_num_threads_local(1)


@lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix="matbackprop-eigh",
        initializer=_single_threaded_worker,
        initargs=(_thread_local_limits(),),
    )


def symmetric_eigh(A: Tensor, *, exactly_symmetric: bool = False) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and orthonormal eigenvectors of symmetric ``A (..., n, n)``.

    Reads the lower triangle, like :func:`torch.linalg.eigh`. No gradient tracking. If LAPACK
    fails to converge in float32 (it happens on badly scaled, zero-padded Gram matrices), the
    decomposition is retried in float64 with a ``RuntimeWarning``. ``exactly_symmetric``: the
    caller guarantees ``A == Aᵀ`` bit for bit (e.g. ``A + Aᵀ``), so ``Aᵀ`` is decomposed
    instead: the same matrix in the column-major layout LAPACK reads (no transposing copy).
    """
    if exactly_symmetric:
        A = A.mT
    try:
        return _symmetric_eigh(A)
    except torch.linalg.LinAlgError:
        if A.dtype != torch.float32 or torch._C._are_functorch_transforms_active():
            raise
        warnings.warn(
            "float32 eigh did not converge; retrying in float64", RuntimeWarning, stacklevel=3
        )
        lam, U = _symmetric_eigh(A.double())
        return lam.float(), U.float()


def _symmetric_eigh(A: Tensor) -> tuple[Tensor, Tensor]:
    if torch.compiler.is_compiling():
        # torch.compile traces one batched call (a thread pool cannot be traced; without this
        # check, ``torch.get_num_threads`` breaks the graph): see docs/compile.md
        return torch.linalg.eigh(A)
    n = A.shape[-1]
    batch = A.shape[:-2]
    count = 1
    for size in batch:
        count *= size
    workers = _thread_count()
    if (
        A.device.type != "cpu"
        or workers < 2
        or _thread_local_limits() is None
        or n < _MIN_N_FOR_THREADS
        or count < workers * _MIN_BATCH_PER_THREAD
        or torch._C._are_functorch_transforms_active()
    ):
        return torch.linalg.eigh(A)
    flat = A.reshape(count, n, n)
    lam = A.new_empty(count, n)
    # Column-major, as LAPACK writes it and torch.linalg.eigh returns it: a row-major `out`
    # would cost a temporary and a transposing copy per chunk. Each worker writes its chunk of
    # the results in place (no concatenation afterwards).
    U = A.new_empty(count, n, n).mT
    chunks = zip(flat.chunk(workers), lam.chunk(workers), U.chunk(workers), strict=True)
    list(_pool(workers).map(lambda c: torch.linalg.eigh(c[0], out=(c[1], c[2])), chunks))
    return lam.reshape(*batch, n), U.reshape(*batch, n, n)
