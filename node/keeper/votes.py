"""A keeper's votes, sent to the aggregators again and again until their attempt is decided.

An aggregator keeps its vote counts in memory: one that restarts has lost them, and one that
is down misses every vote sent meanwhile. So a keeper does not send a vote once: it resends it
after `resend_every` seconds, then twice as long each time (at most a minute), until an
aggregator answers `decided` (the attempt is decided on chain), refuses it (`rejected`: it
will never count), or the attempt's deadline plus a grace has passed. A performer also
republishes its own report each time, so that attesters that missed it (the aggregators relay
the results topic) still get to check it.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import trio

from node.mesh import RESULTS, MeshError, MeshNode, RemoteError
from node.metrics import KeeperMetrics

log = logging.getLogger("triggerx.keeper")
VoteKey = tuple[int, int, bytes]  # task id, attempt, result hash
MAX_RESULTS_PER_ATTEMPT = 4
MAX_RESEND_S = 60.0  # the longest wait between two sends of a vote


@dataclass
class _Pending:
    message: bytes  # the VoteMessage
    report: bytes | None  # our own report, republished with each send
    expires_at: float
    next_send: float = 0.0
    sends: int = 0
    failed: bool = False  # a delivery failed already (and was logged)


class VoteSender:
    """Delivers votes until their attempt is decided (see the module docstring).

    Sends and expiries are kept in two heaps, so each costs O(log n) in the votes held: a
    backlog of thousands of votes must not make every wake-up a scan of all of them.

    Args:
        mesh: sends the votes and republishes reports.
        aggregators: the aggregators' peer ids.
        resend_every: seconds between two sends of a vote not yet known decided.
        vote_timeout: how long one aggregator may take to answer.
        max_pending: most votes held; beyond it the one expiring first is given up.
        clock: unix time.
        stats: counts each send by the aggregator's reply, and the votes given up.
    """

    def __init__(
        self,
        mesh: MeshNode,
        aggregators: list[str],
        *,
        resend_every: float = 5.0,
        vote_timeout: float = 10.0,
        max_pending: int = 10_000,
        clock: Callable[[], float] = time.time,
        stats: KeeperMetrics | None = None,
    ) -> None:
        self.mesh, self.aggregators = mesh, aggregators
        self.stats = stats or KeeperMetrics()
        self.resend_every, self.vote_timeout, self.max_pending = resend_every, vote_timeout, max_pending
        self.clock = clock
        self.pending: dict[VoteKey, _Pending] = {}
        self._sending: set[VoteKey] = set()
        self._per_attempt: Counter[tuple[int, int]] = Counter()  # pending votes per attempt
        # (time, key): an item is current while its time is still the entry's next_send or
        # expires_at; stale items are skipped when they come up.
        self._due: list[tuple[float, VoteKey]] = []
        self._expiring: list[tuple[float, VoteKey]] = []
        self._limiter = trio.CapacityLimiter(32)  # deliveries at once
        self._wake = trio.Event()

    def holds(self, key: VoteKey) -> bool:
        """Whether a vote on (task, attempt, result) is being delivered already."""
        return key in self.pending

    def room_for(self, task_id: int, attempt: int) -> bool:
        """Whether another result of this attempt may be voted on: a performer that signs many
        results for one attempt gets votes on MAX_RESULTS_PER_ATTEMPT of them (as from the
        aggregators), not a chain check and a held vote each."""
        return self._per_attempt[(task_id, attempt)] < MAX_RESULTS_PER_ATTEMPT

    def add(self, key: VoteKey, message: bytes, expires_at: float, report: bytes | None = None) -> None:
        """Deliver `message` (a vote on `key`) until decided or `expires_at`; republish `report`
        with it if given (the performer's own)."""
        if len(self.pending) >= self.max_pending and key not in self.pending:
            oldest = self._first_expiring()
            log.warning("task %d attempt %d: too many votes pending; giving this one up", *oldest[:2])
            self.stats.votes_given_up.labels("overflow").inc()
            self._drop(oldest)
        if key not in self.pending:
            self._per_attempt[key[:2]] += 1
        self.pending[key] = _Pending(message, report, expires_at)
        heapq.heappush(self._due, (0.0, key))
        heapq.heappush(self._expiring, (expires_at, key))
        self._wake.set()

    def _first_expiring(self) -> VoteKey:
        """The held vote that expires first (stale heap items are discarded on the way)."""
        while True:
            expires_at, key = self._expiring[0]
            entry = self.pending.get(key)
            if entry is not None and entry.expires_at == expires_at:
                return key
            heapq.heappop(self._expiring)

    def _drop(self, key: VoteKey) -> None:
        if self.pending.pop(key, None) is not None:
            self._per_attempt[key[:2]] -= 1
            if not self._per_attempt[key[:2]]:
                del self._per_attempt[key[:2]]

    async def run(self) -> None:
        """Send what is due, until cancelled."""
        async with trio.open_nursery() as nursery:
            while True:
                now = self.clock()
                self._expire(now)
                while self._due and self._due[0][0] <= now:
                    due_at, key = heapq.heappop(self._due)
                    entry = self.pending.get(key)
                    # Stale, or being sent now (_deliver schedules its next send when done).
                    if entry is None or entry.next_send != due_at or key in self._sending:
                        continue
                    # Backing off: a backlog of votes must not become a flood of resends.
                    entry.next_send = now + min(self.resend_every * 2**entry.sends, MAX_RESEND_S)
                    entry.sends += 1
                    self._sending.add(key)
                    nursery.start_soon(self._deliver, key)
                following = min(
                    self._due[0][0] if self._due else math.inf,
                    self._expiring[0][0] if self._expiring else math.inf,
                )
                with trio.move_on_after(min(max(following - self.clock(), 0), 3600)):
                    await self._wake.wait()
                self._wake = trio.Event()

    def _expire(self, now: float) -> None:
        """Give up the votes whose time has passed."""
        while self._expiring and self._expiring[0][0] <= now:
            expires_at, key = heapq.heappop(self._expiring)
            entry = self.pending.get(key)
            if entry is not None and entry.expires_at == expires_at:
                log.warning("task %d attempt %d: no decision before the deadline; vote given up", *key[:2])
                self.stats.votes_given_up.labels("expired").inc()
                self._drop(key)

    async def _deliver(self, key: VoteKey) -> None:
        try:
            async with self._limiter:
                await self._deliver_once(key)
        finally:
            self._sending.discard(key)
            entry = self.pending.get(key)
            if entry is not None:  # not decided nor refused: its next send (or a new vote's first)
                heapq.heappush(self._due, (entry.next_send, key))
                self._wake.set()

    async def _deliver_once(self, key: VoteKey) -> None:
        entry = self.pending.get(key)
        if entry is None:
            return
        if entry.report is not None:
            try:
                await self.mesh.publish(RESULTS, entry.report)
            except MeshError as error:
                log.debug("task %d: report not republished: %s", key[0], error)
        for peer in self.aggregators:
            try:
                reply = await self.mesh.request(peer, "vote", entry.message, timeout=self.vote_timeout)
            except RemoteError as error:
                if error.code == "rejected":  # it will never count: stop sending it
                    self.stats.votes_sent.labels("rejected").inc()
                    log.warning("task %d attempt %d: vote refused by %s: %s", *key[:2], peer, error)
                    self._drop(key)
                    return
                self.stats.votes_sent.labels("error").inc()
                log.warning("task %d attempt %d: vote not taken by %s: %s", *key[:2], peer, error)
                continue
            except MeshError as error:
                self.stats.votes_sent.labels("unreachable").inc()
                # Said once per vote: an aggregator down for a while must not flood the log.
                level = logging.INFO if not entry.failed else logging.DEBUG
                entry.failed = True
                log.log(
                    level,
                    "task %d attempt %d: vote not delivered to %s (resending): %s",
                    *key[:2],
                    peer,
                    error,
                )
                continue
            # Any other reply counts as "counted": the label's values are ours, never the peer's.
            self.stats.votes_sent.labels("decided" if reply == b"decided" else "counted").inc()
            if reply == b"decided":
                self._drop(key)
                return
