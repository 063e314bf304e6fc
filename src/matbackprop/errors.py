"""The errors matbackprop raises for problems a user can fix (bad files, bad configurations).

This module is the foundation floor: every sub-package may import it, and it imports only the
standard library (no torch), so a program can catch these errors without loading anything else.

- :class:`DataFileError` -- a data, checkpoint or weights file is missing, unreadable, corrupt or
  inconsistent; the message names the file and :attr:`~DataFileError.path` holds it.
- :class:`ConfigError` -- a configuration entry (a dataclass field loaded from TOML/YAML, a
  ``--set key=value`` override or a constructor argument) is unknown or invalid; the message
  names the dotted key.

Both derive from :class:`ValueError`, so ``except ValueError`` keeps catching them; the
``matbackprop`` command prints them as one ``error: ...`` line instead of a traceback.

Example
-------
>>> from matbackprop.errors import DataFileError
>>> error = DataFileError("data/images/val/1.jpg", "cannot decode the image")
>>> str(error), error.path.name, isinstance(error, ValueError)
('data/images/val/1.jpg: cannot decode the image', '1.jpg', True)
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ConfigError", "DataFileError"]


class DataFileError(ValueError):
    """A file is missing, unreadable, corrupt or inconsistent.

    Parameters
    ----------
    path : str or Path
        The file; kept in :attr:`path` so that a trainer running with ``skip_bad`` can log which
        file it skipped.
    reason : str
        What is wrong with it; kept in :attr:`reason`.

    Notes
    -----
    The message is ``"<path>: <reason>"``.

    Examples
    --------
    >>> from matbackprop.errors import DataFileError
    >>> error = DataFileError("images/1.jpg", "truncated JPEG")
    >>> str(error)
    'images/1.jpg: truncated JPEG'
    >>> error.path.name, error.reason
    ('1.jpg', 'truncated JPEG')
    >>> isinstance(error, ValueError)
    True
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # picklable across DataLoader workers and DDP ranks
        return (type(self), (self.path, self.reason))


class ConfigError(ValueError):
    """A configuration entry is unknown or invalid (the message names its dotted key).

    Examples
    --------
    >>> from matbackprop.errors import ConfigError
    >>> from matbackprop.train import TrainConfig, config_from_dict
    >>> try:
    ...     config_from_dict(TrainConfig, {"optim": {"lr": -1.0}})
    ... except ConfigError as error:
    ...     print(error)
    `optim.lr` must be > 0, got -1.0
    """
