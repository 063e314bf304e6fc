"""The raw symmetric eigensolver every forward pass calls (no autograd here).

On CPU, LAPACK's ``syevd`` runs one matrix at a time and threads poorly for small matrices, so
a large batch is split into contiguous chunks solved on a thread pool (PyTorch releases the GIL
inside ``torch.linalg.eigh``). On accelerators, and inside ``torch.func`` transforms (whose
state is thread-local), a single batched call is made.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

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


@lru_cache(maxsize=4)
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="matbackprop-eigh")


def _eigh_single_thread(chunk: Tensor) -> tuple[Tensor, Tensor]:
    # Each worker runs LAPACK single-threaded; the parallelism is across matrices.
    torch.set_num_threads(1)
    return torch.linalg.eigh(chunk)


def symmetric_eigh(A: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and orthonormal eigenvectors of symmetric ``A (..., n, n)``.

    Reads the lower triangle, like :func:`torch.linalg.eigh`. No gradient tracking. If LAPACK
    fails to converge in float32 (it happens on badly scaled, zero-padded Gram matrices), the
    decomposition is retried in float64 with a ``RuntimeWarning``.
    """
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
    n = A.shape[-1]
    batch = A.shape[:-2]
    count = 1
    for size in batch:
        count *= size
    workers = _thread_count()
    if (
        A.device.type != "cpu"
        or workers < 2
        or n < _MIN_N_FOR_THREADS
        or count < workers * _MIN_BATCH_PER_THREAD
        or torch._C._are_functorch_transforms_active()
    ):
        return torch.linalg.eigh(A)
    flat = A.reshape(count, n, n)
    chunks = flat.chunk(workers)
    results = list(_pool(workers).map(_eigh_single_thread, chunks))
    lam = torch.cat([r[0] for r in results]).reshape(*batch, n)
    U = torch.cat([r[1] for r in results]).reshape(*batch, n, n)
    return lam, U
