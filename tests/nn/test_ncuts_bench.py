"""The NCuts benchmark runs end to end in quick mode and writes the documented JSON keys."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_ncuts.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_ncuts", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_quick_mode_writes_json(tmp_path, capsys):
    out = tmp_path / "ncuts.json"
    report = load_bench().main(["--quick", "--routes", "lowrank,dense", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(report))
    assert {"benchmark", "config", "method", "baseline_rss_mib", "machine", "results"} <= set(saved)
    assert saved["config"]["quick"] is True
    rows = saved["results"]
    assert {(r["m"], r["route"]) for r in rows} == {(128, "lowrank"), (128, "dense")}
    for row in rows:
        assert row["status"] == "ok"
        assert {"time_s_median", "time_s_min", "times_s", "peak_rss_mib", "eigengap"} <= set(row)
        assert row["time_s_median"] > 0 and len(row["times_s"]) == saved["config"]["repeats"]
    assert "128" in saved["speedup_dense_over_lowrank"]
    table = capsys.readouterr().out
    assert "| m | route | median time (s) |" in table


def test_benchmark_skips_dense_route_above_the_limits(tmp_path, capsys):
    out = tmp_path / "ncuts.json"
    report = load_bench().main(
        [
            "--quick",
            "--routes",
            "dense",
            "--sizes",
            "4096",
            "--dense-mem-limit-gib",
            "0.01",
            "--out",
            str(out),
        ]
    )
    (row,) = report["results"]
    assert row["status"] == "skipped" and row["est_mem_gib"] > 0.01
    assert "skipped (est." in capsys.readouterr().out
