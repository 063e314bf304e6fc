"""The two records every task writes: ``run.json`` after training, ``metrics.json`` after
evaluation (both :class:`~matbackprop.train.RunRecord`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matbackprop.train import (
    CommandRecord,
    RunRecord,
    config_to_dict,
    environment,
    is_main_process,
    resolve_device,
)

RUN_RECORD = "run.json"
METRICS = "metrics.json"


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
    record.environment = environment(resolve_device(config.train.device))
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
