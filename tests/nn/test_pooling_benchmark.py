"""The O2P pooling benchmark runs end to end in its quick configuration (no timing asserts)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_o2p_pooling.py"


def _load_benchmark():
    if not SCRIPT.is_file():
        pytest.skip(f"benchmark script not found at {SCRIPT}")
    name = "bench_o2p_pooling"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_writes_expected_json(tmp_path, capsys):
    bench = _load_benchmark()
    out = tmp_path / "o2p.json"
    payload = bench.main(["--quick", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(payload))
    assert {
        "benchmark",
        "command",
        "config",
        "environment",
        "settings",
        "route_crossover_seconds",
    } <= written.keys()
    for times in written["route_crossover_seconds"].values():
        assert set(times) == {"gram", "covariance"} and min(times.values()) > 0
    assert set(written["settings"]) == {"superpixels", "candidates"}
    methods = {"first_order", "o2p_covariance", "o2p_gram", "o2p_auto"}
    for result in written["settings"].values():
        for key in (
            "head_seconds",
            "head_seconds_min",
            "head_ratio",
            "end_to_end_seconds",
            "end_to_end_seconds_min",
            "end_to_end_ratio",
        ):
            assert set(result[key]) == methods
            assert all(v > 0 for v in result[key].values())
        assert result["head_ratio"]["first_order"] == 1.0
        assert result["support"]["regions"] == written["config"]["regions"]
        # both float32 routes stay close to the float64 reference
        accuracy = result["accuracy"]
        assert accuracy["max_abs_error_gram_float32"] < 1e-2 * accuracy["max_abs_reference"]
    assert "| setting | method |" in capsys.readouterr().out


def test_candidate_regions_cover_the_configured_area_range():
    bench = _load_benchmark()
    import torch

    config = bench.QUICK
    masks = bench.candidate_masks(config, torch.Generator().manual_seed(0))
    assert masks.shape == (config.batch, config.regions, config.map_size, config.map_size)
    area = masks.flatten(2).sum(-1) / config.map_size**2
    assert (area >= config.candidate_min_fraction).all()
    superpixels = bench.superpixel_masks(config, torch.Generator().manual_seed(0))
    assert (superpixels.sum(1) == 1).all()  # a partition: every pixel in exactly one cell
