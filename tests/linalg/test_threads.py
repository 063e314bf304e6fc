"""Thread state is unchanged after every public call, and results do not depend on the thread
count (issue 8 §2.6: ``torch.set_num_threads(1)`` inside the eigh pool workers lowered the
thread count of every thread created afterwards from 2 to 1)."""

from __future__ import annotations

import threading
from functools import partial

import pytest
import torch

from matbackprop import linalg

from .. import builders as B

F64 = torch.float64


def thread_count_of_a_new_thread() -> int:
    out: list[int] = []
    worker = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    return out[0]


@pytest.fixture
def two_threads(monkeypatch):
    """Two intra-op threads and a forced two-worker eigh pool; restores the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setenv("MATBACKPROP_EIGH_THREADS", "2")
    yield
    torch.set_num_threads(before)


# Inputs big enough for the threaded eigh path (n >= 128, >= 2 matrices per worker).
def _spd_batch(dtype=F64):
    return B.random_spd(128, seed=1, batch=(4,), dtype=dtype)


PUBLIC_CALLS = {
    "eigh": lambda A: linalg.eigh(A)[0].sum(),
    "svd": lambda A: linalg.svd(A[..., :8, :5])[1].sum(),
    "logm": lambda A: linalg.logm(A).sum(),
    "sqrtm": lambda A: linalg.sqrtm(A).sum(),
    "invsqrtm": lambda A: linalg.invsqrtm(A).sum(),
    "powm": lambda A: linalg.powm(A, 0.3).sum(),
    "expm": lambda A: linalg.expm(A / 10).sum(),
    "spectral_function": lambda A: linalg.spectral_function(A, torch.atan, torch.cos).sum(),
    "sqrtm_newton_schulz": lambda A: linalg.sqrtm_newton_schulz(A[..., :8, :8]).sum(),
    "invsqrtm_newton_schulz": lambda A: linalg.invsqrtm_newton_schulz(A[..., :8, :8]).sum(),
    "projector": lambda A: linalg.projector(A[..., :8, :3]).sum(),
}


@pytest.mark.parametrize("name", list(PUBLIC_CALLS))
def test_thread_state_unchanged_after_public_call(name, two_threads):
    A = _spd_batch().requires_grad_()
    PUBLIC_CALLS[name](A).backward()
    assert torch.get_num_threads() == 2
    assert thread_count_of_a_new_thread() == 2


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(
    "fn", [linalg.logm, partial(linalg.powm, p=0.5)], ids=["logm", "powm(0.5)"]
)
def test_results_do_not_depend_on_thread_count(fn, dtype, monkeypatch):
    """One thread and one batched LAPACK call vs two threads and the two-worker pool: equal to
    rounding (LAPACK may block differently), not to a threshold that a kernel could cross."""
    A = _spd_batch(dtype)
    G = B.random_symmetric(128, seed=2, batch=(4,), dtype=dtype)
    results = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            monkeypatch.setenv("MATBACKPROP_EIGH_THREADS", str(threads))
            X = A.clone().requires_grad_()
            Y = fn(X)
            (Y * G).sum().backward()
            results.append((Y.detach(), X.grad))
    finally:
        torch.set_num_threads(before)
    (Y1, g1), (Y2, g2) = results
    tol = B.tolerance(dtype, 128, float(Y1.abs().max()))
    torch.testing.assert_close(Y2, Y1, atol=tol, rtol=0)
    torch.testing.assert_close(g2, g1, atol=B.tolerance(dtype, 128, float(g1.abs().max())), rtol=0)
