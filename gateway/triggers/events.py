"""The event-trigger service: a LogFollower for each watched chain; each log that fires a job
becomes a task written by the ledger, in one batch with the log's key (no second task for
it, ever) and the chain's checkpoint (where a restart reads from)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from gateway import FiredLog, GatewayStorage, JobRecord, TaskLedger, TaskRecord
from gateway.storage import Checkpoint
from gateway.triggers.chains import WatchedChain, keep_polling, watched_spec
from gateway.triggers.logs import MAX_DEPTH, REORG_MARGIN, LogFollower, LogMatch
from node.store import Batch
from protocol.triggers.event import KIND as EVENT
from protocol.triggers.event import EventFilter

log = logging.getLogger("triggerx.gateway")

CHECKPOINT_EVERY = 100
"""Blocks a chain's checkpoint may lag while no log fires (a restart reads them again)."""
PRUNE_BATCH = 1_000
"""Fired logs' keys forgotten at most at each checkpoint (the rest at the next ones)."""


def checkpoint_name(chain_id: int) -> str:
    """The chain's checkpoint in the store's checkpoints table."""
    return f"logs:{chain_id}"


class EventTriggers:
    """Fires event jobs (see the module docstring); `on_task` gets each new task's id."""

    def __init__(
        self,
        storage: GatewayStorage,
        ledger: TaskLedger,
        on_task: Callable[[int], None],
        chains: list[WatchedChain],
    ) -> None:
        self.storage, self.ledger, self.on_task = storage, ledger, on_task
        self.chains = {chain.chain_id: chain for chain in chains}
        self.followers: dict[int, LogFollower] = {}
        for chain in chains:
            checkpoint = storage.checkpoints.get(checkpoint_name(chain.chain_id))
            start = None if checkpoint is None else checkpoint.next_block
            self.followers[chain.chain_id] = LogFollower(
                chain.rpc, chain.chain_id, confirmations=chain.confirmations, start=start
            )
        self._saved: dict[int, int] = {}  # chain -> the checkpoint last written

    def schedule(self, job: JobRecord) -> None:
        """Watch `job`'s logs if it is an active event job (ignored otherwise)."""
        spec = watched_spec(job, EVENT, self.followers)
        if spec is None:
            return
        event_filter = EventFilter.of(spec)
        follower = self.followers[event_filter.chain_id]
        follower.watch(job.id, event_filter)

    def unschedule(self, job: JobRecord) -> None:
        """Stop watching `job` (cancelled)."""
        for follower in self.followers.values():
            follower.unwatch(job.id)

    async def run(self) -> None:
        """Follow every chain until cancelled."""
        async with trio.open_nursery() as nursery:
            for chain_id in self.followers:
                nursery.start_soon(
                    keep_polling, self.chains[chain_id], self.poll, self.on_task, "reading logs"
                )

    async def poll(self, chain_id: int) -> list[int]:
        """Poll chain `chain_id` once; the tasks it fired (what `run` does on every poll)."""
        follower = self.followers[chain_id]
        matches = await follower.poll()
        created = []
        for position, match in enumerate(matches):
            # What a restart reads from if it comes before the next match's task is written.
            after = matches[position + 1].evidence.block_number if position + 1 < len(matches) else None
            resume = follower.resume_from if after is None else min(after, follower.resume_from or after)
            task_id = self._fire(chain_id, match, resume)
            if task_id is not None:
                created.append(task_id)
        resume_from = follower.resume_from
        if resume_from is not None and resume_from - self._saved.get(chain_id, 0) >= CHECKPOINT_EVERY:
            self.storage.checkpoints.put(Checkpoint(checkpoint_name(chain_id), resume_from))
            self._saved[chain_id] = resume_from
            self.prune(chain_id, resume_from - MAX_DEPTH - REORG_MARGIN)
        return created

    def prune(self, chain_id: int, below: int) -> int:
        """Forget the keys of chain `chain_id`'s logs in blocks below `below`, which no restart
        or reorg reads again (at most PRUNE_BATCH, oldest first); how many were forgotten."""
        page = self.storage.fired_logs.scan(f"{chain_id}/", limit=PRUNE_BATCH)
        old = [fired.key for fired in page.items if int(fired.key.split("/")[1]) < below]
        with self.storage.store.batch() as batch:
            for key in old:
                self.storage.fired_logs.delete(key, batch=batch)
        return len(old)

    def _fire(self, chain_id: int, match: LogMatch, resume: int | None) -> int | None:
        evidence = match.evidence
        # Zero-padded, so that keys sort by block (pruning reads the oldest first).
        where = f"{evidence.block_number:012d}/0x{evidence.block_hash.hex()}/{evidence.log_index}"
        key = f"{chain_id}/{where}/{match.job_id}"
        if self.storage.fired_logs.get(key) is not None:
            return None  # read again after a restart: it made its task before
        job = self.storage.jobs.get(match.job_id)
        if job is None or job.status != "active":
            return None

        def with_it(batch: Batch, task: TaskRecord) -> None:
            self.storage.fired_logs.put(FiredLog(key=key, task_id=task.id), batch=batch)
            if resume is not None:
                self.storage.checkpoints.put(Checkpoint(checkpoint_name(chain_id), resume), batch=batch)
                self._saved[chain_id] = resume

        task = self.ledger.create(job, float(match.timestamp), detail=evidence.encode(), with_it=with_it)
        log.info("job %d fired by log %s: task %d (trace %s)", job.id, key, task.id, task.trace_id)
        return task.id
