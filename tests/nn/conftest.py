"""Fixtures shared by the nn tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """These tensors are tiny: one intra-op thread avoids OpenMP oversubscription stalls when
    the suite runs beside other jobs (pytest -n 2 on 2 cores). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
