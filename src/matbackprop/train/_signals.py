"""Graceful stop on SIGINT / SIGTERM.

:class:`StopRequest` is a context manager that installs handlers which only *record* the signal;
the training loop polls :attr:`StopRequest.requested` at each step boundary, writes a checkpoint
and returns. A second SIGINT while a stop is pending raises ``KeyboardInterrupt`` at once (for an
impatient Ctrl-C). The previous handlers are restored on exit. Handlers can only be installed from
the main thread; elsewhere the context manager does nothing (signals keep their old behaviour).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["StopRequest"]


class StopRequest:
    """Record SIGINT/SIGTERM instead of dying; see the module docstring."""

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.signals = signals
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
