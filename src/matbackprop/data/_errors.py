"""Errors raised for unreadable or inconsistent data files."""

from __future__ import annotations

from pathlib import Path


class DataFileError(ValueError):
    """A data file is missing, unreadable, corrupt or inconsistent.

    The message always names the file. ``path`` holds it, so that a trainer running with
    ``--skip-bad`` can log which file was skipped.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
