"""The keeper role: perform assigned tasks, attest to the others', send heartbeats."""

from __future__ import annotations

import logging
import time

import msgspec
import trio

from node.bls import choose_backend
from node.chain import ChainError
from node.config import ConfigError, NodeSetup
from node.keeper import (
    AssignmentRefused,
    ResultChecker,
    ScriptRunner,
    TaskExecutor,
    VoteKey,
    VoteSender,
    report_problem,
)
from node.mesh import HEARTBEATS, RESULTS, MeshError, MeshNode
from node.metrics import MESH_DROPS, KeeperMetrics, NodeMetrics, start_metrics
from node.roles.runtime import (
    Chain,
    aggregator_peers,
    chain_nodes,
    load_directory,
    open_chain,
    open_mesh,
    open_scripts,
    open_watched,
)
from node.web import JsonValues, WebLimits
from protocol import (
    AssignmentMessage,
    Heartbeat,
    OperatorDirectory,
    ResultMessage,
    TaskInfo,
    Vote,
    VoteMessage,
    decode,
    encode,
)
from protocol.triggers import Readers

log = logging.getLogger("triggerx.keeper")
VOTE_GRACE = 60.0  # how long after an assignment's deadline its votes are still resent
ABSTAIN_MEMORY = 30.0  # seconds a report abstained on is not checked again
# Reports checked at once (each may wait up to the attester's visibility timeout); more are
# dropped and counted, so a flood of reports costs a bounded number of tasks.
MAX_CONCURRENT_CHECKS = 64


class Keeper:
    """One keeper's services over its chain client and mesh node."""

    def __init__(
        self,
        setup: NodeSetup,
        chain: Chain,
        directory: OperatorDirectory,
        mesh: MeshNode,
        nursery: trio.Nursery,
        readers: Readers | None = None,
        scripts: ScriptRunner | None = None,
        stats: KeeperMetrics | None = None,
    ) -> None:
        me = directory.operator(setup.operator.address)
        if me is None or not me.active:
            raise ConfigError(
                f"keys.operator_keystore: {setup.operator.address} is not an active operator of the registry"
            )
        if setup.bls_secret is None:
            raise ConfigError("keys.bls_keystore: a keeper needs its BLS key to vote")
        self.setup, self.chain, self.directory, self.mesh, self.nursery = (
            setup,
            chain,
            directory,
            mesh,
            nursery,
        )
        self.me = me
        self.dispatcher = setup.genesis.dispatcher
        self.aggregators = aggregator_peers(setup)
        self.stats = stats or KeeperMetrics()
        self.votes = VoteSender(mesh, self.aggregators, stats=self.stats)
        self._checking: set[VoteKey] = set()  # reports whose execution is being checked on chain
        # Reports abstained on, until when: a copy republished meanwhile is not checked again (a
        # job's script would run once per copy).
        self._abstained: dict[VoteKey, float] = {}
        self.backend = choose_backend()
        readers = readers or Readers({chain.chain_id: chain.hub.rpc})
        self.executor = TaskExecutor(
            chain.hub,
            chain.sender,
            dispatcher=self.dispatcher,
            operator_id=me.id,
            chain_id=chain.chain_id,
            readers=readers,
            scripts=scripts,
            stats=self.stats,
        )
        self.checker = ResultChecker(chain.hub, readers=readers, scripts=scripts, stats=self.stats)
        self.checks = trio.CapacityLimiter(MAX_CONCURRENT_CHECKS)

    async def on_assign(self, sender: str, payload: bytes) -> bytes:
        """The dispatcher's `assign` request: acknowledge now, execute in the background."""
        try:
            return self._accept(sender, payload)
        except AssignmentRefused:
            self.stats.tasks.labels("refused").inc()
            raise

    def _accept(self, sender: str, payload: bytes) -> bytes:
        if sender != self.dispatcher:
            raise AssignmentRefused("only the dispatcher assigns tasks")
        try:
            order = decode(payload, AssignmentMessage)
        except msgspec.MsgspecError as error:
            raise AssignmentRefused(f"not an assignment message: {error}") from None
        assignment = order.assignment
        if assignment.performer != self.me.account:
            raise AssignmentRefused(f"task {assignment.task_id} is assigned to {assignment.performer}")
        problem = self.executor.refusal(order)
        if problem is not None:  # said now, not after the ack: the dispatcher moves on at once
            raise AssignmentRefused(f"task {assignment.task_id}: {problem}")
        self.nursery.start_soon(self.perform, order)
        return b"ack"

    async def perform(self, order: AssignmentMessage) -> None:
        """Execute an assignment, publish the signed result, and co-sign its approval.

        Nothing one task does may stop the keeper: every failure is logged, never raised."""
        assignment = order.assignment
        try:
            await self._perform(order)
        except (AssignmentRefused, ChainError, MeshError) as error:
            log.warning("task %d attempt %d not executed: %s", assignment.task_id, assignment.attempt, error)
        except Exception:
            log.exception("task %d attempt %d failed", assignment.task_id, assignment.attempt)

    async def _perform(self, order: AssignmentMessage) -> None:
        result, evidence = await self.executor.perform(order)
        report = ResultMessage(order, result, b"", evidence.input, list(evidence.exchanges))
        task = report.task_info()
        signature = task.sign_as_performer(
            self.setup.operator, self.chain.chain_id, self.chain.center.address
        )
        report = msgspec.structs.replace(report, performer_signature=signature)
        log.info("task %d attempt %d executed in %s", task.task_id, task.attempt, "0x" + result.tx_hash.hex())
        self.send_vote(report, approve=True, own=True)

    async def attest(self) -> None:
        """Check every result published by another keeper and vote on it."""
        async with await self.mesh.subscribe(RESULTS) as results:
            async for delivery in results:
                if self.checks.available_tokens == 0:
                    self.stats.reports_unchecked.labels("busy").inc()
                    continue
                self.nursery.start_soon(self.check_report, delivery.sender, delivery.payload)

    async def check_report(self, sender: str, payload: bytes) -> None:
        """Vote on one performer's report, after checking it against the chain.

        A peer's report can make this fail in ways no check foresaw; that must cost one
        report, never the keeper: every failure is logged, never raised."""
        async with self.checks:
            try:
                await self._check_report(sender, payload)
            except (ChainError, MeshError) as error:
                self.stats.reports_unchecked.labels("error").inc()
                log.warning("a report from %s could not be checked: %s", sender, error)
            except Exception:
                self.stats.reports_unchecked.labels("error").inc()
                log.exception("a report from %s could not be checked", sender)

    async def _check_report(self, sender: str, payload: bytes) -> None:
        try:
            report = decode(payload, ResultMessage)
        except msgspec.MsgspecError as error:
            self.stats.reports_unchecked.labels("invalid").inc()
            log.warning("dropped a malformed result from %s: %s", sender, error)
            return
        order = report.order
        assignment = order.assignment
        task = report.task_info()
        key = _vote_key(task)
        if key in self._abstained and self._abstained[key] > time.monotonic():
            return
        if report.result.performer_id == self.me.id or self.votes.holds(key) or key in self._checking:
            return  # ours, voted on already (the vote is being resent), or being checked now
        if not self.votes.room_for(task.task_id, task.attempt):
            log.warning(
                "task %d attempt %d: too many results; not checking another", task.task_id, task.attempt
            )
            return
        problem = report_problem(
            report,
            sender,
            self.directory.operators,
            dispatcher=self.dispatcher,
            chain_id=self.chain.chain_id,
            hub=self.chain.hub.address,
        )
        if problem is not None:
            self.stats.reports_unchecked.labels("invalid").inc()
            log.warning("task %d: not voting on a report from %s: %s", assignment.task_id, sender, problem)
            return
        self._checking.add(key)  # copies arriving meanwhile (republished, relayed) are not checked again
        try:
            verdict = await self.checker.check(order, report.result, report.script_evidence())
        finally:
            self._checking.discard(key)
        if verdict is None or verdict.abstain:
            why = "cannot check it yet" if verdict is None else verdict.reason
            log.warning("task %d attempt %d: abstaining: %s", assignment.task_id, assignment.attempt, why)
            now = time.monotonic()
            self._abstained = {k: until for k, until in self._abstained.items() if until > now}
            self._abstained[key] = now + ABSTAIN_MEMORY
            return
        log.info("task %d attempt %d: %s (%s)", assignment.task_id, assignment.attempt,
                 "approve" if verdict.approve else "reject", verdict.reason)  # fmt: skip
        self.send_vote(report, approve=verdict.approve)

    def send_vote(self, report: ResultMessage, *, approve: bool, own: bool = False) -> None:
        """Sign a vote on `report` and deliver it to the aggregators until the attempt is
        decided (see node.keeper.votes); the performer's `own` report is republished with it."""
        task = report.task_info()
        vote = Vote.cast(
            self.backend,
            self.setup.bls_secret,
            self.me.id,
            task,
            approve,
            self.chain.chain_id,
            self.chain.center.address,
        )
        message = encode(VoteMessage(report, vote, report.order.trace_id))
        expires_at = report.order.assignment.deadline + VOTE_GRACE
        self.votes.add(_vote_key(task), message, expires_at, encode(report) if own else None)

    async def send_heartbeats(self) -> None:
        """Tell the gateway, every heartbeat interval, that this keeper is alive."""
        interval = self.setup.genesis.protocol.heartbeat_interval_seconds
        while True:
            beat = Heartbeat(self.mesh.peer_id, time.time(), self.mesh.listen_addrs)
            await self.mesh.publish(HEARTBEATS, encode(beat))
            await trio.sleep(interval)


async def run_keeper(setup: NodeSetup) -> None:
    """Run the keeper role until cancelled; its metrics on `[node] metrics_listen`, if set."""
    web_limits = WebLimits(allow_private=setup.config.settings.node.private_http_sources)
    metrics = NodeMetrics()
    async with (
        open_chain(setup) as chain,
        open_watched(setup, chain) as others,
        JsonValues(web_limits) as web,
        open_scripts(setup) as scripts,
    ):
        directory = await load_directory(setup, chain)
        async with open_mesh(setup, directory) as mesh, trio.open_nursery() as nursery:
            readers = Readers(chain_nodes(chain, others), web)
            metrics.export_counts(mesh.metrics, MESH_DROPS)
            keeper = Keeper(setup, chain, directory, mesh, nursery, readers, scripts, KeeperMetrics(metrics))
            await start_metrics(nursery, metrics, setup.config.settings.node.metrics_listen)
            mesh.register_handler("assign", keeper.on_assign)
            nursery.start_soon(directory.keep_fresh, 30.0)
            nursery.start_soon(keeper.attest)
            nursery.start_soon(keeper.votes.run)
            nursery.start_soon(keeper.send_heartbeats)
            log.info("keeper %s (operator %d) up as %s", setup.operator.address, keeper.me.id, mesh.peer_id)


def _vote_key(task: TaskInfo) -> VoteKey:
    return (task.task_id, task.attempt, task.result_hash)
