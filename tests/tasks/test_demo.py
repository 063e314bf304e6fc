"""The demo runs end to end (quick settings) through the CLI and writes what it promises."""

from __future__ import annotations

import json

from matbackprop.cli import main


def test_demo_quick_writes_metrics_and_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"classic_ncuts", "frozen_feature_ncuts", "deep_ncuts"}
    for entry in metrics["methods"].values():
        assert 0.0 <= entry["covering_ods"] <= 1.0 and 0.0 <= entry["pri_ods"] <= 1.0
        assert entry["voi_ods"] >= 0.0
    assert (out / "segmentations.png").stat().st_size > 0
    assert (out / "deep_ncuts" / "last.pt").is_file()
    assert (out / "deep_ncuts" / "metrics.jsonl").is_file()
    table = capsys.readouterr().out
    assert "| deep_ncuts |" in table and "Covering ODS" in table


def test_demo_resume_continues_from_checkpoint(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--steps", "2"]) == 0
    assert main(["demo", "--quick", "--out", str(out), "--steps", "4", "--resume"]) == 0
    log = (out / "deep_ncuts" / "metrics.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in log]
    starts = [e for e in events if e.get("event") == "start"]
    assert [e["resumed_from"] for e in starts] == [None, 2]  # the second run resumed at step 2
    assert json.loads((out / "metrics.json").read_text())["training"]["deep_ncuts"]["step"] == 4


def test_demo_records_one_command_and_reports_it(tmp_path):
    """`matbackprop demo` trains and evaluates in one process: one command in its record."""
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    (command,) = metrics["commands"]
    assert command["command"] == "demo" and command["wall_time"] > 0
    assert metrics["split"] == "test" and metrics["figures"] == [str(out / "segmentations.png")]
    report = tmp_path / "report.md"
    assert main(["report", str(out / "metrics.json"), "--output", str(report)]) == 0
    text = report.read_text()
    assert "| deep_ncuts |" in text and (tmp_path / "report.png").is_file()
