"""The `after` trigger service: fires each active `after` job (a successor) once for every task
of its predecessor that completes (protocol.triggers.after; docs/protocol.md, Triggers).

A successor fires for the predecessor's tasks created since it was scheduled: since it was
created, or since it was scheduled again while the service runs (a job made active again),
never for older ones. The fire time is the block time of the approval, read from the home
chain; the fire's detail names the approval.

Live, the service follows the ledger's stream: a task that turns `completed` fires its job's
successors. Nothing is lost across a crash: a successor's task is written in one batch with
its `AfterFire` record (this predecessor task fired this successor: never a second task for
it), and `catch_up`, at start and whenever the stream was dropped (the service fell behind)
or the chain could not be read, fires every completed predecessor task that has no record.
A successor's `AfterState.settled` moves over the predecessor's tasks that are final (and
fired, if completed), so a catch-up reads only the tasks still in flight and those after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
import trio
import trio.lowlevel

from gateway import GatewayStorage, JobRecord, TaskLedger, TaskRecord
from gateway.ledger import TERMINAL
from node.chain import ChainError, RpcClient
from node.store import SCHEDULES, Batch, Table
from node.store.keys import encode_cursor, encode_part
from protocol.triggers import TriggerSpecError
from protocol.triggers.after import KIND as AFTER
from protocol.triggers.after import ApprovalEvidence, predecessor_of

log = logging.getLogger("triggerx.gateway")

PAGE = 256  # predecessor tasks read at a time
BLOCK_TIMES = 64  # approval blocks whose time is remembered (several tasks are often decided in one)
CHAIN_RETRY = 5.0  # seconds before catching up again after the chain could not be read
EVENTS_BUFFER = 1024  # ledger events the service may lag behind before it is dropped (and catches up)


class AfterFire(msgspec.Struct, kw_only=True):
    """A predecessor's task that fired a successor: `key` is `<successor job>/<predecessor
    task>`, `task_id` the successor's task."""

    key: str
    task_id: int


class AfterState(msgspec.Struct, kw_only=True):
    """Where successor `job_id` is in its predecessor's tasks: it fires for those from
    `first_task` on; those up to `settled` need no look at a restart."""

    job_id: int
    first_task: int
    settled: int


class AfterTriggers:
    """Fires `after` jobs (see the module docstring); `on_task` gets each new task's id, and
    `home` is the home chain's node (the approvals' block times)."""

    def __init__(
        self, storage: GatewayStorage, ledger: TaskLedger, on_task: Callable[[int], None], home: RpcClient
    ) -> None:
        self.storage, self.ledger, self.on_task, self.home = storage, ledger, on_task, home
        self.fired = Table(storage.store, AfterFire, SCHEDULES.child("after"), key=lambda f: f.key)
        self.states = Table(storage.store, AfterState, SCHEDULES.child("after-state"), key=lambda s: s.job_id)
        self.successors: dict[int, set[int]] = {}  # predecessor job -> its scheduled successors
        self._predecessor: dict[int, int] = {}  # successor job -> its predecessor job
        self._block_times: dict[int, int] = {}
        self._running = False

    def schedule(self, job: JobRecord) -> None:
        """Fire `job` after its predecessor's tasks if it is an active `after` job (ignored
        otherwise, and when already scheduled)."""
        if job.status != "active" or job.spec.schedule_type != AFTER.name or job.id in self._predecessor:
            return
        try:
            chain_job_id = predecessor_of(AFTER.decode(job.spec.schedule))
        except TriggerSpecError as error:
            log.error("job %d not scheduled: its after spec is refused: %s", job.id, error)
            return
        predecessor = self.storage.job_by_chain_id(chain_job_id)
        if predecessor is None:  # the intake takes none such: a store from elsewhere
            log.error("job %d not scheduled: this gateway has no job %d to follow", job.id, chain_job_id)
            return
        if self._running or self.states.get(job.id) is None:  # new, or active again: from now on
            sequence = self.storage.sequences.get("task")
            first = (sequence.last if sequence else 0) + 1
            self.states.put(AfterState(job_id=job.id, first_task=first, settled=first - 1))
        self._predecessor[job.id] = predecessor.id
        self.successors.setdefault(predecessor.id, set()).add(job.id)

    def unschedule(self, job: JobRecord) -> None:
        """Stop firing `job` (cancelled)."""
        predecessor = self._predecessor.pop(job.id, None)
        if predecessor is not None:
            self.successors[predecessor].discard(job.id)
            if not self.successors[predecessor]:
                del self.successors[predecessor]

    async def run(self) -> None:
        """Follow the ledger and fire successors until cancelled, catching up first."""
        self._running = True
        while True:
            events = self.ledger.subscribe(EVENTS_BUFFER)
            try:
                with events:
                    await self.catch_up()
                    async for event in events:
                        if event.task.status == "completed" and event.task.job_id in self.successors:
                            await self.completed(event.task)
                log.warning("the after trigger fell behind the ledger: catching up")
            except ChainError as error:
                log.warning("after trigger: cannot read the chain (%s); catching up soon", error)
                await trio.sleep(CHAIN_RETRY)
            except Exception:  # one task's trouble must not stop every chain of jobs
                log.exception("after trigger failed; catching up soon")
                await trio.sleep(CHAIN_RETRY)

    async def completed(self, task: TaskRecord) -> list[int]:
        """Fire the successors of `task`'s job for it (a task that completed); the tasks made."""
        made: list[int] = []
        for successor in sorted(self.successors.get(task.job_id, ())):
            made += await self._fire(successor, task)
            await self._sweep(successor, task.job_id, pages=1)  # settle what is now behind
        return made

    async def catch_up(self) -> list[int]:
        """Fire every scheduled successor for its predecessor's completed tasks that fired none
        yet (what a crash, a dropped stream or an unreadable chain missed); the tasks made."""
        made: list[int] = []
        for predecessor, successors in list(self.successors.items()):
            for successor in sorted(successors):
                made += await self._sweep(successor, predecessor, pages=None)
        return made

    async def _sweep(self, successor: int, predecessor: int, pages: int | None) -> list[int]:
        """Read the predecessor's tasks after the successor's `settled` (at most `pages` pages;
        None: all), fire it for each completed one without a record, and move `settled` over
        the final ones in front."""
        state = self.states.get(successor)
        if state is None:
            return []
        made: list[int] = []
        settled, in_flight = state.settled, False
        after = None if settled == 0 else encode_cursor(encode_part(settled))
        while pages is None or pages > 0:
            page = self.storage.tasks_of_job(predecessor, limit=PAGE, after=after)
            for task in page.items:
                if task.status == "completed":
                    made += await self._fire(successor, task)
                in_flight = in_flight or task.status not in TERMINAL
                if not in_flight:
                    settled = task.id
            current = self.states.get(successor)
            if current is not None and settled > current.settled:
                self.states.put(msgspec.structs.replace(current, settled=settled))
            if page.cursor is None:
                break
            after, pages = page.cursor, None if pages is None else pages - 1
            await trio.lowlevel.checkpoint()
        return made

    async def _fire(self, successor: int, task: TaskRecord) -> list[int]:
        """A task of `successor` for its predecessor's completed `task`, unless it has one, is not
        active, or came after `task` was created; ChainError when the approval's block time
        cannot be read."""
        key = f"{successor}/{task.id}"
        state = self.states.get(successor)
        if state is None or task.id < state.first_task or self.fired.get(key) is not None:
            return []
        if task.decision_block is None or task.submission_tx is None:
            log.error("task %d completed without its decision's block: job %d not fired", task.id, successor)
            return []
        at = await self._block_time(task.decision_block)
        job = self.storage.jobs.get(successor)
        # Looked at again after the read: the job may have been cancelled, or fired, meanwhile.
        if at is None or job is None or job.status != "active" or self.fired.get(key) is not None:
            return []
        evidence = ApprovalEvidence(task.id, bytes.fromhex(task.submission_tx[2:]), task.decision_block)

        def with_it(batch: Batch, made: TaskRecord) -> None:
            self.fired.put(AfterFire(key=key, task_id=made.id), batch=batch)

        new = self.ledger.create(job, float(at), detail=evidence.encode(), with_it=with_it)
        log.info("job %d after task %d: task %d (trace %s)", successor, task.id, new.id, new.trace_id)
        self.on_task(new.id)
        return [new.id]

    async def _block_time(self, number: int) -> int | None:
        """The timestamp of home block `number`; None when the chain has no such block (the
        approval was reorged away: it fires nothing)."""
        if number not in self._block_times:
            block = await self.home.call("eth_getBlockByNumber", hex(number), False)
            if block is None:
                log.error("block %d of an approval is not on the chain: nothing fired for it", number)
                return None
            if len(self._block_times) >= BLOCK_TIMES:
                del self._block_times[next(iter(self._block_times))]
            self._block_times[number] = int(block["timestamp"], 16)
        return self._block_times[number]
