"""Benchmarks run (quick mode) and write the JSON they promise; no timing assertions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_matrix_functions_benchmark_quick(tmp_path):
    bench = _load("bench_matrix_functions")
    payload = bench.main(["--quick", "--out-dir", str(tmp_path)])
    data = json.loads((tmp_path / "matrix_functions.json").read_text())
    assert data["results"] and data["table"] == payload["table"]
    assert data["target"] == {"n": 256, "ratio_ours_over_torch": 0.70}
    assert "floor" in data["table"] and "target (both)" in data["table"]
    for entry in data["results"]:
        assert set(entry["seconds"]) >= {
            "logm/ours",
            "logm/torch",
            "sqrtm/ours",
            "sqrtm/torch",
            "sqrtm/newton_schulz",
            "eigh_forward",
            "logm/ours_backward",
        }
        # ours never produces non-finite gradients on the degenerate batch
        assert entry["nonfinite_gradients_degenerate_batch"]["logm/ours"] == 0
        assert entry["nonfinite_gradients_degenerate_batch"]["sqrtm/ours"] == 0
        assert set(entry["floor_eigh_over_torch"]) == {"logm", "sqrtm"}


def test_eigensolvers_benchmark_quick(tmp_path):
    bench = _load("bench_eigensolvers")
    threads = torch.get_num_threads()
    payload = bench.main(["--quick", "--out-dir", str(tmp_path)])
    assert torch.get_num_threads() == threads  # restored
    data = json.loads((tmp_path / "eigensolvers.json").read_text())
    assert data["table"] == payload["table"] and "best other / torch" in data["table"]
    assert {(e["dtype"], e["n"]) for e in data["results"]} == {
        (d, n) for d in ("float32", "float64") for n in (8, 16)
    }
    for entry in data["results"]:
        assert set(entry["seconds_per_matrix"]) == {"torch", "scipy_evd", "scipy_evr", "scipy_ev"}
        assert entry["ratio_best_other_over_torch"] > 0
        # every driver solves the same problem: eigenvalues agree with float64
        tol = 1e-5 if entry["dtype"] == "float32" else 1e-12
        assert max(entry["eigenvalue_relative_error"].values()) < tol, entry


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
