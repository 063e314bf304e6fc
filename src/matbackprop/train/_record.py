"""The record of a run: one dataclass, one JSON schema, written by every task, read by reports.

A :class:`RunRecord` says what a run measured and what produced it:

``schema``
    ``"matbackprop.run/1"``.
``task``, ``split``
    The task (``"ncuts"``, ``"o2p"``, ``"demo"``, ...) and the evaluated split (None for a
    training record).
``methods``
    ``{method: {name: value}}``: the evaluation metrics of each method (an evaluation record) or
    the trainer's summary of each trained method (a training record).
``training``
    In an evaluation record, the training summary of each trained method (``step``,
    ``last_loss``, ``train_time``, ``checkpoint``, ...), copied from the training record.
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
``matbackprop report`` reads only this schema; :meth:`RunRecord.load` also upgrades the three
layouts written before it (schema 0: a ``command`` string, a list of ``commands`` strings, or a
list of command dicts), in :func:`_upgrade_legacy` alone.

Commands are recorded by :func:`recording`, a context manager: nested uses share the outermost
record, so ``matbackprop demo`` (which trains, then evaluates) lists one command.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matbackprop.errors import DataFileError

__all__ = ["CommandRecord", "RunRecord", "environment", "recording"]

SCHEMA = "matbackprop.run/1"
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
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init and
                not f.name.startswith("_")}


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
    schema: str = SCHEMA

    @property
    def interrupted(self) -> bool:
        """Whether a trained method of this (training) record stopped before its last step."""
        return any(bool(m.get("interrupted")) for m in self.methods.values())

    def add_command(self, command: CommandRecord) -> None:
        """Append ``command`` (its wall time brought up to date), or update it in place if the
        record already lists it."""
        command.tick()
        for i, known in enumerate(self.commands):
            if known.same_as(command):
                self.commands[i] = command
                return
        self.commands.append(command)

    def table(self) -> str:
        """A Markdown table of the metrics (:data:`COLUMNS`) that every method has."""
        present = [(k, t) for k, t in COLUMNS if all(k in m for m in self.methods.values())]
        lines = [
            "| method | " + " | ".join(t for _, t in present) + " |",
            "|---|" + "---|" * len(present),
        ]
        for name, m in self.methods.items():
            lines.append(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k, _ in present) + " |")
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


def _upgrade_legacy(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 0 (before :class:`RunRecord`) to schema 1: the demo wrote a ``command`` string,
    the ncuts task a list of ``commands`` strings, the o2p task a list of command dicts; the
    facts their reports showed (``data``, ``settings``, ``classic_params``, ``training``) become
    ``details``."""
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
