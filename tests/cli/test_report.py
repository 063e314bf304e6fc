"""`matbackprop report` turns run outputs into Markdown; bad inputs are clear errors."""

from __future__ import annotations

import json

from matbackprop.cli import main


def _metrics(tmp_path):
    from PIL import Image

    figure = tmp_path / "fig.png"
    Image.new("RGB", (4, 4)).save(figure)
    data = {
        "task": "demo",
        "methods": {
            "a": {"covering_ods": 0.5, "pri_ods": 0.7},
            "b": {"covering_ods": 0.6, "pri_ods": 0.8},
        },
        "command": "matbackprop demo --out x",
        "figure": str(figure),
        "wall_time_seconds": 12.0,
    }
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(data))
    return path


def test_report_has_table_command_and_figure(tmp_path):
    out = tmp_path / "results" / "r.md"
    assert main(["report", str(_metrics(tmp_path)), "--output", str(out), "--title", "T"]) == 0
    text = out.read_text()
    assert "# T" in text and "| a | 0.500 | 0.700 |" in text and "| b | 0.600 | 0.800 |" in text
    assert "matbackprop demo --out x" in text and "(r.png)" in text
    assert (out.parent / "r.png").is_file()


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none.json"), "--output", str(tmp_path / "r.md")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["report", str(bad), "--output", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert "none.json" in err and "bad.json" in err
