"""Argument parsing and dispatch for the ``matbackprop`` command.

Errors a user can fix (bad arguments, missing or corrupt files, invalid configs) are printed as
one ``error: ...`` line with exit status 2, never as a traceback; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._tasks import TASKS, load_task

EXIT_USAGE = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default=None,
        help="cpu, cuda or cuda:<i> (default: cuda when available, else cpu)",
    )
    p.add_argument("--debug", action="store_true", help="show tracebacks for errors")


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="a TOML or YAML config file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry, e.g. --set train.steps=200 (repeatable)",
    )
    p.add_argument("--data-root", type=Path, default=None, help="dataset root (official layout)")
    p.add_argument("--out", type=Path, default=None, help="output folder (runs/<name> by default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matbackprop",
        description="Matrix backpropagation: DeepNCuts and DeepO2P experiments.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="the main job on the embedded data: DeepNCuts vs baselines on texture mosaics",
        description="Generate texture mosaics, train DeepNCuts (a small trunk from scratch) and "
        "the baselines, print covering/PRI/VoI, write runs/demo/metrics.json and a figure.",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder")
    demo.add_argument("--steps", type=_positive_int, default=None, help="training steps")
    demo.add_argument("--quick", action="store_true", help="a tiny configuration (smoke test)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--resume", action="store_true", help="continue an interrupted run")
    _add_common(demo)

    train = sub.add_parser("train", help="train a task (ncuts on BSDS500, o2p on COCO)")
    train.add_argument("task", choices=sorted(TASKS))
    _add_config(train)
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument(
        "--skip-bad",
        action="store_true",
        help="log and skip unreadable images/annotations instead of stopping",
    )
    _add_common(train)

    evaluate = sub.add_parser("eval", help="evaluate a checkpoint and the baselines")
    evaluate.add_argument("task", choices=sorted(TASKS))
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument("--split", default=None, help="split to evaluate (e.g. val, val2017)")
    _add_config(evaluate)
    _add_common(evaluate)

    report = sub.add_parser("report", help="write a Markdown report from run outputs")
    report.add_argument("metrics", type=Path, nargs="+", help="metrics.json files of runs")
    report.add_argument("--output", type=Path, required=True, help="the Markdown file to write")
    report.add_argument("--title", default=None)
    report.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return parser


def _task_config(task, args: argparse.Namespace):
    from matbackprop.train import apply_overrides, config_from_dict, load_config

    overrides = list(args.overrides)
    if args.data_root is not None:
        overrides.append(f"data_root={args.data_root}")
    if getattr(args, "device", None):
        overrides.append(f"train.device={args.device}")
    if getattr(args, "skip_bad", False):
        overrides.append("train.skip_bad=true")
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"config file not found: {args.config}")
        return load_config(args.config, task.Config, overrides)
    return apply_overrides(config_from_dict(task.Config, {}), overrides)


def _run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(
            out_dir=args.out,
            steps=args.steps,
            quick=args.quick,
            seed=args.seed,
            device=args.device,
            resume=args.resume,
        )
        return 0
    if args.command == "report":
        from ._report import write_report

        path = write_report(args.metrics, args.output, title=args.title)
        print(f"wrote {path}")
        return 0
    task = load_task(args.task)
    config = _task_config(task, args)
    if args.command == "train":
        if args.out is not None:
            config.train.out_dir = args.out
        summary = task.train(config, resume=args.resume)
    else:
        if not args.checkpoint.exists():
            raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
        out_dir = args.out or args.checkpoint.parent / f"eval_{args.split or 'default'}"
        summary = task.evaluate(
            config, checkpoint=args.checkpoint, split=args.split, out_dir=out_dir
        )
    print(json.dumps(summary, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``matbackprop`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        if args.debug:
            raise
        print(f"matbackprop {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
