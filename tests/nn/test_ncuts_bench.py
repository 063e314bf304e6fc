"""The NCuts benchmark runs end to end in quick mode and writes the documented JSON keys."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_ncuts.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_ncuts", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_quick_mode_writes_json(tmp_path, capsys):
    out = tmp_path / "ncuts.json"
    report = load_bench().main(["--quick", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    keys = {"benchmark", "config", "method", "baseline_rss_mib", "machine", "results", "notes"}
    assert keys | {"targets", "accuracy"} <= set(saved)
    assert saved["config"]["quick"] is True
    rows = saved["results"]
    methods = {"default", "svd", "torch", "dense"}
    assert {(r["m"], r["method"]) for r in rows} == {(256, x) for x in methods}
    for row in rows:
        assert row["status"] == "ok"
        assert {"time_s_median", "time_s_min", "times_s", "peak_rss_mib"} <= set(row)
        assert row["time_s_median"] > 0 and len(row["times_s"]) == saved["config"]["repeats"]
        assert row["ratio_to_torch"] > 0
        # every method computes the same gradient: float32 against float64, to the gap's error
        assert row["finite"] and 0 <= row["gradient_error"] < 0.1, row
    reference = next(r for r in rows if r["method"] == "torch")
    assert math.isclose(reference["ratio_to_torch"], 1.0)
    assert saved["targets"] == {"m": 2**20, "time_s": 1.0, "peak_gib": 1.0, "ratio_to_torch": 0.3}
    printed = capsys.readouterr().out
    assert "| m | method | median (s) | min (s) | ratio to torch |" in printed
    assert "ncut_pytorch" in printed and "xitorch" in printed


def test_benchmark_skips_dense_route_above_the_limits(tmp_path, capsys):
    out = tmp_path / "ncuts.json"
    report = load_bench().main(
        [
            "--quick",
            "--methods",
            "dense",
            "--sizes",
            "4096",
            "--accuracy-max-m",
            "0",
            "--dense-mem-limit-gib",
            "0.01",
            "--out",
            str(out),
        ]
    )
    (row,) = report["results"]
    assert row["status"] == "skipped" and row["est_mem_gib"] > 0.01
    assert "skipped (est." in capsys.readouterr().out


def test_crossover_sizes_straddle_the_auto_switch():
    bench = load_bench()
    cfg = bench._parser().parse_args(["--crossover"])
    cfg.d = 64
    sizes = bench._sizes(cfg)
    assert min(sizes) < 2 * 64 <= max(sizes)
