"""The gateway role: the HTTP API, the time scheduler, the dispatcher, the task monitor, keeper health."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import msgspec
import trio
from hypercorn.trio import serve

from consensus.jobs import CANCELLED_TERMS, UNREGISTERED
from consensus.operators import Operator
from gateway.api import create_app
from gateway.http import server_config
from gateway.intake import JobIntake, JobStanding, job_standing
from gateway.records import AttemptRecord, JobRecord
from gateway.storage import DECISIONS_CHECKPOINT, GatewayStorage
from node.chain.errors import ChainError
from node.config.preflight import NodeSetup
from node.dispatcher.assignment import Assignment, time_trigger_evidence
from node.dispatcher.selection import choose_performer
from node.health.tracker import HealthTracker, heartbeat_peer, listen_addrs
from node.mesh import HEARTBEATS, MeshError, MeshNode
from node.messages import AssignmentMessage, Heartbeat, OwnerConsent, decode, encode
from node.monitor import TaskDecision, TaskMonitor
from node.roles.runtime import Chain, OperatorDirectory, load_directory, open_chain, open_mesh
from node.schedulers.time import IntervalSchedule, TimeScheduler
from node.store import Store

log = logging.getLogger("triggerx.gateway")
ACK_TIMEOUT = 5.0
KEEPER_WAIT = 30.0  # how long a task waits for an eligible keeper to come online


def schedule_of(job: JobRecord) -> IntervalSchedule:
    """The interval schedule of `job`; it starts when the job was created unless it says otherwise."""
    schedule = job.spec.schedule
    start = schedule.start if schedule.start is not None else job.created_at
    return IntervalSchedule(every=schedule.every_seconds, start=start, end=schedule.end)


@dataclass
class Waiter:
    """A dispatcher waiting for the chain's decision on one attempt."""

    done: trio.Event
    decision: TaskDecision | None = None


class Gateway:
    """The gateway's services, sharing one store, one chain client and one mesh node."""

    def __init__(
        self,
        setup: NodeSetup,
        chain: Chain,
        directory: OperatorDirectory,
        mesh: MeshNode,
        storage: GatewayStorage,
        nursery: trio.Nursery,
    ) -> None:
        if setup.genesis.dispatcher != setup.operator.address:
            raise RuntimeError(
                f"the genesis names dispatcher {setup.genesis.dispatcher}, not this node's operator"
            )
        self.setup, self.chain, self.directory, self.mesh = setup, chain, directory, mesh
        self.storage, self.nursery = storage, nursery
        self.protocol = setup.genesis.protocol
        self.tracker = HealthTracker(self.protocol.offline_after_seconds)
        self.scheduler = TimeScheduler()
        self.waiters: dict[tuple[int, int], Waiter] = {}
        self.keeper_addrs: dict[str, list[str]] = {}  # peer id -> multiaddrs, from heartbeats
        self._wake = trio.Event()
        self.intake = JobIntake(
            storage,
            chain.hub,
            chain.sender,
            chain.chain_id,
            on_created=self.schedule,
            on_cancelled=self.unschedule,
        )

    def schedule(self, job: JobRecord) -> None:
        """Add `job` to the scheduler (at start, and for each new job)."""
        if job.status == "active":
            self.scheduler.add(job.id, schedule_of(job), job.last_fire, time.time())
            self._wake.set()

    def unschedule(self, job: JobRecord) -> None:
        """Stop firing `job` (cancelled)."""
        self.scheduler.remove(job.id)
        self._wake.set()

    async def run_scheduler(self) -> None:
        """Fire jobs when due: write each task with its job's last fire, then dispatch it."""
        while True:
            now = time.time()
            for fire in self.scheduler.due(now):
                job = self.storage.jobs.get(fire.job_id)
                if job is None or job.status != "active":
                    continue
                task = self.storage.fire(job, fire.at, now, trace_id=uuid.uuid4().hex)
                log.info("job %d fired for %.3f: task %d (trace %s)", job.id, fire.at, task.id, task.trace_id)
                self.nursery.start_soon(self.dispatch, task.id)
            following = self.scheduler.next_fire_time()
            with trio.move_on_after(3600 if following is None else max(following - time.time(), 0)):
                await self._wake.wait()
            self._wake = trio.Event()

    async def track_heartbeats(self) -> None:
        """Keepers' heartbeats → who is online."""
        async with await self.mesh.subscribe(HEARTBEATS) as heartbeats:
            async for delivery in heartbeats:
                try:
                    beat = decode(delivery.payload, Heartbeat)
                except msgspec.MsgspecError:
                    continue
                registered = heartbeat_peer(self.directory.operator(delivery.sender), beat.peer_id)
                if registered is None:
                    continue
                self.keeper_addrs[registered] = listen_addrs(beat.listen_addrs)
                if self.tracker.heartbeat(delivery.sender, registered, time.time()):
                    log.info("keeper %s online (%s)", delivery.sender, beat.peer_id)

    def keeper_status(self) -> list[dict[str, object]]:
        """Every keeper seen, for GET /api/keepers."""
        now = time.time()
        after = self.protocol.offline_after_seconds
        return [
            {
                "address": h.address,
                "peerId": h.peer_id,
                "online": h.online(now, after),
                "lastSeen": h.last_seen,
                "uptime": round(h.uptime(now, after), 4),
            }
            for h in self.tracker.keepers.values()
        ]

    async def dispatch(self, task_id: int) -> None:
        """Run a task's attempts until one is approved on chain or the attempts run out."""
        job = self.storage.jobs.get(self.storage.tasks.get(task_id).job_id)
        try:
            standing = await job_standing(self.chain.hub, job.chain_job_id, job.owner)
        except ChainError as error:
            log.warning("task %d: could not read the job's state on chain: %s", task_id, error)
            standing = None  # the keeper's own checks and the hub still guard the execution
        reason = self._unpayable(job, standing)
        if reason is not None:
            self._update(task_id, status="failed", reason=reason)
            log.warning("task %d not dispatched: %s", task_id, reason)
            return
        # The owner's consent travels with the assignment until the job is registered on chain
        # (the hub's executeFirst also accepts a job registered meanwhile).
        consent = None
        if standing is None or standing.terms_hash == UNREGISTERED:
            consent = OwnerConsent(job.spec.expiry, job.consent_signature)
        tried: list[str] = []
        for attempt in range(1, self.protocol.max_task_attempts + 1):
            performer = await self._performer(task_id, tried)
            if performer is None:
                break
            tried.append(performer.account)
            decision = await self._attempt(task_id, attempt, performer, consent)
            if decision is not None and decision.approved:
                return
            await trio.sleep(self.protocol.retry_backoff_seconds * 2 ** (attempt - 1))
        self._update(task_id, status="failed", reason=f"no approved execution in {len(tried)} attempt(s)")
        log.warning("task %d failed after %d attempt(s)", task_id, len(tried))

    def _unpayable(self, job: JobRecord, standing: JobStanding | None) -> str | None:
        """Why `job` cannot run now (cancelled on chain, owner's balance below the fee cap), or
        None. A job cancelled on chain is marked deleted here too."""
        if standing is None:
            return None
        if standing.terms_hash == CANCELLED_TERMS:
            self.intake.mark_deleted(job)
            return "the owner cancelled the job on chain"
        cap = job.terms.max_fee_per_task
        if standing.balance < cap:
            return f"the owner's balance ({standing.balance} wei) is below the job's fee cap ({cap} wei)"
        return None

    async def _performer(self, task_id: int, tried: list[str]) -> Operator | None:
        with trio.move_on_after(KEEPER_WAIT):
            while True:
                online = {h.address for h in self.tracker.online(time.time())}
                candidates = [op for op in self.directory.operators.active if op.account in online]
                chosen = choose_performer(task_id, candidates, tried, self.directory.operators.total_stake)
                if chosen is not None:
                    return chosen
                await trio.sleep(0.5)
        return None

    async def _attempt(
        self, task_id: int, attempt: int, performer: Operator, consent: OwnerConsent | None
    ) -> TaskDecision | None:
        """Assign one attempt and wait for the chain's decision (None: none in time)."""
        task = self.storage.tasks.get(task_id)
        job = self.storage.jobs.get(task.job_id)
        deadline = int(time.time()) + self.protocol.assignment_ttl_seconds
        assignment = Assignment(
            task_id=task.id,
            job_id=job.chain_job_id,
            attempt=attempt,
            performer=performer.account,
            deadline=deadline,
            terms_hash=job.terms.hash(),
            trigger_evidence=time_trigger_evidence(job.chain_job_id, task.fire_at, job.calldata),
        )
        signature = assignment.sign(self.setup.operator, self.chain.chain_id, self.chain.hub.address)
        order = AssignmentMessage(
            assignment,
            job.terms,
            signature,
            job.calldata,
            consent,
            task.fire_at,
            task.trace_id,
        )
        waiter = self.waiters.setdefault((task_id, attempt), Waiter(trio.Event()))
        record = AttemptRecord(
            number=attempt, performer=performer.account, assigned_at=time.time(), deadline=deadline
        )
        try:
            peer = self.tracker.keepers[performer.account].peer_id
            await self._reach(peer)
            await self.mesh.request(peer, "assign", encode(order), timeout=ACK_TIMEOUT)
        except MeshError as error:
            log.warning(
                "task %d attempt %d: %s did not acknowledge: %s", task_id, attempt, performer.account, error
            )
            self._update(task_id, attempt=msgspec.structs.replace(record, outcome="not acknowledged"))
            return None
        self._update(task_id, status="dispatched", attempt=record)
        with trio.move_on_after(self.protocol.assignment_ttl_seconds + 30):
            await waiter.done.wait()
        self.waiters.pop((task_id, attempt), None)
        if waiter.decision is None:
            self._update(task_id, attempt=msgspec.structs.replace(record, outcome="timed out"))
        return waiter.decision

    async def _reach(self, peer: str) -> None:
        """Dial `peer` unless connected: keepers gossip through the aggregators, but an
        assignment goes to its performer directly."""
        if peer in self.mesh.connected_peers():
            return
        for address in self.keeper_addrs.get(peer, []):
            try:
                await self.mesh.connect(address)
                return
            except (MeshError, OSError, ValueError) as error:
                log.debug("could not dial %s at %s: %s", peer, address, error)

    async def follow_decisions(self) -> None:
        """The AttestationCenter's decisions → task records (with the checkpoint, in one batch:
        see GatewayStorage.record_decision)."""
        checkpoint = self.storage.checkpoints.get(DECISIONS_CHECKPOINT)
        start = checkpoint.next_block if checkpoint else int(await self.chain.rpc.call("eth_blockNumber"), 16)
        monitor = TaskMonitor(self.chain.center, start)
        send, receive = trio.open_memory_channel[TaskDecision](256)
        self.nursery.start_soon(monitor.follow, send)
        async with receive:
            async for decision in receive:
                self.storage.record_decision(decision, monitor.next_block)
                waiter = self.waiters.get((decision.task_id, decision.attempt))
                if waiter is not None:
                    waiter.decision = decision
                    waiter.done.set()

    def _update(
        self,
        task_id: int,
        *,
        status: str | None = None,
        attempt: AttemptRecord | None = None,
        reason: str | None = None,
    ) -> None:
        task = self.storage.tasks.get(task_id)
        if task is None:
            return
        attempts = [a for a in task.attempts if attempt is None or a.number != attempt.number]
        if attempt is not None:
            attempts = sorted([*attempts, attempt], key=lambda a: a.number)
        changes: dict[str, object] = {"attempts": attempts, "updated_at": time.time()}
        if status is not None and task.status != "completed":
            changes["status"] = status
        if reason is not None:
            changes["reason"] = reason
        self.storage.save_task(msgspec.structs.replace(task, **changes))


async def run_gateway(setup: NodeSetup) -> None:
    """Run the gateway role until cancelled."""
    settings = setup.config.settings
    settings.node.data_dir.mkdir(parents=True, exist_ok=True)
    with Store.open(settings.node.data_dir / "gateway.db") as store:
        storage = GatewayStorage(store)
        async with open_chain(setup) as chain:
            directory = await load_directory(setup, chain)
            async with open_mesh(setup, directory) as mesh, trio.open_nursery() as nursery:
                gateway = Gateway(setup, chain, directory, mesh, storage, nursery)
                for job in storage.jobs.records():
                    gateway.schedule(job)
                app = create_app(storage, gateway.keeper_status, intake=gateway.intake)
                nursery.start_soon(serve, app, server_config(str(settings.gateway.http_listen)))
                nursery.start_soon(directory.keep_fresh, 30.0)
                nursery.start_soon(gateway.track_heartbeats)
                nursery.start_soon(gateway.follow_decisions)
                nursery.start_soon(gateway.run_scheduler)
                log.info("gateway up: http://%s, mesh %s", settings.gateway.http_listen, mesh.peer_id)
