"""Scoring ultrametric contour maps with the BSDS benchmark in a pool of processes.

:class:`UCMBenchmark` scores ``ucm2`` maps (official protocol: 99 thresholds; thresholds giving
the same map are scored once, :func:`~matbackprop.metrics.evaluate_ucm2`) in ``workers``
processes (spawned once, one BLAS thread each), and keeps the seconds spent.

With a ``cache`` folder, each image's evaluation is stored under the SHA-1 of everything it
depends on (the ucm2 values, the human segmentations, the protocol), so a map scored before --
a deterministic baseline evaluated again for another training seed -- is read back, exactly,
instead of scored again.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from matbackprop.metrics import evaluate_ucm2

NTHRESH = 99


def _init_worker() -> None:
    torch.set_num_threads(1)


def _score(job: tuple) -> Any:
    ucm2, gts, boundaries, name = job
    return evaluate_ucm2(ucm2, gts, nthresh=NTHRESH, boundaries=boundaries, name=name)


class UCMBenchmark:
    """A context manager scoring ucm2 maps; ``seconds`` accumulates the scoring time."""

    def __init__(
        self, workers: int = 1, *, boundaries: bool = True, cache: Path | None = None
    ) -> None:
        self.workers = int(workers)
        self.boundaries = bool(boundaries)
        self.cache = None if cache is None else Path(cache)
        self.seconds = 0.0
        self.reused = 0
        self._pool = None

    def __enter__(self) -> UCMBenchmark:
        if self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def score(
        self,
        ucms: Sequence[Tensor],
        ground_truths: Sequence[Sequence[Tensor]],
        names: Sequence[str] | None = None,
        *,
        boundaries: bool | None = None,
    ) -> list[Any]:
        """``ImageEvaluation`` of each ``ucm2`` against its human segmentations."""
        boundaries = self.boundaries if boundaries is None else boundaries
        jobs = [
            (
                np.asarray(u.detach().cpu().numpy() if isinstance(u, Tensor) else u, np.float64),
                [np.asarray(g) for g in gts],
                boundaries,
                None if names is None else names[i],
            )
            for i, (u, gts) in enumerate(zip(ucms, ground_truths, strict=True))
        ]
        start = time.perf_counter()
        keys = [_job_key(job) for job in jobs] if self.cache is not None else [None] * len(jobs)
        out: list[Any] = [self._cached(key) for key in keys]
        todo = [i for i, result in enumerate(out) if result is None]
        self.reused += len(jobs) - len(todo)
        work = [jobs[i] for i in todo]
        done = list(self._pool.map(_score, work)) if self._pool is not None else map(_score, work)
        for i, result in zip(todo, done, strict=True):
            out[i] = result
            self._store(keys[i], result)
        self.seconds += time.perf_counter() - start
        return out

    def _cached(self, key: str | None) -> Any:
        if key is None or self.cache is None:
            return None
        path = self.cache / f"{key}.pkl"
        if not path.is_file():
            return None
        with path.open("rb") as f:
            return pickle.load(f)

    def _store(self, key: str | None, result: Any) -> None:
        if key is None or self.cache is None:
            return
        self.cache.mkdir(parents=True, exist_ok=True)
        path = self.cache / f"{key}.pkl"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as f:
            pickle.dump(result, f)
        os.replace(tmp, path)


def _job_key(job: tuple) -> str:
    ucm2, gts, boundaries, name = job
    h = hashlib.sha1(f"evaluate_ucm2/1 {NTHRESH} {boundaries} {name}".encode())
    for a in (ucm2, *gts):
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()
