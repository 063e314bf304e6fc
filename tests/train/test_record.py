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
