"""The HTTP values of condition jobs, each fetched on its own interval, none waiting for another."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import trio

from node.mesh import Metrics
from node.web import JsonValues, WebSourceError
from protocol.triggers.condition_sources import Reading, SourceError, WebValue

log = logging.getLogger("triggerx.gateway")

TICK = 0.25
"""Seconds between two looks at which values are due (a fetch starts at most this late)."""
PER_OWNER = 2
"""Fetches of one owner's values at once: an owner whose URLs are slow delays only its own."""


class WebPoller:
    """Keeps the latest reading of every watched HTTP value (or why there is none).

    A value watched by several jobs is fetched once, at the shortest of their intervals.
    Each fetch runs on its own, under `values`' limits (deadline, size, concurrency) and at
    most PER_OWNER at once for the owner of the job that first asked for it: a slow or
    failing server delays nobody else's values.
    """

    def __init__(
        self, values: JsonValues, metrics: Metrics, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.values, self.metrics, self.clock = values, metrics, clock
        self._every: dict[WebValue, dict[int, float]] = {}  # source -> job -> its interval
        self._due: dict[WebValue, float] = {}
        self._latest: dict[WebValue, Reading | SourceError] = {}
        self._in_flight: set[WebValue] = set()
        self._owner: dict[WebValue, str] = {}
        self._owners: dict[str, trio.CapacityLimiter] = {}

    def watch(self, job_id: int, sources: list[WebValue], every: float, owner: str = "") -> None:
        """Fetch `sources` for job `job_id` of `owner` every `every` seconds (at once first)."""
        for source in sources:
            self._every.setdefault(source, {})[job_id] = every
            self._due.setdefault(source, -math.inf)
            self._owner.setdefault(source, owner)

    def unwatch(self, job_id: int) -> None:
        """Stop fetching for job `job_id` (values no other job watches are forgotten)."""
        for source in [s for s, jobs in self._every.items() if job_id in jobs]:
            del self._every[source][job_id]
            if not self._every[source]:
                del self._every[source], self._due[source], self._owner[source]
                self._latest.pop(source, None)

    def reading(self, source: WebValue) -> Reading | SourceError | None:
        """The latest reading of `source`, the error of its latest fetch, or None before the first."""
        return self._latest.get(source)

    async def fetch(self, source: WebValue) -> None:
        """Fetch `source` now and keep what it gave (if a job still watches it)."""
        reading: Reading | SourceError
        try:
            reading = source.reading(await self.values.value(source.url, source.path))
        except Exception as error:  # a stranger's URL: whatever it does ends this fetch only
            self.metrics.inc("condition_source_errors_total", source="http")
            expected = isinstance(error, WebSourceError | SourceError)
            reading = SourceError(
                str(error) if expected else f"{source.url}: {type(error).__name__}: {error}"
            )
            (log.info if expected else log.exception)("condition value %s: %s", source.canonical, error)
        if source in self._every:
            self._latest[source] = reading

    async def run(self) -> None:
        """Fetch each value when it is due, until cancelled."""
        async with trio.open_nursery() as nursery:
            while True:
                now = self.clock()
                for source, due in list(self._due.items()):
                    if due <= now and source not in self._in_flight:
                        self._due[source] = now + min(self._every[source].values())
                        self._in_flight.add(source)
                        nursery.start_soon(self._fetch_once, source)
                await trio.sleep(TICK)

    async def _fetch_once(self, source: WebValue) -> None:
        owner = self._owner.get(source, "")
        slots = self._owners.setdefault(owner, trio.CapacityLimiter(PER_OWNER))
        try:
            async with slots:
                await self.fetch(source)
        finally:
            self._in_flight.discard(source)
