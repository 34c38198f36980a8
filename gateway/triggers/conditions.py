"""The condition-trigger service: every condition job of a chain read at each new block, in
one JSON-RPC batch, and a task for each rising edge (protocol/triggers/condition.py).

Each poll asks the chain's head (one request); at a new head, the values of every job are read
at its block (the head less its confirmations) with one batch for all of them, each distinct
value read once however many jobs use it (MAX_BATCH calls per request). HTTP values come from
the WebPoller, which fetches them on their own intervals. A job whose values cannot all be read
keeps its state and shows why (`ConditionState.error`, the API's job view); the others go on.

A rising edge (the condition holds, and did not at the job's previous reading) fires a task,
unless it comes within the job's cooldown of its last fire. The task and the job's new state
are written in one batch (gateway.ledger): a restart that reads the same block again finds
`holds` set and does not fire twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import trio
from msgspec.structs import replace

from gateway.ledger import TaskLedger
from gateway.records import ConditionState, JobRecord, TaskRecord
from gateway.storage import GatewayStorage
from gateway.triggers.chains import WatchedChain, keep_polling, watched_spec
from gateway.triggers.web import WebPoller
from node.chain import Call, ChainError, RpcClient
from node.store import Batch
from protocol.triggers.condition import KIND as CONDITION
from protocol.triggers.condition import ConditionProgram, ReadingEvidence
from protocol.triggers.condition_sources import ChainSource, Reading, SourceError

log = logging.getLogger("triggerx.gateway")

MAX_BATCH = 1_000
"""Calls in one JSON-RPC batch at most (hosted providers cap batches; anvil takes more)."""
MIN_SPLIT = 16
"""Calls in a batch that is not split further when the node refuses it whole."""


@dataclass(frozen=True)
class _Watched:
    """A condition job as the service reads it."""

    job_id: int
    program: ConditionProgram
    confirmations: int
    cooldown: int


@dataclass(frozen=True)
class _Round:
    """What one poll read: the block objects (or errors) and each value's reading, by height."""

    blocks: Mapping[int, Any]
    readings: Mapping[tuple[int, ChainSource], Reading | SourceError]


class ConditionTriggers:
    """Fires condition jobs (see the module docstring); `on_task` gets each new task's id."""

    def __init__(
        self,
        storage: GatewayStorage,
        ledger: TaskLedger,
        on_task: Callable[[int], None],
        chains: list[WatchedChain],
        web: WebPoller,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage, self.ledger, self.on_task, self.web, self.clock = storage, ledger, on_task, web, clock
        self.chains = {chain.chain_id: chain for chain in chains}
        self.metrics = web.metrics
        self._jobs: dict[int, _Watched] = {}
        self._states: dict[int, ConditionState] = {}
        self._heads: dict[int, int] = {}  # chain -> the head last read at

    def schedule(self, job: JobRecord) -> None:
        """Watch `job` if it is an active condition job (ignored otherwise)."""
        spec = watched_spec(job, CONDITION, self.chains)
        if spec is None:
            return
        program = ConditionProgram.of(spec)
        chain = self.chains[program.chain_id]
        confirmations = chain.confirmations if spec.confirmations is None else spec.confirmations
        self._jobs[job.id] = _Watched(job.id, program, confirmations, spec.cooldown_seconds)
        self._states[job.id] = self.storage.condition_states.get(job.id) or ConditionState(job_id=job.id)
        sources = [source for _, source in program.web_sources]
        self.web.watch(job.id, sources, spec.http_every_seconds, job.owner)

    def unschedule(self, job: JobRecord) -> None:
        """Stop watching `job` (cancelled)."""
        self._jobs.pop(job.id, None)
        self._states.pop(job.id, None)
        self.web.unwatch(job.id)

    async def run(self) -> None:
        """Read every chain and fetch the web values until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.web.run)
            for chain in self.chains.values():
                nursery.start_soon(keep_polling, chain, self.poll, self.on_task, "reading conditions")

    async def poll(self, chain_id: int) -> list[int]:
        """Read chain `chain_id`'s condition jobs if its head moved; the tasks that fired."""
        jobs = [job for job in self._jobs.values() if job.program.chain_id == chain_id]
        if not jobs:
            return []
        rpc = self.chains[chain_id].rpc
        try:
            head = int(await rpc.call("eth_blockNumber"), 16)
            if head == self._heads.get(chain_id):
                return []
            heights = {job.job_id: max(head - job.confirmations, 0) for job in jobs}
            read = await self._read(chain_id, jobs, heights)
        except ChainError as error:
            for job in jobs:
                self._failed(job, f"chain {chain_id} could not be read: {error}")
            raise
        self._heads[chain_id] = head
        self.metrics.inc("condition_reads_total", len(jobs))
        fired = (self._evaluate(job, heights[job.job_id], read) for job in jobs)
        return [task_id for task_id in fired if task_id is not None]

    async def _read(self, chain_id: int, jobs: list[_Watched], heights: Mapping[int, int]) -> _Round:
        """Each distinct value of `jobs` at its height, and the blocks, in as few batches as fit."""
        wanted: dict[int, dict[ChainSource, None]] = {}  # height -> its sources, once each, in order
        for job in jobs:
            at_height = wanted.setdefault(heights[job.job_id], {})
            at_height.update(dict.fromkeys(source for _, source in job.program.chain_sources))
        calls: list[Call] = []
        plan: list[tuple[int, ChainSource | None, int]] = []  # height, source (None: the block), first call
        for height, sources in wanted.items():
            plan.append((height, None, len(calls)))
            calls.append(("eth_getBlockByNumber", [hex(height), False]))
            for source in sources:
                plan.append((height, source, len(calls)))
                calls.extend(source.calls(hex(height)))
        rpc = self.chains[chain_id].rpc
        results: list[Any] = []
        for first in range(0, len(calls), MAX_BATCH):
            results.extend(await read_apart(rpc, calls[first : first + MAX_BATCH]))
        blocks: dict[int, Any] = {}
        readings: dict[tuple[int, ChainSource], Reading | SourceError] = {}
        for height, source, first in plan:
            if source is None:
                blocks[height] = results[first]
                continue
            try:
                readings[height, source] = source.read(results[first : first + source.call_count])
            except SourceError as error:
                self.metrics.inc("condition_source_errors_total", source="chain")
                readings[height, source] = error
        return _Round(blocks, readings)

    def _evaluate(self, job: _Watched, height: int, read: _Round) -> int | None:
        """Take `job`'s reading at `height`: record its state, and fire on a rising edge."""
        state = self._states.get(job.job_id)
        if state is None:
            return None  # unscheduled meanwhile
        if state.block is not None and height <= state.block:
            return None  # read before (a restart, or a head that went back)
        block = read.blocks[height]
        if block is None or isinstance(block, Exception):
            self._failed(job, f"block {height} of chain {job.program.chain_id} could not be read: {block}")
            return None
        values: dict[str, Reading | SourceError] = {
            name: read.readings[height, source] for name, source in job.program.chain_sources
        }
        for name, web_source in job.program.web_sources:
            latest = self.web.reading(web_source)
            if latest is None:
                return None  # not fetched yet
            values[name] = latest
        timestamp = int(block["timestamp"], 16)
        try:
            missing = [f"{name}: {value}" for name, value in values.items() if isinstance(value, SourceError)]
            if missing:
                raise SourceError("; ".join(missing))
            readings = {name: value for name, value in values.items() if isinstance(value, Reading)}
            holds = job.program.holds(readings, timestamp)
        except SourceError as error:
            self._failed(job, str(error))
            return None
        now = replace(state, holds=holds, block=height, error=None, error_since=None)
        cooled = state.last_fire is None or timestamp - state.last_fire >= job.cooldown
        if holds and not state.holds and cooled:
            evidence = ReadingEvidence(
                job.program.chain_id,
                height,
                bytes.fromhex(block["hash"][2:]),
                tuple(readings[named.name].raw for named in job.program.sources),
            )
            return self._fire(job, replace(now, last_fire=float(timestamp)), evidence, float(timestamp))
        if (now.holds, now.error) != (state.holds, state.error):
            self.storage.condition_states.put(now)
        self._states[job.job_id] = now
        return None

    def _fire(
        self, job: _Watched, state: ConditionState, evidence: ReadingEvidence, fire_at: float
    ) -> int | None:
        """A task for `job`'s rising edge at `fire_at` (its block's time), written with `state`."""
        record = self.storage.jobs.get(job.job_id)
        if record is None or record.status != "active":
            return None

        def with_it(batch: Batch, task: TaskRecord) -> None:
            self.storage.condition_states.put(state, batch=batch)

        task = self.ledger.create(record, fire_at, detail=evidence.encode(), with_it=with_it)
        self._states[job.job_id] = state
        self.metrics.inc("condition_fires_total")
        log.info(
            "job %d fired by its condition at block %d: task %d", job.job_id, evidence.block_number, task.id
        )
        return task.id

    def _failed(self, job: _Watched, problem: str) -> None:
        """Show `problem` on `job` (written when it changes); its state otherwise stands."""
        state = self._states.get(job.job_id)
        if state is None or state.error == problem:
            return
        failed = replace(state, error=problem, error_since=self.clock())
        self.storage.condition_states.put(failed)
        self._states[job.job_id] = failed


async def read_apart(rpc: RpcClient, calls: list[Call]) -> list[Any]:
    """The results of `calls` in one batch, each a result or its error. A batch the node fails
    whole (too slow, too large an answer: one job's call can make it so) is asked again in
    halves, so that only the calls at fault fail (down to MIN_SPLIT calls, which fail together)."""
    try:
        return await rpc.batch(calls, return_exceptions=True)
    except ChainError as error:
        if len(calls) <= MIN_SPLIT:
            return [error] * len(calls)
        half = len(calls) // 2
        return [*await read_apart(rpc, calls[:half]), *await read_apart(rpc, calls[half:])]
