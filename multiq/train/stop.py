"""Stop requests: Ctrl-C (SIGINT) and SIGTERM end a run at the next consistent point.

While a run trains, the first SIGINT or SIGTERM only sets a flag; the trainer checks it after
each vector step (when counters, replay and env records agree), writes a checkpoint and raises
`Interrupted`. A second SIGINT interrupts at once (no checkpoint beyond the last one). Handlers
are installed only in the main thread and the previous ones are put back when the run ends.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM after saving a checkpoint.

    Attributes:
        signal_number: the signal that stopped it.
    """

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number


class StopRequests:
    """Context manager that turns SIGINT/SIGTERM into a flag the trainer polls."""

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}  # signal -> the handler to put back

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    def interrupted(self, message: str) -> Interrupted:
        """The `Interrupted` error of the signal received (SIGINT if none was)."""
        return Interrupted(message, self.signal_number or signal.SIGINT)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.signal_number == signal.SIGINT and number == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signal_number = number
        log.warning(
            "%s received: stopping at the next consistent point and saving a checkpoint "
            "(press Ctrl-C again to stop at once)",
            signal.Signals(number).name,
        )

    def __enter__(self) -> StopRequests:
        self.signal_number = None  # a new run: an earlier stop request is spent
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
