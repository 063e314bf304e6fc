"""The ``matbackprop`` command: ``run``, ``train``, ``eval``, ``report`` and task shortcuts
(``demo``).

See :func:`main` and ``matbackprop --help``. The experiments themselves are the task modules of
:mod:`matbackprop.tasks`, found by name in its registry.
"""

from ._main import main

__all__ = ["main"]
