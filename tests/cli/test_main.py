"""The `matbackprop` command: tasks from the registry, presets, shortcut commands, errors."""

from __future__ import annotations

import pytest

from matbackprop.cli import main
from matbackprop.cli._main import _overrides, build_parser
from matbackprop.tasks import TASKS, get_task


def test_every_registered_task_is_a_command_choice():
    parser = build_parser()
    for command in ("run", "train", "eval"):
        args = parser.parse_args([command, "o2p", *(["--checkpoint", "x"] * (command == "eval"))])
        assert args.task == "o2p"
    shortcuts = [info.command for info in TASKS.values() if info.command]
    assert shortcuts == ["demo"]
    assert parser.parse_args(["demo"]).task == "demo"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "nonsense"])


def test_flags_become_overrides_in_order():
    parser = build_parser()
    demo = get_task("demo")
    args = parser.parse_args(
        ["demo", "--quick", "--steps", "2", "--seed", "3", "--out", "x/y", "--set", "k_max=3"]
    )
    items = _overrides(demo, args)
    assert items[: len(demo.PRESETS["quick"])] == list(demo.PRESETS["quick"])
    # --set after the preset, then the flags: the last word wins
    assert items[len(demo.PRESETS["quick"]) :] == [
        "k_max=3", "train.steps=2", "train.seed=3", "train.out_dir=x", "train.name=y",
    ]  # fmt: skip
    train = parser.parse_args(["train", "ncuts", "--out", "runs2", "--device", "cpu"])
    assert _overrides(get_task("ncuts"), train) == ["train.device=cpu", "train.out_dir=runs2"]


def test_errors_are_one_line(capsys):
    assert main(["eval", "ncuts", "--checkpoint", "/nonexistent/last.pt"]) == 2
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err
    assert main(["train", "o2p", "--preset", "huge"]) == 2
    assert "has no preset 'huge'" in capsys.readouterr().err
    assert main(["run", "demo", "--set", "k_max=1"]) == 2
    assert "`k_max` must be >= 2" in capsys.readouterr().err


def test_the_registry_checks_the_task_interface(monkeypatch):
    import types

    from matbackprop import tasks

    fake = types.ModuleType("matbackprop_fake_task")
    fake.DESCRIPTION = "x"
    monkeypatch.setitem(__import__("sys").modules, "matbackprop_fake_task", fake)
    monkeypatch.setitem(tasks.TASKS, "fake", tasks.TaskInfo("matbackprop_fake_task", "x"))
    with pytest.raises(TypeError, match="lacks METHODS, Config"):
        get_task("fake")
    with pytest.raises(ValueError, match="unknown task"):
        get_task("none")
