"""RunRecord: one schema for run.json and metrics.json; commands; the legacy layouts."""

from __future__ import annotations

import json

import pytest

from matbackprop.errors import DataFileError
from matbackprop.train import CommandRecord, RunRecord, recording


def test_record_roundtrip_and_table(tmp_path):
    record = RunRecord(
        task="t",
        split="val",
        methods={"a": {"accuracy": 0.5, "pri_ods": 0.25}, "b": {"accuracy": 0.75}},
        details={"images": 3},
    )
    with recording("eval", split="val") as command:
        record.add_command(command)
    path = record.save(tmp_path / "metrics.json")
    back = RunRecord.load(path)
    assert back == record and back.commands[0].details == {"split": "val"}
    assert back.commands[0].wall_time is not None and back.commands[0].argv
    # only the metrics every method has are columns
    assert back.table().splitlines() == [
        "| method | Accuracy |",
        "|---|---|",
        "| a | 0.500 |",
        "| b | 0.750 |",
    ]


def test_nested_recordings_share_one_command_and_records_do_not_repeat_it():
    with recording("demo") as outer:
        with recording("train", resume=True) as inner:
            assert inner is outer and outer.details == {"resume": True}
        train = RunRecord("t")
        train.add_command(inner)
        evaluation = RunRecord("t", commands=list(train.commands))
        with recording("eval") as again:
            evaluation.add_command(again)
    assert [c.command for c in evaluation.commands] == ["demo"]
    with recording("eval") as separate:  # a new command (another start time) is appended
        evaluation.add_command(separate)
    assert [c.command for c in evaluation.commands] == ["demo", "eval"]


def test_interrupted_is_read_from_the_training_summaries():
    assert not RunRecord("t", methods={"a": {"interrupted": False}}).interrupted
    both = {"a": {"interrupted": False}, "b": {"interrupted": True}}
    assert RunRecord("t", methods=both).interrupted


DEMO = {"task": "demo", "command": "matbackprop demo", "wall_time_seconds": 111}
NCUTS = {"task": "ncuts", "commands": ["a", "matbackprop eval"], "wall_time_seconds": 5}
O2P_COMMAND = {"command": "eval", "argv": ["m", "eval"], "wall_time": 40.2, "split": "v"}


@pytest.mark.parametrize(
    ("legacy", "shell", "wall"),
    [
        (DEMO, "matbackprop demo", 111),
        (NCUTS, "matbackprop eval", 5),
        ({"task": "o2p", "commands": [O2P_COMMAND]}, "m eval", 40.2),
    ],
    ids=["demo-string", "ncuts-strings", "o2p-dicts"],
)
def test_the_three_legacy_layouts_are_upgraded(tmp_path, legacy, shell, wall):
    data = {
        **legacy,
        "methods": {"m": {"accuracy": 1.0}},
        "settings": {"n": 1},
        "figure": "f.png",
        "environment": {"torch": "x"},
        "checkpoint": "c.pt",  # not shown by the old reports: not a detail
    }
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(data))
    record = RunRecord.load(path)
    assert record.task == legacy["task"] and record.methods == data["methods"]
    assert (record.commands[-1].shell, record.commands[-1].wall_time) == (shell, wall)
    assert record.details == {"settings": {"n": 1}} and record.figures == ["f.png"]
    assert record.environment == {"torch": "x"}


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        RunRecord.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataFileError, match="not valid JSON"):
        RunRecord.load(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"schema": "matbackprop.run/1", "task": "t", "extra": 1}))
    with pytest.raises(DataFileError, match="not a matbackprop run record"):
        RunRecord.load(other)
    other.write_text(json.dumps({"steps": 3}))
    with pytest.raises(DataFileError, match="no 'methods' entry"):
        RunRecord.load(other)


def test_command_text_shows_the_wall_time():
    assert CommandRecord("train", "matbackprop train x", wall_time=41.6).shell_text() == (
        "matbackprop train x  # 42 s"
    )
    assert CommandRecord("", "matbackprop demo").shell_text() == "matbackprop demo"


# ------------------------------------------------------------------ several seeds


def _seed_record(seed: int, accuracy: float, command: CommandRecord) -> RunRecord:
    return RunRecord(
        task="t",
        split="val",
        methods={
            "a": {"accuracy": accuracy, "checkpoint": f"s{seed}/a.pt", "done": True},
            "b": {"accuracy": 0.5, "steps": 10 + seed},
        },
        training={"a": {"train_time": 10.0 * (seed + 1)}},
        commands=[command],
        figures=[f"fig{seed}.png"],
        details={"images": 3, "file": f"s{seed}.npz"},
        environment={"seed_env": seed},
    )


def test_combine_seeds_keeps_each_seed_and_gives_mean_std_n():
    train = CommandRecord("train", "matbackprop train t", started="2020", argv=["x"])
    records = {s: _seed_record(s, acc, train) for s, acc in ((2, 0.9), (0, 0.5), (1, 0.7))}
    combined = RunRecord.combine_seeds(records, config={"k": 1}, run_dir="runs/t")
    assert combined.seeds == [0, 1, 2]
    # every seed's entry unchanged, keyed by seed
    assert combined.per_seed["a"] == {str(s): records[s].methods["a"] for s in (0, 1, 2)}
    # mean and sample std (ddof 1): 0.5, 0.7, 0.9 -> 0.7 +- 0.2; strings and bools are no metric
    spread = combined.aggregate["a"]["accuracy"]
    assert spread["n"] == 3 and spread["mean"] == pytest.approx(0.7)
    assert spread["std"] == pytest.approx(0.2)
    assert set(combined.aggregate["a"]) == {"accuracy"}
    assert combined.methods == {
        "a": {"accuracy": pytest.approx(0.7)},
        "b": {"accuracy": 0.5, "steps": pytest.approx(11.0)},
    }
    assert combined.aggregate["b"]["accuracy"]["std"] == 0.0
    assert combined.training == {"a": {"train_time": pytest.approx(20.0)}}
    # one command listed once; the details all seeds share, the first seed's figures, the last
    # seed's environment
    assert [c.command for c in combined.commands] == ["train"]
    assert combined.figures == ["fig0.png"] and combined.details == {"images": 3}
    assert combined.environment == {"seed_env": 2}
    assert (combined.config, combined.run_dir) == ({"k": 1}, "runs/t")


def test_a_combined_record_round_trips_and_renders_mean_std_and_each_seed(tmp_path):
    train = CommandRecord("train", "matbackprop train t", started="2020", argv=["x"])
    records = {s: _seed_record(s, acc, train) for s, acc in ((0, 0.5), (1, 0.7), (2, 0.9))}
    combined = RunRecord.combine_seeds(records)
    combined.comparisons = [
        {
            "method": "a",
            "baseline": "b",
            "metric": "accuracy",
            "difference": 0.2,
            "low": -0.05,
            "high": 0.41,
            "confidence": 0.95,
        }
    ]
    back = RunRecord.load(combined.save(tmp_path / "metrics.json"))
    assert back == combined and back.schema == "matbackprop.run/2"
    assert back.table().splitlines() == [
        "| method | Accuracy |",
        "|---|---|",
        "| a | 0.700 ± 0.200 |",
        "| b | 0.500 ± 0.000 |",
    ]
    assert back.seed_table().splitlines()[2:] == [
        "| a | 0.500, 0.700, 0.900 |",
        "| b | 0.500, 0.500, 0.500 |",
    ]
    assert back.comparison_table().splitlines()[2:] == [
        "| a − b | Accuracy | +0.200 | 95% [-0.050, +0.410] |"
    ]
    # a single run renders plain cells, no seed table and no comparison table
    single = records[0]
    assert "±" not in single.table() and single.seed_table() == ""
    assert single.comparison_table() == ""


def test_one_seed_has_no_spread_and_an_interrupted_seed_is_seen():
    train = CommandRecord("train", "t", started="2020", argv=["x"])
    one = RunRecord.combine_seeds({4: _seed_record(4, 0.5, train)})
    assert one.aggregate["a"]["accuracy"] == {"mean": 0.5, "std": None, "n": 1}
    assert one.table().splitlines()[2] == "| a | 0.500 |"
    stopped = RunRecord("t", methods={"a": {"interrupted": True, "step": 3}})
    combined = RunRecord.combine_seeds({0: RunRecord("t", methods={"a": {"step": 5}}), 1: stopped})
    assert "interrupted" not in combined.methods["a"] and combined.interrupted


def test_combine_seeds_errors():
    with pytest.raises(ValueError, match="at least one"):
        RunRecord.combine_seeds({})
    with pytest.raises(ValueError, match="one task and split"):
        RunRecord.combine_seeds({0: RunRecord("t", split="a"), 1: RunRecord("t", split="b")})
    combined = RunRecord.combine_seeds({0: RunRecord("t")})
    with pytest.raises(ValueError, match="already combines"):
        RunRecord.combine_seeds({0: combined})
    with pytest.raises(ValueError, match="must be a RunRecord"):
        RunRecord.combine_seeds({0: {"task": "t"}})


def test_a_schema_1_record_is_read_as_a_single_run(tmp_path):
    path = tmp_path / "metrics.json"
    old = {"schema": "matbackprop.run/1", "task": "o2p", "methods": {"a": {"accuracy": 0.5}}}
    path.write_text(json.dumps(old))
    record = RunRecord.load(path)
    assert record.schema == "matbackprop.run/2" and record.methods == old["methods"]
    assert (record.seeds, record.per_seed, record.aggregate, record.comparisons) == ([], {}, {}, [])
    path.write_text(json.dumps({**old, "schema": "matbackprop.run/9"}))
    with pytest.raises(DataFileError, match="unknown run record schema"):
        RunRecord.load(path)
