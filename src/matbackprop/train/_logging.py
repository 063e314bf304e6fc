"""Run-directory logs: ``metrics.jsonl``, ``skipped.txt`` and messages on stderr.

``metrics.jsonl`` holds one JSON object per line, each with an ``event`` field:

- ``{"event": "start", "step", "total_steps", "world_size", "rank", "resumed_from", "time"}``
- ``{"event": "train", "step", "epoch", "loss", "lr", "metrics": {...}, "time"}`` every
  ``log_every`` steps (loss and metrics averaged over the steps since the previous record and
  over processes; ``epoch`` is fractional, ``time`` is training seconds since the run began,
  summed over resumes)
- ``{"event": "eval", "step", "metrics": {...}, "time"}``
- ``{"event": "skip", "step", "rank", "index", "path", "reason"}`` for each skipped bad item
- ``{"event": "nonfinite", "step", "grad_norm"}`` for a skipped non-finite update
- ``{"event": "checkpoint", "step", "path", "reason"}``
- ``{"event": "stop", "step", "reason", "message"}`` (signal or error) and ``{"event": "end", ...}``

Non-finite floats are written as ``null`` (strict JSON). Every record is flushed at once. On
resume, records of steps after the checkpoint (written by the interrupted run after its last
checkpoint) are dropped so that the log matches the resumed trajectory.

``skipped.txt`` has one tab-separated line per skipped item: ``path, reason, step, index, rank``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import IO, Any

__all__ = ["RunLogger", "say"]


def say(message: str) -> None:
    """Print a message on stderr without breaking a tqdm progress bar."""
    try:
        from tqdm import tqdm

        tqdm.write(message, file=sys.stderr)
    except ImportError:  # pragma: no cover - tqdm is a dependency
        print(message, file=sys.stderr, flush=True)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class RunLogger:
    """Appends records to ``<run_dir>/metrics.jsonl`` and ``<run_dir>/skipped.txt``.

    Parameters
    ----------
    run_dir : Path
    enabled : bool
        False on non-main ranks: every method is then a no-op.
    """

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.skipped_path = self.run_dir / "skipped.txt"
        self._file: IO[str] | None = None

    def start(self, fresh: bool, keep_until_step: int | None) -> None:
        """Open the log: truncate it for a fresh run, or drop records after a resumed step."""
        if not self.enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if fresh:
            for path in (self.metrics_path, self.skipped_path):
                if path.exists():
                    path.unlink()
        elif keep_until_step is not None:
            self._truncate(self.metrics_path, keep_until_step, _jsonl_step)
            self._truncate(self.skipped_path, keep_until_step, _tsv_step)
        self._file = self.metrics_path.open("a", encoding="utf-8")

    @staticmethod
    def _truncate(path: Path, step: int, step_of: Any) -> None:
        if not path.exists():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            s = step_of(line)
            if s is not None and s <= step:
                kept.append(line + "\n")
        tmp = path.with_name(f".{path.name}.rewrite.tmp")
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def log(self, record: dict[str, Any]) -> None:
        """Append one JSON record and flush."""
        if not self.enabled or self._file is None:
            return
        self._file.write(json.dumps(_clean(record), allow_nan=False) + "\n")
        self._file.flush()

    def log_skip(self, step: int, rank: int, index: int, path: str, reason: str) -> None:
        """Record a skipped item in ``skipped.txt`` and the JSONL log."""
        if not self.enabled:
            return
        flat = reason.replace("\t", " ").replace("\n", " ")
        with self.skipped_path.open("a", encoding="utf-8") as f:
            f.write(f"{path}\t{flat}\t{step}\t{index}\t{rank}\n")
        self.log(
            {
                "event": "skip",
                "step": step,
                "rank": rank,
                "index": index,
                "path": path,
                "reason": reason,
            }
        )

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None


def _jsonl_step(line: str) -> int | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:  # a line cut by a kill: drop it
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None


def _tsv_step(line: str) -> int | None:
    parts = line.split("\t")
    try:
        return int(parts[2])
    except (IndexError, ValueError):
        return None
