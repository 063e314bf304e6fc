"""Argument parsing and dispatch for the ``matbackprop`` command.

Commands: ``run TASK`` (train, then evaluate, in the task's run folder), ``train TASK``,
``eval TASK``, ``report``, ``segment`` (image files with the shipped weights or a checkpoint),
``export TASK`` (a checkpoint as shipped weights), and the shortcut commands that tasks register
(``demo`` is ``run demo``). Tasks come from the registry :data:`matbackprop.tasks.TASKS`; this
module uses
only the task interface (``Config``, ``PRESETS``, ``train``, ``evaluate``) and knows nothing
else about them.

Errors a user can fix (bad arguments, missing or corrupt files, invalid configs) are printed as
one ``error: ...`` line with exit status 2, never as a traceback; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from matbackprop.tasks import TASKS, get_task

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
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
    p.add_argument("--preset", default=None, help="a named set of overrides the task offers")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config entry, e.g. --set train.steps=200 (repeatable)",
    )
    p.add_argument("--data-root", type=Path, default=None, help="dataset root (official layout)")
    p.add_argument(
        "--seeds",
        default=None,
        metavar="S,S,...",
        help="one run per seed, e.g. --seeds 0,1,2 (train.seeds): each in <run>/seed_<s>/, "
        "reported as mean ± std",
    )


def _add_training(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="log and skip unreadable images/annotations instead of stopping",
    )


def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", type=Path, default=None, help="the run folder (default: from the config)"
    )
    p.add_argument("--steps", type=_positive_int, default=None, help="training steps")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (train.seed)")
    p.add_argument("--quick", action="store_true", help="a tiny configuration (--preset quick)")
    _add_config(p)
    _add_training(p)
    _add_common(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matbackprop",
        description="Matrix backpropagation: DeepNCuts and DeepO2P experiments.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = sorted(TASKS)
    tasks_help = "; ".join(f"{name}: {TASKS[name].description}" for name in names)

    run = sub.add_parser("run", help="train a task, then evaluate it, in its run folder")
    run.add_argument("task", choices=names, help=tasks_help)
    _add_run(run)
    for name, info in TASKS.items():
        if info.command:
            shortcut = sub.add_parser(
                info.command,
                help=f"{info.description} (= matbackprop run {name})",
                description=f"Train, then evaluate, the {name!r} task: {info.description}. "
                "Writes metrics.json and pictures into the run folder.",
            )
            shortcut.set_defaults(task=name)
            _add_run(shortcut)

    train = sub.add_parser("train", help="train a task (every method that learns)")
    train.add_argument("task", choices=names, help=tasks_help)
    _add_config(train)
    train.add_argument("--out", type=Path, default=None, help="parent of the run folders")
    _add_training(train)
    _add_common(train)

    evaluate = sub.add_parser("eval", help="evaluate a checkpoint and the baselines")
    evaluate.add_argument("task", choices=names, help=tasks_help)
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument("--split", default=None, help="split to evaluate (e.g. val, val2017)")
    _add_config(evaluate)
    evaluate.add_argument("--out", type=Path, default=None, help="output folder")
    evaluate.add_argument(
        "--save-segmentations",
        type=Path,
        default=None,
        metavar="DIR",
        help="write each method's segmentations in the BSDS format, DIR/<method>/<id>.mat "
        "(tasks with a save_segmentations setting; other seeds in DIR/seed_<s>/)",
    )
    _add_common(evaluate)

    segment = sub.add_parser(
        "segment",
        help="segment image files (BSDS .mat, 16-bit label PNG, boundary overlay per image)",
        description="Segment JPEG/PNG files with the shipped pretrained DeepNCuts weights (or a "
        "checkpoint of `matbackprop train`). Per image in --out: <stem>.mat (BSDS `segs`: the "
        "hierarchy coarse to fine at full resolution, and `ucm2` when the model builds one), "
        "<stem>.png (the default level, 16-bit labels) and <stem>_overlay.png.",
    )
    segment.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="files, folders")
    segment.add_argument(
        "--out", type=Path, default=Path("segmentations"), help="output folder (./segmentations)"
    )
    source = segment.add_mutually_exclusive_group()
    source.add_argument(
        "--checkpoint", type=Path, default=None, help="a checkpoint `matbackprop train` wrote"
    )
    source.add_argument(
        "--weights",
        default="deepncuts-bsds500",
        help="shipped weights name or exported .json (default: deepncuts-bsds500)",
    )
    segment.add_argument(
        "--task", default="ncuts", choices=names, help="the task of --checkpoint (ncuts)"
    )
    segment.add_argument(
        "--max-size",
        type=_positive_int,
        default=None,
        help="long side the network sees (default: full resolution; outputs stay full size)",
    )
    segment.add_argument(
        "--threshold",
        type=_unit_float,
        default=None,
        metavar="T",
        help="ucm2 threshold of the PNG/overlay level (default: the weights' validation ODS)",
    )
    segment.add_argument(
        "--skip-bad", action="store_true", help="skip unreadable images and list them"
    )
    _add_common(segment)

    export = sub.add_parser(
        "export",
        help="turn a training checkpoint into shipped pretrained weights (.pt delta + .json)",
        description="Write NAME.pt (only the tensors that differ from the ImageNet backbone) and "
        "NAME.json (config, commands, validation scores) for `matbackprop segment --weights`.",
    )
    export.add_argument("task", choices=names, help=tasks_help)
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument("--name", required=True, help="e.g. deepncuts-bsds500")
    export.add_argument(
        "--metrics", type=Path, default=None, help="metrics.json of `eval` (validation scores)"
    )
    export.add_argument(
        "--out", type=Path, default=None, help="folder (default: the package's pretrained/)"
    )
    export.add_argument("--provisional", action="store_true", help="mark as a stand-in")
    export.add_argument("--note", default="", help="free text kept in the metadata")
    export.add_argument("--debug", action="store_true", help="show tracebacks for errors")

    report = sub.add_parser("report", help="write a Markdown report from run outputs")
    report.add_argument("metrics", type=Path, nargs="+", help="metrics.json files of runs")
    report.add_argument("--output", type=Path, required=True, help="the Markdown file to write")
    report.add_argument("--title", default=None)
    report.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return parser


def _overrides(task, args: argparse.Namespace) -> list[str]:
    """``key=value`` items in order: the preset, ``--set``, then the flags that name one entry."""
    preset = "quick" if getattr(args, "quick", False) else args.preset
    items: list[str] = []
    if preset is not None:
        if preset not in task.PRESETS:
            known = ", ".join(sorted(task.PRESETS)) or "none"
            raise ValueError(f"task {args.task!r} has no preset {preset!r} (presets: {known})")
        items += task.PRESETS[preset]
    items += args.overrides
    if args.data_root is not None:
        items.append(f"data_root={args.data_root}")
    if args.device:
        items.append(f"train.device={args.device}")
    if getattr(args, "skip_bad", False):
        items.append("train.skip_bad=true")
    if getattr(args, "steps", None) is not None:
        items.append(f"train.steps={args.steps}")
    if getattr(args, "seed", None) is not None:
        items.append(f"train.seed={args.seed}")
    if args.seeds is not None:
        items.append(f"train.seeds={args.seeds}")
    if getattr(args, "save_segmentations", None) is not None:
        if not any(f.name == "save_segmentations" for f in dataclasses.fields(task.Config)):
            raise ValueError(f"task {args.task!r} does not write segmentations")
        items.append(f"save_segmentations={args.save_segmentations}")
    if args.out is not None and args.command == "train":
        items.append(f"train.out_dir={args.out}")
    elif args.out is not None and args.command not in ("train", "eval"):  # a run folder
        items += [f"train.out_dir={args.out.parent}", f"train.name={args.out.name}"]
    return items


def _task_config(task, args: argparse.Namespace):
    from matbackprop.train import apply_overrides, load_config

    if args.config is not None and not args.config.is_file():
        raise FileNotFoundError(f"config file not found: {args.config}")
    base = load_config(args.config, task.Config) if args.config is not None else task.Config()
    return apply_overrides(base, _overrides(task, args))


def _segment(args: argparse.Namespace) -> int:
    from matbackprop.tasks import load_pretrained, load_trained, segment_images
    from matbackprop.train import resolve_device

    device = resolve_device(args.device or "auto")
    if args.checkpoint is not None:
        model = load_trained(args.checkpoint, args.task, device=device)
    else:
        model = load_pretrained(args.weights, device=device)
    summary = segment_images(
        model,
        args.inputs,
        args.out,
        threshold=args.threshold,
        max_size=args.max_size,
        skip_bad=args.skip_bad,
    )
    print(summary.line(args.out))
    return 0


def _export(args: argparse.Namespace) -> int:
    from matbackprop.tasks import export_pretrained

    extra = {} if args.out is None else {"out_dir": args.out}
    path = export_pretrained(
        args.task,
        args.checkpoint,
        args.name,
        metrics=args.metrics,
        provisional=args.provisional,
        note=args.note,
        **extra,
    )
    print(f"wrote {path} and {path.with_suffix('.pt')}")
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "segment":
        return _segment(args)
    if args.command == "export":
        return _export(args)
    if args.command == "report":
        from ._report import write_report

        path = write_report(args.metrics, args.output, title=args.title)
        print(f"wrote {path}")
        return 0
    from matbackprop.train import recording

    task = get_task(args.task)
    config = _task_config(task, args)
    if args.command == "train":
        record = task.train(config, resume=args.resume)
    elif args.command == "eval":
        if not args.checkpoint.exists():
            raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
        out_dir = args.out or args.checkpoint.parent / f"eval_{args.split or 'default'}"
        record = task.evaluate(
            config, checkpoint=args.checkpoint, split=args.split, out_dir=out_dir
        )
    else:  # run, or a task's shortcut command
        start = time.perf_counter()
        with recording(args.command):
            trained = task.train(config, resume=args.resume)
            if trained.interrupted:
                print("training was interrupted; continue it with --resume", file=sys.stderr)
                return EXIT_INTERRUPTED
            record = task.evaluate(config)
        print(record.table())
        wrote = [str(config.train.run_dir / "metrics.json"), *record.figures]
        print(f"\nwrote {' and '.join(wrote)} ({time.perf_counter() - start:.0f} s)")
        return 0
    print(json.dumps(record.to_dict(), indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``matbackprop`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        if args.debug:
            raise
        print(f"matbackprop {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
