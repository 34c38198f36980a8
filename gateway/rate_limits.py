"""Rate limits: so many requests per minute per API key, or per client address without one.

Fixed windows of WINDOW_SECONDS: a caller's count starts at its first request and resets a
window later. The limiter holds at most `max_callers` counts (a flood from many addresses
costs bounded memory and time); windows that ended are forgotten, and the oldest beyond the bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
MAX_CALLERS = 100_000


@dataclass(frozen=True)
class Allowance:
    """What a caller may still do: the window's `limit`, what `remaining` of it, and the seconds
    until it resets. `allowed` is False when the request that asked was over the limit."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int


class RateLimiter:
    """Counts requests per caller (any hashable name) in fixed windows."""

    def __init__(self, max_callers: int = MAX_CALLERS, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_callers = max_callers
        self.clock = clock
        self._windows: dict[object, list[float]] = {}  # caller -> [window start, count]; oldest first

    def take(self, caller: object, limit: int) -> Allowance:
        """Count one request of `caller`, whose limit is `limit` per window."""
        now = self.clock()
        window = self._windows.get(caller)
        if window is None or now - window[0] >= WINDOW_SECONDS:
            self._windows.pop(caller, None)
            self._make_room()
            window = self._windows[caller] = [now, 0]
        reset_after = math.ceil(window[0] + WINDOW_SECONDS - now)
        if window[1] >= limit:
            return Allowance(False, limit, 0, reset_after)
        window[1] += 1
        return Allowance(True, limit, limit - int(window[1]), reset_after)

    def _make_room(self) -> None:
        """Forget windows that ended, and the oldest beyond the bound. Windows are kept in the
        order they started, so those are at the front: each is looked at once."""
        now = self.clock()
        while self._windows:
            caller, (start, _) = next(iter(self._windows.items()))
            if len(self._windows) < self.max_callers and now - start < WINDOW_SECONDS:
                return
            del self._windows[caller]
