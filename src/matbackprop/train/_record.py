"""The record of a run: one dataclass, one JSON schema, written by every task, read by reports.

A :class:`RunRecord` says what a run measured and what produced it:

``schema``
    ``"matbackprop.run/2"``.
``task``, ``split``
    The task (``"ncuts"``, ``"o2p"``, ``"demo"``, ...) and the evaluated split (None for a
    training record).
``methods``
    ``{method: {name: value}}``: the evaluation metrics of each method (an evaluation record) or
    the trainer's summary of each trained method (a training record). In a record of several
    seeds: the mean over the seeds of each numeric value (so that every reader of one number
    per metric keeps working); the seeds' own values are in ``per_seed``.
``seeds``
    The training seeds of the runs this record combines (``[]``: a single run).
``per_seed``
    ``{method: {str(seed): {name: value}}}``: each seed's ``methods`` entry, unchanged.
``aggregate``
    ``{method: {name: {"mean": m, "std": s, "n": n}}}`` for every numeric value that all ``n``
    seeds of a method report: the mean and the sample standard deviation (``ddof = 1``;
    None for ``n = 1``). Derived from ``per_seed`` by :meth:`RunRecord.combine_seeds`.
``comparisons``
    Paired differences between methods with a confidence interval, each ``{"method",
    "baseline", "metric", "difference", "low", "high", "confidence"}`` (``difference`` =
    metric of ``method`` − metric of ``baseline``; ``[low, high]`` its interval) plus how it
    was computed (e.g. ``"procedure"``, ``"resamples"``, ``"clusters"``).
``training``
    In an evaluation record, the training summary of each trained method (``step``,
    ``last_loss``, ``train_time``, ``checkpoint``, ...), copied from the training record (means
    over the seeds in a record of several seeds).
``commands``
    Every command that produced the run, oldest first, as :class:`CommandRecord` (the shell line
    a user would type, with thread settings; ``argv``; start; wall time).
``environment``
    Where it ran: CPU count, torch threads and version, Python, CUDA, device.
``config``
    The task config of the last command, as plain data.
``figures``
    Paths of the pictures it wrote.
``details``
    Task-specific facts a report shows (data sizes, a baseline's tuned parameters, ...).
``run_dir``
    The training run folder (checkpoints, logs, ``run.json``).

Files: a task's ``train`` writes ``<run_dir>/run.json`` (adding its command to the commands of
the previous ``train`` calls of the run, e.g. before a resume); ``evaluate`` writes
``<out_dir>/metrics.json``, whose commands are the training commands and its own.
``matbackprop report`` reads only this schema; :meth:`RunRecord.from_dict` also upgrades what
was written before it, in one place: schema ``matbackprop.run/1`` (the same record without the
seed and comparison fields, which it reads as a single run) and the three layouts of schema 0
(a ``command`` string, a list of ``commands`` strings, or a list of command dicts; in
:func:`_upgrade_legacy`).

Several seeds: a task run with ``train.seeds`` trains and evaluates one run per seed (each
with its own ``run.json`` / ``metrics.json`` in ``seed_<s>/``); :meth:`RunRecord.combine_seeds`
makes the record of them all (``seeds``, ``per_seed``, ``aggregate``, and ``methods`` as means).

Commands are recorded by :func:`recording`, a context manager: nested uses share the outermost
record, so ``matbackprop demo`` (which trains, then evaluates) lists one command.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matbackprop.errors import DataFileError

__all__ = ["CommandRecord", "RunRecord", "environment", "recording"]

SCHEMA = "matbackprop.run/2"
#: Earlier schemas that :meth:`RunRecord.from_dict` upgrades (their fields are a subset).
COMPATIBLE_SCHEMAS = ("matbackprop.run/1",)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")

#: (title, metric key) of the columns a table shows when every method has them.
COLUMNS = (
    ("covering_ods", "Covering ODS"),
    ("covering_ois", "Covering OIS"),
    ("pri_ods", "PRI ODS"),
    ("pri_ois", "PRI OIS"),
    ("voi_ods", "VoI ODS ↓"),
    ("voi_ois", "VoI OIS ↓"),
    ("boundary_ods_f", "Boundary F ODS"),
    ("boundary_ois_f", "Boundary F OIS"),
    ("boundary_ap", "Boundary AP"),
    ("accuracy", "Accuracy"),
    ("mean_class_accuracy", "Mean class acc."),
)


def _shell_line() -> str:
    """The running command as a user would type it (thread settings first)."""
    env = " ".join(f"{k}={os.environ[k]}" for k in THREAD_VARIABLES if k in os.environ)
    program = (
        "matbackprop"
        if sys.argv and sys.argv[0].endswith("matbackprop")
        else "python " + " ".join(sys.argv[:1])
    )
    return " ".join(part for part in (env, program, *sys.argv[1:]) if part)


def environment(device: str | None = None) -> dict[str, Any]:
    """Where a run runs: CPU count, torch threads and version, Python, CUDA (and device)."""
    import platform

    import torch

    env: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
    }
    if device is not None:
        env["device"] = str(device)
    return env


@dataclass
class CommandRecord:
    """One command of a run.

    ``command`` is what it did (``"train"``, ``"eval"``, ``"demo"``); ``shell`` the line to
    type again; ``argv`` the process arguments; ``started`` its ISO start time (UTC), which
    with ``argv`` identifies it; ``wall_time`` its seconds (None where unknown: upgraded
    records); ``details`` what the call did that its ``argv`` may not show (``resume``, the
    split, whether it was interrupted), since a Python call has no argv of its own.
    """

    command: str
    shell: str
    argv: list[str] = field(default_factory=list)
    cwd: str = ""
    started: str = ""
    wall_time: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    _clock: float | None = field(default=None, repr=False, compare=False)

    @classmethod
    def now(cls, command: str, **details: Any) -> CommandRecord:
        """The command this process is running, starting now."""
        return cls(
            command=command,
            shell=_shell_line(),
            argv=list(sys.argv),
            cwd=os.getcwd(),
            started=datetime.now(tz=UTC).isoformat(timespec="microseconds"),
            details=dict(details),
            _clock=time.monotonic(),
        )

    def same_as(self, other: CommandRecord) -> bool:
        return bool(self.started) and (self.started, self.argv) == (other.started, other.argv)

    def tick(self) -> CommandRecord:
        """Update ``wall_time`` to the seconds since the start (of a running command)."""
        if self._clock is not None:
            self.wall_time = round(time.monotonic() - self._clock, 3)
        return self

    def shell_text(self) -> str:
        """``shell``, with the wall time as a trailing comment when it is known."""
        if self.wall_time is None:
            return self.shell
        return f"{self.shell}  # {self.wall_time:.0f} s"

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.init and not f.name.startswith("_")
        }


_CURRENT: contextvars.ContextVar[CommandRecord | None] = contextvars.ContextVar(
    "matbackprop_command", default=None
)


@contextmanager
def recording(command: str, **details: Any) -> Iterator[CommandRecord]:
    """Record the command that runs inside the block (see the module docstring).

    The outermost ``recording`` creates the :class:`CommandRecord`; nested ones yield the same
    record, adding their ``details``. Its ``wall_time`` is brought up to date by
    :meth:`RunRecord.add_command` each time a record is written.
    """
    outer = _CURRENT.get()
    if outer is not None:
        outer.details.update(details)
        yield outer
        return
    record = CommandRecord.now(command, **details)
    token = _CURRENT.set(record)
    try:
        yield record
    finally:
        record.tick()
        _CURRENT.reset(token)


@dataclass
class RunRecord:
    """What a run measured and what produced it; see the module docstring for each field."""

    task: str
    split: str | None = None
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    training: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: list[CommandRecord] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    seeds: list[int] = field(default_factory=list)
    per_seed: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    aggregate: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    schema: str = SCHEMA

    @property
    def interrupted(self) -> bool:
        """Whether a trained method of this (training) record stopped before its last step
        (in any seed)."""
        entries = [*self.methods.values()]
        entries += [e for runs in self.per_seed.values() for e in runs.values()]
        return any(bool(m.get("interrupted")) for m in entries)

    @classmethod
    def combine_seeds(
        cls,
        records: Mapping[int, RunRecord],
        *,
        config: dict[str, Any] | None = None,
        run_dir: str | Path | None = None,
    ) -> RunRecord:
        """The record of the runs of several seeds, ``{seed: record}`` (in seed order).

        ``per_seed`` holds each seed's ``methods`` entries; ``aggregate`` the mean, sample
        standard deviation and count of every numeric value (bools excluded) that all seeds of
        a method report; ``methods`` and ``training`` the means. Commands are merged (each
        listed once, in order); ``details`` are those every seed reports with one value (the
        others stay in each seed's own record); the environment is the last seed's and the
        figures the first seed's. ``config`` and ``run_dir`` describe the combined run
        (default: the first seed's).

        Raises
        ------
        ValueError
            For no records, a record that is itself combined, or records of different tasks
            or splits.
        """
        if not records:
            raise ValueError("`records` must hold at least one seed's record, got none")
        seeds = sorted(records)
        runs = [records[s] for s in seeds]
        first = runs[0]
        for seed, record in zip(seeds, runs, strict=True):
            if not isinstance(record, RunRecord):
                raise ValueError(f"`records[{seed}]` must be a RunRecord, got {type(record)}")
            if record.seeds:
                raise ValueError(f"`records[{seed}]` already combines seeds {record.seeds}")
            if (record.task, record.split) != (first.task, first.split):
                raise ValueError(
                    f"`records` must share one task and split, got {(first.task, first.split)} "
                    f"and {(record.task, record.split)} (seed {seed})"
                )
        per_seed: dict[str, dict[str, dict[str, Any]]] = {}
        for seed, record in zip(seeds, runs, strict=True):
            for method, entry in record.methods.items():
                per_seed.setdefault(method, {})[str(seed)] = dict(entry)
        aggregate = {m: _seed_statistics(list(r.values())) for m, r in per_seed.items()}
        training: dict[str, list[dict[str, Any]]] = {}
        for record in runs:
            for method, entry in record.training.items():
                training.setdefault(method, []).append(entry)
        combined = cls(
            task=first.task,
            split=first.split,
            methods={m: {k: v["mean"] for k, v in a.items()} for m, a in aggregate.items()},
            training={
                m: {k: v["mean"] for k, v in _seed_statistics(e).items()}
                for m, e in training.items()
            },
            environment=dict(runs[-1].environment),
            config=dict(config) if config is not None else dict(first.config),
            figures=list(first.figures),
            details={
                k: v
                for k, v in first.details.items()
                if all(k in r.details and r.details[k] == v for r in runs)
            },
            run_dir=str(run_dir) if run_dir is not None else first.run_dir,
            seeds=seeds,
            per_seed=per_seed,
            aggregate=aggregate,
        )
        for record in runs:
            for command in record.commands:
                combined.add_command(command)
        return combined

    def add_command(self, command: CommandRecord) -> None:
        """Append ``command`` (its wall time brought up to date), or update it in place if the
        record already lists it."""
        command.tick()
        for i, known in enumerate(self.commands):
            if known.same_as(command):
                self.commands[i] = command
                return
        self.commands.append(command)

    def columns(self) -> list[tuple[str, str]]:
        """``(metric key, title)`` of the :data:`COLUMNS` that every method has."""
        return [(k, t) for k, t in COLUMNS if all(k in m for m in self.methods.values())]

    def table(self) -> str:
        """A Markdown table of the metrics (:data:`COLUMNS`) that every method has: one value
        per cell, or ``mean ± std`` over the seeds where ``aggregate`` has a spread."""
        present = self.columns()
        lines = [
            "| method | " + " | ".join(t for _, t in present) + " |",
            "|---|" + "---|" * len(present),
        ]
        for name, m in self.methods.items():
            cells = []
            for key, _ in present:
                spread = self.aggregate.get(name, {}).get(key, {})
                std = spread.get("std")
                cells.append(f"{m[key]:.3f}" if std is None else f"{m[key]:.3f} ± {std:.3f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def seed_table(self) -> str:
        """A Markdown table of each seed's value (in ``seeds`` order, comma-separated) of the
        columns of :meth:`table`; ``""`` for a single run."""
        if not self.seeds:
            return ""
        present = self.columns()
        lines = [
            "| method | " + " | ".join(t for _, t in present) + " |",
            "|---|" + "---|" * len(present),
        ]
        for name in self.methods:
            runs = self.per_seed.get(name, {})
            cells = [
                ", ".join(f"{runs[str(s)][k]:.3f}" for s in self.seeds if k in runs.get(str(s), {}))
                for k, _ in present
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def comparison_table(self) -> str:
        """A Markdown table of ``comparisons``: ``method − baseline``, the metric, the
        difference and its interval (``""`` if there are none)."""
        if not self.comparisons:
            return ""
        titles = dict(COLUMNS)
        lines = ["| difference | metric | mean | interval |", "|---|---|---|---|"]
        for c in self.comparisons:
            level = f"{100 * c['confidence']:g}%"
            lines.append(
                f"| {c['method']} − {c['baseline']} | {titles.get(c['metric'], c['metric'])} "
                f"| {c['difference']:+.3f} | {level} [{c['low']:+.3f}, {c['high']:+.3f}] |"
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["commands"] = [c.to_dict() for c in self.commands]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """The record of a parsed ``run.json`` / ``metrics.json`` (any layout, see above).

        Raises
        ------
        ValueError
            If ``data`` is not a run record.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a run record must be a JSON object, got {type(data).__name__}")
        if "schema" not in data:
            data = _upgrade_legacy(data)
        if data.get("schema") in COMPATIBLE_SCHEMAS:  # a subset of the fields: a single run
            data = {**data, "schema": SCHEMA}
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unknown run record schema {data.get('schema')!r}; expected {SCHEMA}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown or not isinstance(data.get("task"), str):
            raise ValueError(f"not a matbackprop run record (keys {sorted(data)})")
        commands = [CommandRecord(**c) for c in data.get("commands", [])]
        return cls(**{**data, "commands": commands})

    def save(self, path: str | Path) -> Path:
        """Write the record as JSON (atomically: a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> RunRecord:
        """Read a record written by :meth:`save` (or by an earlier version, upgraded).

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        matbackprop.errors.DataFileError
            If it is not valid JSON or not a run record.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"run record not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DataFileError(path, f"not valid JSON ({error})") from None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as error:
            raise DataFileError(path, f"{error}; is it a matbackprop metrics.json?") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seed_statistics(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{name: {"mean", "std", "n"}}`` of the numeric values all ``entries`` have (in the
    first entry's order); ``std`` is the sample standard deviation, None for one entry."""
    if not entries:
        return {}
    names = [k for k in entries[0] if all(_is_number(e.get(k)) for e in entries)]
    out: dict[str, dict[str, Any]] = {}
    n = len(entries)
    for name in names:
        values = [float(e[name]) for e in entries]
        mean = math.fsum(values) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
        out[name] = {"mean": mean, "std": std, "n": n}
    return out


def _upgrade_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 (before :class:`RunRecord`) to the current schema: the demo wrote a
    ``command`` string, the ncuts task a list of ``commands`` strings, the o2p task a list of
    command dicts; the facts their reports showed (``data``, ``settings``, ``classic_params``,
    ``training``) become ``details``."""
    if "methods" not in data:
        raise ValueError("no 'methods' entry")
    raw = data.get("commands") or ([data["command"]] if "command" in data else [])
    commands = []
    for item in raw:
        if isinstance(item, str):
            commands.append({"command": "", "shell": item})
        else:
            known = {"command", "shell", "argv", "cwd", "started", "wall_time"}
            entry = {k: item[k] for k in known if k in item}
            entry.setdefault("shell", " ".join(str(a) for a in item.get("argv", [])))
            entry["details"] = {k: v for k, v in item.items() if k not in known}
            commands.append(entry)
    if commands and commands[-1].get("wall_time") is None and "wall_time_seconds" in data:
        commands[-1]["wall_time"] = data["wall_time_seconds"]
    return {
        "schema": SCHEMA,
        "task": data.get("task", ""),
        "split": data.get("split"),
        "methods": data["methods"],
        "commands": commands,
        "environment": data.get("environment", {}),
        "config": data.get("config", {}),
        "figures": [data["figure"]] if data.get("figure") else [],
        "details": {
            k: data[k] for k in ("data", "settings", "classic_params", "training") if k in data
        },
        "run_dir": data.get("run_dir"),
    }
