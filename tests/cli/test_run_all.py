"""results/run_all.sh, the script that reproduces the reports, is made of valid commands."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest

from matbackprop.cli._main import build_parser

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "results" / "run_all.sh"


def _commands() -> list[list[str]]:
    """Each ``$BIN/matbackprop ...`` line of the script (continuations joined) as argv, with
    ``$RUNS`` left as the literal folder name ``RUNS``."""
    text = SCRIPT.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        shlex.split(line.replace('"$RUNS', '"RUNS').replace("$RUNS", "RUNS"))[1:]
        for line in lines
        if line.startswith("$BIN/matbackprop ")
    ]


def test_the_script_runs_every_experiment():
    tasks = {(argv[0], argv[1]) for argv in _commands() if argv[0] in ("train", "eval")}
    assert {("train", "ncuts"), ("eval", "ncuts"), ("train", "o2p"), ("eval", "o2p")} <= tasks


@pytest.mark.parametrize("argv", _commands(), ids=lambda argv: " ".join(argv[:2]))
def test_each_command_parses(argv):
    build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "argv", [a for a in _commands() if a[0] == "eval"], ids=lambda argv: argv[1]
)
def test_eval_reads_the_run_folder_that_train_writes(argv):
    """`eval` takes the run folder `<--out of train>/<train.name>` (a method's checkpoint lies
    in `<method>/last.pt` below it, not in the folder itself)."""
    args = build_parser().parse_args(argv)
    name = tomllib.loads((ROOT / args.config).read_text())["train"]["name"]
    assert args.checkpoint == Path("RUNS") / name
    assert re.fullmatch(r"RUNS/" + re.escape(name) + r"/eval_\w+", str(args.out))
