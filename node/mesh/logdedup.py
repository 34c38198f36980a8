"""Log an event once per window, then once more with how often it repeated.

A loop that fails the same way many times a second must not turn each failure into a log
line: one stalled peer once produced 10 million identical lines in 11 minutes. `LogDedup`
logs the first occurrence of an event (identified by a key the caller chooses, since the
rendered text of "the same" event often differs: a delay, an error text), counts the
repeats that follow within `window_s`, and appends the count to the next line it lets
through, e.g. `... (repeated 1234 times in the last 60 s)`. `flush()` writes the count at
once, for when the event stops (the peer came back).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

DEFAULT_WINDOW_S = 60.0
MAX_KEYS = 1024
"""Events tracked at once; the least recently logged one is forgotten past that (memory stays bounded)."""


@dataclass
class _Event:
    since: float
    """When the line that opened the current window was logged."""
    level: int
    message: str
    args: tuple[Any, ...]
    suppressed: int = 0


class LogDedup:
    """Writes to `logger`, letting one line per event key through per `window_s` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._window_s = window_s
        self._clock = clock
        self._events: OrderedDict[Hashable, _Event] = OrderedDict()

    def log(self, level: int, key: Hashable, message: str, *args: Any, exc_info: bool = False) -> bool:
        """Log `message % args` unless `key` was logged less than `window_s` ago; True if it was written."""
        now = self._clock()
        event = self._events.get(key)
        if event is not None and now - event.since < self._window_s:
            event.suppressed += 1
            # Keep the latest text: the summary line then describes the most recent occurrence.
            event.level, event.message, event.args = level, message, args
            return False
        suffix, suffix_args = self._repeats(event, now)
        self._logger.log(level, message + suffix, *args, *suffix_args, exc_info=exc_info)
        self._events[key] = _Event(now, level, message, args)
        self._events.move_to_end(key)
        if len(self._events) > MAX_KEYS:
            self._events.popitem(last=False)
        return True

    def flush(self, key: Hashable) -> None:
        """Log the repeats of `key` not yet reported (if any), and forget it: its next occurrence is new."""
        event = self._events.pop(key, None)
        if event is not None and event.suppressed:
            suffix, suffix_args = self._repeats(event, self._clock())
            self._logger.log(event.level, event.message + suffix, *event.args, *suffix_args)

    def suppressed(self, key: Hashable) -> int:
        """Occurrences of `key` swallowed since its last line."""
        event = self._events.get(key)
        return 0 if event is None else event.suppressed

    @staticmethod
    def _repeats(event: _Event | None, now: float) -> tuple[str, tuple[Any, ...]]:
        if event is None or not event.suppressed:
            return "", ()
        # %-style like the message itself, so that `%` in a count never breaks formatting.
        return " (repeated %d times in the last %.0f s)", (event.suppressed, now - event.since)


class DedupHandler(logging.Handler):
    """Forwards records to `target`'s handlers, one per logger, level and message template per window.

    For loggers we do not control (py-libp2p warns once per message in some states, e.g. a
    peer's pending gossip queue over its limit): the key is the record's unformatted template,
    so lines that differ only in a peer id or a count are one event. The first line after a
    window carries the count of those swallowed, like LogDedup.
    """

    def __init__(
        self,
        target: logging.Logger,
        window_s: float = DEFAULT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._target = target
        self._window_s = window_s
        self._clock = clock
        self._events: OrderedDict[tuple[str, int, str], list[float]] = OrderedDict()
        """key -> [since, suppressed]."""

    def emit(self, record: logging.LogRecord) -> None:
        """Forward `record` unless its key was forwarded less than `window_s` ago."""
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        event = self._events.get(key)
        if event is not None and now - event[0] < self._window_s:
            event[1] += 1
            return
        if event is not None and event[1]:
            record = logging.makeLogRecord(record.__dict__)
            record.msg = (
                f"{record.getMessage()} (repeated {int(event[1])} times in the last {now - event[0]:.0f} s)"
            )
            record.args = None
        self._events[key] = [now, 0]
        self._events.move_to_end(key)
        if len(self._events) > MAX_KEYS:
            self._events.popitem(last=False)
        self._target.handle(record)
