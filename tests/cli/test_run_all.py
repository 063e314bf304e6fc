"""results/run_all.sh, the script that reproduces the reports, is made of valid commands."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from matbackprop.cli._main import _task_config, build_parser
from matbackprop.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "results" / "run_all.sh"


def _commands() -> list[list[str]]:
    """Each ``$BIN/matbackprop ...`` line of the script (continuations joined) as argv, with
    ``$RUNS`` left as the literal folder name ``RUNS``."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        shlex.split(line.replace("$RUNS", "RUNS"))[1:]
        for line in lines
        if line.startswith("$BIN/matbackprop ")
    ]


def test_the_script_runs_every_experiment():
    tasks = {(argv[0], argv[1]) for argv in _commands() if argv[0] in ("train", "eval")}
    assert {("train", "ncuts"), ("eval", "ncuts"), ("train", "o2p"), ("eval", "o2p")} <= tasks


@pytest.mark.parametrize("argv", _commands(), ids=lambda argv: " ".join(argv[:2]))
def test_each_command_parses(argv):
    build_parser().parse_args(argv)


def _run_folder_of_train(task: str) -> Path:
    """The run folder the script's ``train <task>`` writes, as the CLI resolves it (config
    file, ``--set`` and ``--out``): ``config.train.run_dir``."""
    (argv,) = [a for a in _commands() if a[:2] == ["train", task]]
    args = build_parser().parse_args(argv)
    args.config = ROOT / args.config
    return _task_config(get_task(task), args).train.run_dir


@pytest.mark.parametrize(
    "argv", [a for a in _commands() if a[0] == "eval"], ids=lambda argv: argv[1]
)
def test_eval_reads_the_run_folder_that_train_writes(argv):
    """`eval` takes the run folder of `train` (the methods' checkpoints lie below it, in
    `<method>/last.pt`, or `seed_<s>/<method>/last.pt` with several seeds, never in the folder
    itself)."""
    args = build_parser().parse_args(argv)
    run_dir = _run_folder_of_train(args.task)
    assert args.checkpoint == run_dir
    assert args.out.parent == run_dir and args.out.name.startswith("eval_")
