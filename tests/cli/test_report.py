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
    assert "matbackprop demo --out x" in text and "![figure](r.png)" in text
    assert (out.parent / "r.png").is_file()


def test_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "none.json"), "--output", str(tmp_path / "r.md")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["report", str(bad), "--output", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert "none.json" in err and "bad.json" in err


def test_report_renders_command_records(tmp_path):
    """Tasks record commands as strings or as records with a shell line (o2p) or argv."""
    path = _metrics(tmp_path)
    data = json.loads(path.read_text())
    del data["command"]
    data["commands"] = [
        "matbackprop train ncuts --out runs",
        {"command": "train", "shell": "OMP_NUM_THREADS=1 matbackprop train o2p", "argv": ["x"]},
        {"command": "eval", "argv": ["matbackprop", "eval", "o2p"], "wall_time": 41.6},
    ]
    path.write_text(json.dumps(data))
    out = tmp_path / "r.md"
    assert main(["report", str(path), "--output", str(out)]) == 0
    block = out.read_text().split("```bash\n")[1].split("```")[0].splitlines()
    assert block == [
        "matbackprop train ncuts --out runs",
        "OMP_NUM_THREADS=1 matbackprop train o2p",
        "matbackprop eval o2p  # 42 s",
    ]


def test_report_renders_seeds_and_comparisons(tmp_path):
    """A record of several seeds: mean ± std cells, each seed's values, the comparisons and
    how they were computed; nothing in the report depends on the task."""
    from matbackprop.train import RunRecord

    seeds = {
        s: RunRecord("any", split="val", methods={"x": {"accuracy": a}, "y": {"accuracy": 0.25}})
        for s, a in ((0, 0.5), (1, 0.75))
    }
    record = RunRecord.combine_seeds(seeds)
    record.comparisons = [
        {
            "method": "x",
            "baseline": "y",
            "metric": "accuracy",
            "difference": 0.375,
            "low": 0.25,
            "high": 0.5,
            "confidence": 0.9,
            "procedure": "a cluster bootstrap",
        }
    ]
    path = record.save(tmp_path / "metrics.json")
    out = tmp_path / "r.md"
    assert main(["report", str(path), "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert "Mean ± sample standard deviation over 2 seeds (0, 1):" in lines
    assert "| x | 0.625 ± 0.177 |" in lines and "| y | 0.250 ± 0.000 |" in lines
    assert "Each seed (0, 1):" in lines and "| x | 0.500, 0.750 |" in lines
    assert "| x − y | Accuracy | +0.375 | 90% [+0.250, +0.500] |" in lines
    assert "- a cluster bootstrap" in lines


def test_report_finds_a_relative_figure_from_the_command_cwd(tmp_path, monkeypatch, capsys):
    """Figure paths are stored as the run wrote them (relative to its working directory); the
    report finds them from anywhere, and says so when a figure is gone."""
    from PIL import Image

    run_cwd = tmp_path / "worktree"
    (run_cwd / "runs").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(run_cwd / "runs" / "fig.png")
    data = {
        "task": "demo",
        "methods": {"a": {"covering_ods": 0.5}},
        "commands": [
            {"command": "eval", "shell": "matbackprop eval", "argv": [], "cwd": str(run_cwd)}
        ],
        "figures": ["runs/fig.png"],
        "schema": "matbackprop.run/2",
    }
    metrics = run_cwd / "runs" / "metrics.json"
    metrics.write_text(json.dumps(data))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = elsewhere / "r.md"
    assert main(["report", str(metrics), "--output", str(out)]) == 0
    assert "![figure](r.png)" in out.read_text() and (elsewhere / "r.png").is_file()
    (run_cwd / "runs" / "fig.png").unlink()
    assert main(["report", str(metrics), "--output", str(out)]) == 0
    assert "figure `runs/fig.png` not found" in out.read_text()
    assert "not found" in capsys.readouterr().err
