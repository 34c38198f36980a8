"""The alerts service: watches the task ledger and the keepers' health, and delivers each
alert through every channel from its own bounded queue."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import trio

from gateway.alerts.channels import AlertChannel, DeliveryError
from gateway.alerts.messages import (
    Alert,
    duration,
    keeper_back_alert,
    keeper_offline_alert,
    task_failed_alert,
)
from gateway.health import HealthTracker
from gateway.ledger import TaskEvent, TaskLedger
from gateway.records import TaskRecord

log = logging.getLogger(__name__)

QUEUE_SIZE = 100  # alerts waiting per channel; more are dropped
ATTEMPTS = 4  # tries per alert and channel
BACKOFF = 1.0  # seconds before the second try, doubling after each
CHECK_EVERY = 15.0  # seconds between two looks at the keepers
EVENT_BUFFER = 1024  # task events the ledger holds for us (gateway/ledger.py drops a reader behind)


@dataclass
class ChannelStats:
    """What became of one channel's alerts."""

    sent: int = 0
    failed: int = 0  # given up after its tries, or refused for good
    dropped: int = 0  # the channel's queue was full


class _Queue:
    """One channel's queue of one kind of alert, with its own sender task."""

    def __init__(self, size: int) -> None:
        self.send, self.receive = trio.open_memory_channel[Alert](size)
        self.overflowing = False


class _Outbox:
    """A channel's queues: keeper alerts never wait behind (or drop for) task failures."""

    def __init__(self, channel: AlertChannel, size: int) -> None:
        self.channel = channel
        self.queues = {"tasks": _Queue(size), "keepers": _Queue(size)}
        self.stats = ChannelStats()


@dataclass
class _JobFailures:
    """Failures of one job since its last alert, held back by the per-job limit."""

    alerted_at: float
    held: int = 0
    latest: TaskRecord | None = None


class Alerts:
    """Watches the task ledger and the keepers' health and sends alerts through `channels`
    (see the module's documentation).

    Args:
        channels: where alerts go (`alert_channels`); each gets its own queue and sender.
        ledger: the task ledger, subscribed to at once (no failure is missed before `run`).
        tracker: the keepers' health (KeeperWatch.tracker).
        keeper_offline_after: seconds offline before a keeper is announced; 0 for never.
        job_alert_every: at most one failure alert per job this often (seconds); the job's
            failures in between are summed up in one alert when the time is up; 0 for one
            alert per failure.
        expected_keepers: the accounts that should send heartbeats (the active operators):
            one never heard from counts as offline since this service started.
        check_every: seconds between two looks at the keepers.
        queue_size, attempts, backoff: each channel's queue, tries per alert, and the wait
            before the second try (doubling).
        clock: the time now, in seconds (the tracker's heartbeats are on the same clock).
    """

    def __init__(
        self,
        channels: Iterable[AlertChannel],
        ledger: TaskLedger,
        tracker: HealthTracker,
        *,
        keeper_offline_after: float = 600.0,
        job_alert_every: float = 3600.0,
        expected_keepers: Callable[[], Iterable[str]] | None = None,
        check_every: float = CHECK_EVERY,
        queue_size: int = QUEUE_SIZE,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.tracker = tracker
        self.keeper_offline_after = keeper_offline_after
        self.job_alert_every = job_alert_every
        self.expected_keepers = expected_keepers
        self.check_every = check_every
        self.attempts = attempts
        self.backoff = backoff
        self.clock = clock
        self._outboxes = [_Outbox(channel, queue_size) for channel in channels]
        self._events = ledger.subscribe(EVENT_BUFFER)
        self._started = clock()
        self._offline: dict[str, float | None] = {}  # announced keeper -> its last heartbeat then
        self._job_failures: dict[int, _JobFailures] = {}  # jobs alerted within job_alert_every

    @property
    def stats(self) -> dict[str, ChannelStats]:
        """Each channel's counts, by channel name."""
        return {outbox.channel.name: outbox.stats for outbox in self._outboxes}

    async def run(self) -> None:
        """Watch and send until cancelled."""
        log.info(
            "alerts on: %s; keepers announced after %s offline",
            ", ".join(f"{o.channel.name} to {o.channel.target}" for o in self._outboxes),
            duration(self.keeper_offline_after) if self.keeper_offline_after > 0 else "(never)",
        )
        try:
            async with trio.open_nursery() as nursery:
                for outbox in self._outboxes:
                    for queue in outbox.queues.values():
                        nursery.start_soon(self._deliver_all, outbox, queue)
                nursery.start_soon(self._watch_tasks)
                nursery.start_soon(self._periodic_checks)
        finally:
            self._events.close()  # the ledger drops us at its next event
            with trio.CancelScope(shield=True):  # once both of each channel's senders are done
                for outbox in self._outboxes:
                    await outbox.channel.aclose()

    def notify(self, alert: Alert, about: Literal["tasks", "keepers"]) -> None:
        """Queue `alert` (`about` tasks or keepers) on every channel; never waits (a full queue
        drops it)."""
        for outbox in self._outboxes:
            queue = outbox.queues[about]
            try:
                queue.send.send_nowait(alert)
            except trio.WouldBlock:
                outbox.stats.dropped += 1
                if not queue.overflowing:
                    log.warning("%s alerts: %s queue full: dropping", outbox.channel.name, about)
                    queue.overflowing = True
                continue
            if queue.overflowing:
                log.warning(
                    "%s alerts: %s queue drains again (%d dropped in all)",
                    outbox.channel.name,
                    about,
                    outbox.stats.dropped,
                )
                queue.overflowing = False

    def on_task_event(self, event: TaskEvent) -> None:
        """Alert on a task that became `failed`, at most once per job per `job_alert_every`."""
        if event.kind != "TASK_STATUS_CHANGED" or event.task.status != "failed":
            return
        task, now = event.task, self.clock()
        failures = self._job_failures.get(task.job_id)
        if failures is not None and now - failures.alerted_at < self.job_alert_every:
            failures.held += 1
            failures.latest = task
            return
        # Its period is up (or it had none): failures held back, not yet summed up, go with this one.
        held, since = (failures.held, failures.alerted_at) if failures is not None else (0, now)
        if self.job_alert_every > 0:
            self._job_failures[task.job_id] = _JobFailures(alerted_at=now)
        job = self.ledger.storage.jobs.get(task.job_id)
        self.notify(task_failed_alert(task, job, held=held + 1 if held else 0, period=now - since), "tasks")

    def sum_up_jobs(self) -> None:
        """Announce the failures each job's limit held back, once its time is up; forget the
        jobs alerted longer ago than that."""
        now = self.clock()
        for job_id, failures in list(self._job_failures.items()):
            if now - failures.alerted_at < self.job_alert_every:
                continue
            if failures.latest is None:
                del self._job_failures[job_id]
                continue
            job = self.ledger.storage.jobs.get(job_id)
            period = now - failures.alerted_at
            self.notify(task_failed_alert(failures.latest, job, held=failures.held, period=period), "tasks")
            self._job_failures[job_id] = _JobFailures(alerted_at=now)

    def check_keepers(self) -> None:
        """Announce each keeper newly offline for too long, and each announced one back."""
        now = self.clock()
        offline_after = self.tracker.offline_after
        for address, last_seen in list(self._offline.items()):
            health = self.tracker.keepers.get(address)
            if health is not None and health.last_seen != last_seen:
                del self._offline[address]
                since = self._started if last_seen is None else last_seen + offline_after
                self.notify(keeper_back_alert(address, since, health.last_seen), "keepers")
        expected = set(self.expected_keepers()) if self.expected_keepers is not None else set()
        for address in sorted(expected | set(self.tracker.keepers)):
            if address in self._offline:
                continue
            health = self.tracker.keepers.get(address)
            last_seen = None if health is None else health.last_seen
            since = self._started if last_seen is None else last_seen + offline_after
            if now - since >= self.keeper_offline_after:
                self._offline[address] = last_seen
                peer = None if health is None else health.peer_id
                self.notify(
                    keeper_offline_alert(address, peer, last_seen, since, now, self.keeper_offline_after),
                    "keepers",
                )

    async def _watch_tasks(self) -> None:
        while True:
            async for event in self._events:
                self.on_task_event(event)
            log.warning(
                "alerts fell %d task events behind the ledger: some failures were not announced", EVENT_BUFFER
            )
            self._events = self.ledger.subscribe(EVENT_BUFFER)

    async def _periodic_checks(self) -> None:
        while True:
            if self.keeper_offline_after > 0:
                self.check_keepers()
            self.sum_up_jobs()
            await trio.sleep(self.check_every)

    async def _deliver_all(self, outbox: _Outbox, queue: _Queue) -> None:
        async for alert in queue.receive:
            await self._deliver(outbox, alert)

    async def _deliver(self, outbox: _Outbox, alert: Alert) -> None:
        name = outbox.channel.name
        for attempt in range(1, self.attempts + 1):
            try:
                await outbox.channel.send(alert)
            except DeliveryError as error:
                if not error.retry or attempt == self.attempts:
                    outbox.stats.failed += 1
                    log.warning(
                        "%s alert dropped after %d tr(ies): %s (%s)", name, attempt, error, alert.subject
                    )
                    return
                log.info("%s alert, try %d failed: %s", name, attempt, error)
                await trio.sleep(
                    error.after if error.after is not None else self.backoff * 2 ** (attempt - 1)
                )
            except Exception:  # an alert channel must never stop the gateway
                outbox.stats.failed += 1
                log.exception("%s alert dropped: unexpected error (%s)", name, alert.subject)
                return
            else:
                outbox.stats.sent += 1
                return
