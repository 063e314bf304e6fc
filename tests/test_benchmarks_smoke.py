"""Benchmarks run (quick mode) and write the JSON they promise; no timing assertions."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
