"""The gateway's tables: jobs, tasks (changed only through gateway.ledger), the last and next
fire times of each scheduled job, the logs that fired event jobs, the states of condition
jobs, uploaded scripts, id sequences and chain checkpoints."""

from __future__ import annotations

import msgspec

from gateway.jobs import ValidJob
from gateway.records import ConditionState, FiredLog, FireTimes, JobRecord, Sequence, StoredScript, TaskRecord
from node.store import CHECKPOINTS, JOBS, SCHEDULES, SCRIPTS, TASKS, Batch, Index, KeyPart, Page, Store, Table

DECISIONS_CHECKPOINT = "attestations"
MAX_UNPINNED_SCRIPTS = 256
"""Uploads no job names yet, at most (64 KiB each: 16 MiB)."""
UNPINNED_SCRIPTS_PER_CLIENT = 16
"""Of those, one client's at most (gateway.clients): its next upload pushes out its oldest."""
UNPINNED_SCRIPT_SECONDS = 86_400.0
"""How long an upload waits for a job to name it."""


class Checkpoint(msgspec.Struct):
    """The next block a chain follower reads."""

    name: str
    next_block: int


class GatewayStorage:
    """Jobs, tasks, fire times and id sequences in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.jobs = Table(
            store,
            JobRecord,
            JOBS,
            key=lambda j: j.id,
            indexes=[
                Index("owner", lambda j: j.owner),
                Index("owner_status", lambda j: f"{j.owner}/{j.status}"),
                Index("chain", lambda j: j.chain_job_id.to_bytes(32, "big")),
            ],
        )
        self.tasks = Table(
            store,
            TaskRecord,
            TASKS,
            key=lambda t: t.id,
            indexes=[Index("job", lambda t: t.job_id), Index("status", lambda t: t.status)],
        )
        self.fire_times = Table(store, FireTimes, SCHEDULES.child("fires"), key=lambda f: f.job_id)
        self.fired_logs = Table(store, FiredLog, SCHEDULES.child("logs"), key=lambda f: f.key)
        self.condition_states = Table(
            store, ConditionState, SCHEDULES.child("conditions"), key=lambda c: c.job_id
        )
        self.scripts = Table(
            store,
            StoredScript,
            SCRIPTS,
            key=lambda s: s.cid,
            indexes=[
                Index("unpinned", lambda s: None if s.pinned else int(s.uploaded_at * 1000)),
                Index("uploader", lambda s: None if s.pinned else s.client),
            ],
        )
        self.sequences = Table(store, Sequence, SCHEDULES.child("seq"), key=lambda s: s.name)
        self.checkpoints = Table(store, Checkpoint, CHECKPOINTS, key=lambda c: c.name)

    def job_by_chain_id(self, chain_job_id: int) -> JobRecord | None:
        """The job whose id on chain is `chain_job_id`, if this gateway has it."""
        page = self.jobs.by_index("chain", chain_job_id.to_bytes(32, "big"), limit=1)
        return page.items[0] if page.items else None

    def active_jobs_of(self, owner: str, limit: int) -> int:
        """How many of `owner`'s jobs are active (counting at most `limit`)."""
        return len(self.jobs.by_index("owner_status", f"{owner}/active", limit=limit).items)

    def keep_script(self, cid: str, data: bytes, now: float, client: str = "") -> None:
        """Keep a script (`data`, named `cid`) uploaded by `client` (gateway.clients), unpinned
        until a job names it. An upload costs its sender nothing, so it must cost us little,
        and one client's uploads must not push out the others': unpinned uploads older than
        UNPINNED_SCRIPT_SECONDS go; beyond UNPINNED_SCRIPTS_PER_CLIENT, the client's own
        oldest; beyond MAX_UNPINNED_SCRIPTS in all, the oldest of the client holding the most
        (of those holding as many, the one whose oldest is oldest). Bytes uploaded again
        become the new uploader's, for another UNPINNED_SCRIPT_SECONDS."""
        stored = self.scripts.get(cid)
        if stored is not None and stored.pinned:
            return
        uploaders = {key: str(who) for who, key in self.scripts.index_entries("uploader")}
        cutoff = int((now - UNPINNED_SCRIPT_SECONDS) * 1000)
        doomed: list[KeyPart] = []
        held: dict[str, list[tuple[int, KeyPart]]] = {}  # each client's uploads, oldest first
        for uploaded, key in self.scripts.index_entries("unpinned"):  # by upload time
            if key == cid:
                continue  # this upload replaces it
            if int(uploaded) < cutoff:
                doomed.append(key)
            else:
                held.setdefault(uploaders.get(key, ""), []).append((int(uploaded), key))
        mine = held.setdefault(client, [])  # without this upload, which counts in all that follows
        while mine and len(mine) + 1 > UNPINNED_SCRIPTS_PER_CLIENT:
            doomed.append(mine.pop(0)[1])
        count = sum(len(uploads) for uploads in held.values()) + 1
        while count > MAX_UNPINNED_SCRIPTS:
            most = max(
                (uploads for uploads in held.values() if uploads),
                key=lambda uploads: (len(uploads) + (uploads is mine), -uploads[0][0]),
            )
            doomed.append(most.pop(0)[1])
            count -= 1
        with self.store.batch() as batch:
            for key in doomed:
                self.scripts.delete(key, batch=batch)
            self.scripts.put(StoredScript(cid=cid, data=data, uploaded_at=now, client=client), batch=batch)

    def create_job(self, job: ValidJob, now: float, trace_id: str = "") -> JobRecord:
        """Store a new job (see create_jobs)."""
        return self.create_jobs([job], now, trace_id)[0]

    def create_jobs(self, jobs: list[ValidJob], now: float, trace_id: str = "") -> list[JobRecord]:
        """Store new jobs under the next job ids, in order and in one batch (all or none: a
        linked chain), their scripts pinned; the caller checked their chain ids are new.
        `trace_id` is the creating request's."""
        records = []
        with self.store.batch() as batch:
            for job_id, job in enumerate(jobs, start=self.next_id("job", batch, count=len(jobs))):
                record = JobRecord(
                    id=job_id,
                    owner=job.owner,
                    chain_job_id=job.chain_job_id,
                    spec=job.spec,
                    calldata=job.calldata,
                    terms=job.terms,
                    consent_signature=job.consent_signature,
                    created_at=now,
                    trace_id=trace_id,
                )
                self.jobs.put(record, batch=batch)
                records.append(record)
                call = job.spec.script_call
                stored = None if call is None else self.scripts.get(call.cid)
                if stored is not None and not stored.pinned:
                    self.scripts.put(msgspec.structs.replace(stored, pinned=True), batch=batch)
        return records

    def tasks_of_job(self, job_id: int, *, limit: int, after: str | None) -> Page[TaskRecord]:
        """A page of `job_id`'s tasks, oldest first."""
        return self.tasks.by_index("job", job_id, limit=limit, after=after)

    def next_id(self, name: str, batch: Batch, count: int = 1) -> int:
        """The next id of kind `name` (the first of the next `count`), its sequence advanced in `batch`."""
        current = self.sequences.get(name)
        first = (current.last if current else 0) + 1
        self.sequences.put(Sequence(name, first + count - 1), batch=batch)
        return first
