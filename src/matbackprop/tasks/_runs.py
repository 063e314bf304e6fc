"""The two records every task writes: ``run.json`` after training, ``metrics.json`` after
evaluation (both :class:`~matbackprop.train.RunRecord`), and the repetition of a task's run
over several seeds (``train.seeds``).

Several seeds, for any task: decorate the task's one-seed ``train`` with
:func:`train_over_seeds` and its ``evaluate`` with :func:`evaluate_over_seeds`. Without
``train.seeds`` they call the task as it is. With ``train.seeds = [s, ...]`` they run it once
per seed, with ``train.seed = s`` in ``<run_dir>/seed_<s>/`` (where each seed's own ``run.json``,
checkpoints and ``metrics.json`` go, exactly as a single run writes them), and write the
combined record (:meth:`~matbackprop.train.RunRecord.combine_seeds`: per-seed values, mean ±
std, n) as ``<run_dir>/run.json`` and ``<out_dir>/metrics.json``. ``evaluate_over_seeds``
takes an optional ``compare(config, records)`` that returns the record's ``comparisons`` (e.g.
paired bootstrap intervals between methods), given the evaluation record of each seed.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matbackprop.train import (
    CommandRecord,
    RunRecord,
    config_to_dict,
    environment,
    is_main_process,
    recording,
    resolve_device,
)

RUN_RECORD = "run.json"
METRICS = "metrics.json"

#: ``compare(config, {seed: evaluation record}) -> comparisons`` (see the module docstring);
#: the key is None for a run without ``train.seeds``.
Compare = Callable[[Any, dict[int | None, RunRecord]], list[dict[str, Any]]]


def _previous(run_dir: Path) -> RunRecord | None:
    path = run_dir / RUN_RECORD
    return RunRecord.load(path) if path.is_file() else None


def save_training_record(
    task: str,
    config: Any,
    command: CommandRecord,
    methods: dict[str, dict[str, Any]],
    *,
    resume: bool,
    details: dict[str, Any] | None = None,
) -> RunRecord:
    """``<run_dir>/run.json`` after a ``train`` call: the trainer summary of each method trained
    (added to those of the run being resumed) and the commands so far (on the main process)."""
    run_dir = config.train.run_dir
    record = (_previous(run_dir) if resume else None) or RunRecord(task)
    record.methods = {**record.methods, **methods}
    record.details = {**record.details, **(details or {})}
    record.config = config_to_dict(config)
    record.environment = environment(str(resolve_device(config.train.device)))
    record.run_dir = str(run_dir)
    record.add_command(command)
    if is_main_process():
        record.save(run_dir / RUN_RECORD)
    return record


def save_evaluation_record(
    task: str,
    config: Any,
    command: CommandRecord,
    *,
    run_dir: Path,
    out_dir: Path,
    split: str,
    methods: dict[str, dict[str, Any]],
    figures: list[Path],
    details: dict[str, Any],
    device: Any,
    training: dict[str, dict[str, Any]] | None = None,
) -> RunRecord:
    """``<out_dir>/metrics.json``: the metrics of each method, with the training commands and
    summaries of ``run_dir`` (``training`` replaces the summaries if given) and this command."""
    trained = _previous(run_dir)
    record = RunRecord(
        task=task,
        split=split,
        methods=methods,
        training=training if training is not None else (trained.methods if trained else {}),
        commands=list(trained.commands) if trained else [],
        environment=environment(device),
        config=config_to_dict(config),
        figures=[str(f) for f in figures],
        details=details,
        run_dir=str(run_dir),
    )
    record.add_command(command)
    record.save(Path(out_dir) / METRICS)
    return record


# --------------------------------------------------------------------------------------------
# several seeds
# --------------------------------------------------------------------------------------------


def seed_folder(seed: int) -> str:
    """The run folder of one seed inside the run folder of several: ``seed_<s>``."""
    return f"seed_{seed}"


def seed_configs(config: Any) -> dict[int, Any]:
    """``{seed: config}`` of each seed of ``config.train.seeds``: ``train.seed = s``,
    ``train.seeds = None`` and the run folder ``<run_dir>/seed_<s>``; ``{}`` without seeds.

    A task whose config writes outputs of its own outside the run folder (e.g. the ncuts task's
    ``save_segmentations``) gives its ``Config`` a method ``for_seed(seed, first) -> dict`` of
    the fields to change for that seed, so that no seed overwrites another.
    """
    seeds = config.train.seeds
    if seeds is None:
        return {}
    run_dir = config.train.run_dir
    configs = {}
    for i, s in enumerate(seeds):
        changes: dict[str, Any] = {
            "train": dataclasses.replace(
                config.train, seed=s, seeds=None, out_dir=run_dir, name=seed_folder(s)
            )
        }
        for_seed = getattr(config, "for_seed", None)
        if for_seed is not None:
            changes.update(for_seed(s, first=i == 0))
        configs[s] = dataclasses.replace(config, **changes)
    return configs


def train_over_seeds(train_one: Callable[..., RunRecord]) -> Callable[..., RunRecord]:
    """A task's ``train(config, *, resume=False)`` that honours ``train.seeds`` (see the
    module docstring), from the task's ``train`` of one seed.

    With seeds, ``resume`` resumes each seed whose folder exists and starts the others fresh
    (``FileNotFoundError`` if none exists); an interrupted seed ends the call.
    """

    @functools.wraps(train_one)
    def train(config: Any, *, resume: bool = False) -> RunRecord:
        runs = seed_configs(config)
        if not runs:
            return train_one(config, resume=resume)
        run_dir = config.train.run_dir
        if resume and not any(c.train.run_dir.is_dir() for c in runs.values()):
            raise FileNotFoundError(
                f"nothing to resume: no seed folder of {sorted(runs)} under {run_dir}"
            )
        with recording("train", resume=resume) as command:
            records: dict[int, RunRecord] = {}
            for seed, one in runs.items():
                records[seed] = train_one(one, resume=resume and one.train.run_dir.is_dir())
                if records[seed].interrupted:
                    break
            record = RunRecord.combine_seeds(
                records, config=config_to_dict(config), run_dir=run_dir
            )
            record.add_command(command)
            if is_main_process():
                record.save(run_dir / RUN_RECORD)
            return record

    return _with_seed_note(train, "train_over_seeds")


def evaluate_over_seeds(
    evaluate_one: Callable[..., RunRecord] | None = None, *, compare: Compare | None = None
):
    """A task's ``evaluate(config, *, checkpoint=None, split=None, out_dir=None)`` that
    honours ``train.seeds`` (see the module docstring), from the task's ``evaluate`` of one
    seed; usable as ``@evaluate_over_seeds`` or ``@evaluate_over_seeds(compare=...)``.

    With seeds, ``checkpoint`` must be the run folder holding ``seed_<s>/`` (default
    ``train.run_dir``): seed ``s`` is evaluated from ``<checkpoint>/seed_<s>`` into
    ``<out_dir>/seed_<s>``, and the combined record is written to ``<out_dir>/metrics.json``
    (``out_dir`` defaults to ``train.run_dir``, as for one run). ``compare`` adds
    ``comparisons`` (also to a run without seeds, whose ``metrics.json`` is then rewritten).
    """
    if evaluate_one is None:
        return functools.partial(evaluate_over_seeds, compare=compare)

    @functools.wraps(evaluate_one)
    def evaluate(
        config: Any,
        *,
        checkpoint: str | Path | None = None,
        split: str | None = None,
        out_dir: str | Path | None = None,
    ) -> RunRecord:
        out = Path(out_dir or config.train.run_dir)
        runs = seed_configs(config)
        if not runs:
            record = evaluate_one(config, checkpoint=checkpoint, split=split, out_dir=out)
            if compare is not None:
                record.comparisons = compare(config, {None: record})
                record.save(out / METRICS)
            return record
        root = Path(checkpoint or config.train.run_dir)
        if not root.is_dir():
            raise ValueError(
                f"with `train.seeds` {config.train.seeds}, `checkpoint` must be the run folder "
                f"holding {seed_folder(config.train.seeds[0])}/ ..., got {root} (to evaluate one "
                "seed's run, set train.seeds=none)"
            )
        with recording("eval", split=split, out_dir=str(out)) as command:
            records = {
                seed: evaluate_one(
                    one,
                    checkpoint=root / seed_folder(seed),
                    split=split,
                    out_dir=out / seed_folder(seed),
                )
                for seed, one in runs.items()
            }
            record = RunRecord.combine_seeds(records, config=config_to_dict(config), run_dir=root)
            if compare is not None:
                record.comparisons = compare(config, dict(records))  # type: ignore[arg-type]
            record.add_command(command)
            record.save(out / METRICS)
            return record

    return _with_seed_note(evaluate, "evaluate_over_seeds")


def _with_seed_note(function: Callable[..., RunRecord], wrapper: str) -> Callable[..., RunRecord]:
    """``function`` with a last docstring paragraph on ``train.seeds``."""
    function.__doc__ = (function.__doc__ or "") + (
        "\n\n    With ``train.seeds``: once per seed, in ``seed_<s>/`` of the run folder (see "
        f":func:`matbackprop.tasks._runs.{wrapper}`)."
    )
    return function
