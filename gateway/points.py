"""Points, task counts and leaderboards of keepers and users, kept from the task ledger's events.

**Rules.** When a task turns `completed` (the AttestationCenter approved one of its attempts):

- the approved attempt's performer gets POINTS_PER_EXECUTED (10) and one task executed;
- each other operator whose vote is in that approval (the attempt's `signers`) gets
  POINTS_PER_ATTESTED (2) and one task attested (a performer's vote on its own execution is not
  an attestation, and its stake never counts);
- the job's owner gets POINTS_PER_COMPLETED_TASK (1) and one task completed, plus POINTS_PER_JOB
  (5) and one job run at the job's first completed task. A job earns its points once it ran, not
  when created: creating and cancelling a job costs nothing, so that would hand out points for
  free.

Rejected and failed tasks earn nothing. **Each task is credited once**: the ids of credited
tasks (`points/task`) and of jobs that earned their points (`points/job`) are written in the
batch that adds the points, so a repeated event or a restart never counts anything twice.

**Nothing is missed.** `run` subscribes to the ledger and meanwhile catches up from the store:
every completed task not credited yet (read off the tasks' status index, key by key) and every
job owner without a user record. When the ledger drops the subscription (it fell 256 events
behind), `run` subscribes and catches up again. An approval signed by an operator the directory
does not know yet (registered since its last refresh) has the directory refreshed; a task still
unresolved stays uncredited and is retried every RETRY_SECONDS (and by the next start's catch-up).

**Leaderboards**: per board, a table keyed by `<MAX_POINTS - points, 19 digits>/<address>`,
written in the batch that changes the points, so a scan lists the most points first, equal points
by address. Only entries with points are on a board. A rank is the 1-based place in that order,
counted over the first RANKED places (beyond them it is unknown: None).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Generic, Protocol, TypeVar

import msgspec
import trio

from gateway.ledger import TaskEvent, TaskLedger
from gateway.records import JobRecord, TaskRecord
from gateway.storage import GatewayStorage
from gateway.users import UserRecord, Users
from node.store import KEEPERS, POINTS, Batch, KeySpace, Page, Store, Table
from protocol import OperatorDirectory

log = logging.getLogger("triggerx.gateway")

POINTS_PER_EXECUTED = 10
POINTS_PER_ATTESTED = 2
POINTS_PER_COMPLETED_TASK = 1
POINTS_PER_JOB = 5
MAX_POINTS = 10**19 - 1  # board keys hold 19 digits
RANKED = 10_000  # places a rank is counted over
SEARCH_SCANNED = 200  # records a prefix search reads at most
SEARCH_MATCHES = 10  # entries a search returns at most
RETRY_SECONDS = 30.0  # between tries at tasks whose signers were unknown
REFRESH_TIMEOUT = 10.0  # for re-reading the operator set
CATCH_UP_STEP = 256  # records read between two checkpoints of the event loop


class KeeperTally(msgspec.Struct, rename="camel", kw_only=True):
    """A keeper's (an operator account's) counts and points."""

    address: str
    tasks_executed: int = 0
    tasks_attested: int = 0
    points: int = 0


class BoardEntry(msgspec.Struct, kw_only=True):
    """A place on a leaderboard: whose, and its points."""

    address: str
    points: int


class Credited(msgspec.Struct):
    """A task (or job) whose points are counted."""

    id: int


class Scored(Protocol):
    """A record on a leaderboard."""

    address: str
    points: int


R = TypeVar("R", bound=Scored)


def board_key(points: int, address: str) -> str:
    """Where `address` with `points` stands on a board: most points first, then by address."""
    return f"{MAX_POINTS - min(points, MAX_POINTS):019d}/{address.lower()}"


class Leaderboard(Generic[R]):
    """The records of `records` (keyed by lower-case address) with points, by points."""

    def __init__(self, store: Store, space: KeySpace, records: Table[R]) -> None:
        self.records = records
        self.board = Table(store, BoardEntry, space, key=lambda e: board_key(e.points, e.address))
        self._counting = trio.CapacityLimiter(2)  # searches counting ranks at once

    def moved(self, before: int, record: R, batch: Batch) -> None:
        """Move `record` on the board in `batch`: it had `before` points."""
        if before == record.points:
            return
        if before > 0:
            self.board.delete(board_key(before, record.address), batch=batch)
        if record.points > 0:
            self.board.put(BoardEntry(address=record.address, points=record.points), batch=batch)

    def page(self, limit: int, cursor: str | None) -> Page[R]:
        """A page of the board, most points first; ValueError for a cursor of another query."""
        page = self.board.scan(limit=limit, after=cursor)
        found = [self.records.get(entry.address.lower()) for entry in page.items]
        return Page([record for record in found if record is not None], page.cursor)

    async def search(self, text: str) -> list[tuple[R, int | None]]:
        """The records on the board whose address is `text` (42 characters) or starts with it
        (at most SEARCH_MATCHES, by address), each with its rank."""
        text = text.lower()
        if len(text) == 42:
            exact = self.records.get(text)
            found = [] if exact is None else [exact]
        else:
            found = self.records.scan(prefix=text, limit=SEARCH_SCANNED).items
        matches = [record for record in found if record.points > 0][:SEARCH_MATCHES]
        if not matches:
            return []
        keys = {board_key(record.points, record.address) for record in matches}
        ranks = await trio.to_thread.run_sync(self._ranks, keys, limiter=self._counting)
        return [(record, ranks.get(board_key(record.points, record.address))) for record in matches]

    def _ranks(self, keys: set[str]) -> dict[str, int]:
        """The places of the board entries `keys` among the first RANKED (a worker thread's job)."""
        found: dict[str, int] = {}
        with contextlib.closing(self.board.records()) as entries:
            for place, entry in enumerate(entries, start=1):
                key = board_key(entry.points, entry.address)
                if key in keys:
                    found[key] = place
                if len(found) == len(keys) or place >= RANKED:
                    break
        return found


class Points:
    """Credits completed tasks to keepers and users (module docstring), and serves their boards.

    Args:
        storage: the gateway's tables (tasks and jobs are read, never written).
        users: the users, whose counts and points this keeps.
        ledger: the task ledger, whose events `run` follows.
        directory: the operator set, to name the operators that signed an approval.
        buffer: events the ledger may be ahead before it drops the subscription.
    """

    def __init__(
        self,
        storage: GatewayStorage,
        users: Users,
        ledger: TaskLedger,
        directory: OperatorDirectory,
        *,
        buffer: int = 256,
    ) -> None:
        store = storage.store
        self.storage = storage
        self.users = users
        self.ledger = ledger
        self.directory = directory
        self.buffer = buffer
        self.tallies = Table(store, KeeperTally, KEEPERS.child("tally"), key=lambda k: k.address.lower())
        self.keeper_board = Leaderboard(store, POINTS.child("board").child("keeper"), self.tallies)
        self.user_board = Leaderboard(store, POINTS.child("board").child("user"), users.table)
        self._tasks = Table(store, Credited, POINTS.child("task"), key=lambda c: c.id)
        self._jobs = Table(store, Credited, POINTS.child("job"), key=lambda c: c.id)
        self._pending: set[int] = set()

    def keeper(self, address: str) -> KeeperTally | None:
        """The counts of keeper `address` (any case), if it has any."""
        return self.tallies.get(address.lower())

    def operator_id(self, address: str) -> int | None:
        """The operator id of `address`, if it is a registered operator."""
        operator = self.directory.operator(address)
        return None if operator is None else operator.id

    async def run(self) -> None:
        """Credit completed tasks as the ledger records them, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._retry_pending)
            while True:
                with self.ledger.subscribe(self.buffer) as events:
                    async with trio.open_nursery() as catching_up:
                        catching_up.start_soon(self.catch_up)
                        async for event in events:
                            await self.take(event)
                        catching_up.cancel_scope.cancel()
                log.warning("points fell behind the ledger's events: catching up from the store")

    async def take(self, event: TaskEvent) -> None:
        """Credit `event`'s task if it completed."""
        if event.task.status == "completed":
            await self.credit(event.task)

    async def catch_up(self) -> None:
        """Credit every completed task not credited yet, and make every job owner a user."""
        entries = self.storage.tasks.index_entries("status")
        with contextlib.closing(entries):
            for step, (status, task_id) in enumerate(entries):
                if step % CATCH_UP_STEP == 0:
                    await trio.lowlevel.checkpoint()
                if status != "completed":  # entries are by status: the completed ones are together
                    if str(status) > "completed":
                        break
                    continue
                if self._tasks.get(task_id) is None:
                    task = self.storage.tasks.get(task_id)
                    if task is not None:
                        await self.credit(task)
        owners = self.storage.jobs.index_entries("owner")
        with contextlib.closing(owners):
            for step, (owner, job_id) in enumerate(owners):
                if step % CATCH_UP_STEP == 0:
                    await trio.lowlevel.checkpoint()
                job = None if self.users.get(str(owner)) else self.storage.jobs.get(job_id)
                if job is not None:
                    self.users.ensure(job.owner, job.created_at)

    async def credit(self, task: TaskRecord) -> None:
        """Credit completed `task` once; if an operator that signed its approval is unknown,
        refresh the directory, and if still unknown leave it for `_retry_pending`."""
        if self._credit(task):
            return
        await self._refresh()
        if not self._credit(task):
            log.warning("task %d: a signer of its approval is not a known operator; retrying later", task.id)
            self._pending.add(task.id)

    def _credit(self, task: TaskRecord) -> bool:
        """Credit `task` in one batch (no await: nothing else writes these records meanwhile);
        False if a signer is unknown, so nothing was credited."""
        if task.status != "completed" or self._tasks.get(task.id) is not None:
            return True
        counts: dict[str, tuple[int, int]] = {}  # address -> (executed, attested)
        approved = next((a for a in task.attempts if a.outcome == "approved"), None)
        if approved is not None:
            counts[approved.performer] = (1, 0)
            operators = self.directory.operators.operators
            for operator_id in approved.signers:
                operator = operators.get(operator_id)
                if operator is None:
                    return False
                if operator.account != approved.performer:
                    counts[operator.account] = (0, 1)
        job = self.storage.jobs.get(task.job_id)
        with self.storage.store.batch() as batch:
            for address, (executed, attested) in counts.items():
                self._add_keeper(address, executed, attested, batch)
            if job is not None:
                self._add_user(job, batch)
            self._tasks.put(Credited(task.id), batch=batch)
        return True

    def _add_keeper(self, address: str, executed: int, attested: int, batch: Batch) -> None:
        tally = self.keeper(address) or KeeperTally(address=address)
        updated = msgspec.structs.replace(
            tally,
            tasks_executed=tally.tasks_executed + executed,
            tasks_attested=tally.tasks_attested + attested,
            points=tally.points + executed * POINTS_PER_EXECUTED + attested * POINTS_PER_ATTESTED,
        )
        self.tallies.put(updated, batch=batch)
        self.keeper_board.moved(tally.points, updated, batch)

    def _add_user(self, job: JobRecord, batch: Batch) -> None:
        first_run = self._jobs.get(job.id) is None
        user = self.users.get(job.owner) or UserRecord(address=job.owner, created_at=job.created_at)
        updated = msgspec.structs.replace(
            user,
            jobs_run=user.jobs_run + first_run,
            tasks_completed=user.tasks_completed + 1,
            points=user.points + POINTS_PER_COMPLETED_TASK + (POINTS_PER_JOB if first_run else 0),
        )
        self.users.table.put(updated, batch=batch)
        self.user_board.moved(user.points, updated, batch)
        if first_run:
            self._jobs.put(Credited(job.id), batch=batch)

    async def _refresh(self) -> None:
        with trio.move_on_after(REFRESH_TIMEOUT):
            try:
                await self.directory.refresh()
            except Exception as error:  # the chain may be briefly unreachable: tried again later
                log.warning("operator set refresh failed: %s", error)

    async def _retry_pending(self) -> None:
        while True:
            await trio.sleep(RETRY_SECONDS)
            if not self._pending:
                continue
            await self._refresh()
            for task_id in sorted(self._pending):
                task = self.storage.tasks.get(task_id)
                if task is None or self._credit(task):
                    self._pending.discard(task_id)
