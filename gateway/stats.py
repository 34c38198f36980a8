"""Network statistics over the last minute and hour, from the task ledger's events: tasks
created, completed and failed, how long tasks took from their fire to their approval
(percentiles), and the fee they cost (GET /api/stats and /ws/stats).

Kept in memory only: after a restart they start again from nothing, and if this reader falls
behind the ledger it subscribes again and misses what it skipped. They describe the network's
recent pace, not its history (the tasks themselves are in the store).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from gateway.ledger import TaskEvent, TaskLedger

log = logging.getLogger("triggerx.gateway")

HOUR = 3600.0
MAX_SAMPLES = 100_000  # per kind of sample, within the hour: bounded memory whatever the load


class NetworkStats(msgspec.Struct, rename="camel", kw_only=True):
    """The network's recent pace. Latencies are from a task's fire time to the approval of its
    execution being recorded, in seconds (null: no task completed in the hour); fees in wei."""

    tasks_created_last_minute: int
    tasks_completed_last_minute: int
    tasks_failed_last_minute: int
    tasks_completed_last_hour: int
    latency_p50_seconds: float | None
    latency_p95_seconds: float | None
    latency_p99_seconds: float | None
    mean_fee_per_task: str | None
    keepers_online: int
    at: float


@dataclass
class TaskStats:
    """Follows the ledger (`run`) and answers `snapshot()`; `keepers_online` counts keepers."""

    ledger: TaskLedger
    keepers_online: Callable[[], int] = lambda: 0
    clock: Callable[[], float] = time.time
    _created: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    _failed: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    _completed: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    # task id -> (when, fee) of completed tasks whose fee is known, oldest first. The fee is
    # often noted just after the approval (gateway.dispatch), in a TASK_UPDATED: either counts.
    _fees: dict[int, tuple[float, int]] = field(default_factory=dict)
    _latest: NetworkStats | None = None

    async def run(self) -> None:
        """Read the ledger's events until cancelled (subscribing again if dropped)."""
        while True:
            async for event in self.ledger.subscribe(buffer=1024):
                self.record(event)
            log.warning("network stats fell behind the task ledger: following it again")

    def record(self, event: TaskEvent) -> None:
        """Count one task change."""
        now, task = self.clock(), event.task
        if event.kind == "TASK_CREATED":
            self._created.append(now)
        elif event.kind == "TASK_STATUS_CHANGED" and task.status == "failed":
            self._failed.append(now)
        elif event.kind == "TASK_STATUS_CHANGED" and task.status == "completed":
            self._completed.append((now, max(0.0, now - task.fire_at)))
        if task.status == "completed" and task.id not in self._fees:
            fee = next((int(a.fee) for a in task.attempts if a.outcome == "approved" and a.fee), None)
            if fee is not None:
                self._fees[task.id] = (now, fee)
                if len(self._fees) > MAX_SAMPLES:
                    del self._fees[next(iter(self._fees))]

    def snapshot(self) -> NetworkStats:
        """The statistics now (computed at most once a second: every caller shares them)."""
        now = self.clock()
        if self._latest is not None and now - self._latest.at < 1.0:
            return self._latest
        for samples in (self._created, self._failed):
            while samples and samples[0] < now - HOUR:
                samples.popleft()
        while self._completed and self._completed[0][0] < now - HOUR:
            self._completed.popleft()
        while self._fees and next(iter(self._fees.values()))[0] < now - HOUR:
            del self._fees[next(iter(self._fees))]
        latencies = sorted(latency for _, latency in self._completed)
        fees = [fee for _, fee in self._fees.values()]
        self._latest = NetworkStats(
            tasks_created_last_minute=sum(1 for at in self._created if at >= now - 60),
            tasks_completed_last_minute=sum(1 for at, _ in self._completed if at >= now - 60),
            tasks_failed_last_minute=sum(1 for at in self._failed if at >= now - 60),
            tasks_completed_last_hour=len(latencies),
            latency_p50_seconds=_percentile(latencies, 0.50),
            latency_p95_seconds=_percentile(latencies, 0.95),
            latency_p99_seconds=_percentile(latencies, 0.99),
            mean_fee_per_task=str(sum(fees) // len(fees)) if fees else None,
            keepers_online=self.keepers_online(),
            at=now,
        )
        return self._latest


def _percentile(ordered: list[float], share: float) -> float | None:
    """The nearest-rank percentile of `ordered` (None when empty)."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)
