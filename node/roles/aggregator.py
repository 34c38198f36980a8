"""The aggregator role: collect votes, decide, submit the proof on chain, announce finality.

A vote signs one claimed result (a TaskInfo), so votes are collected per (task id, attempt,
result hash), each collector counting only votes on exactly its TaskInfo. A collector is
opened only for a result shown to be the assigned performer's: the report carries the
assignment signed by the genesis dispatcher, the result is for that assignment's task, job
and attempt, and it is signed by the operator key of the performer the assignment names,
an active operator. So nobody but the assigned performer can open a collector, and no
keeper can keep honest votes out by being first with a made-up result, for this task or a
future one.

What remains bounded: a performer may sign several results for one attempt (at most
`max_results_per_attempt` collectors each), at most `max_collectors` are open at once
(refused beyond, and counted), and every collector, like the record of an attempt
decided, is forgotten once its assignment's deadline plus `grace` has passed (swept when a
collector opens and every `sweep_interval` seconds).

When submitTask reverts and the attempt is not decided, the operator set may have changed
under the collector (an operator deactivated, a stake updated): the desk re-reads it,
recounts the votes it already verified, and resubmits, a bounded number of times with
backoff.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
import trio
from eth_utils import to_checksum_address

from node.bls import choose_backend
from node.chain import ChainError, Receipt, RevertError
from node.config import ConfigError, NodeSetup
from node.keeper import ResultChecker
from node.mesh import Metrics, RequestRefused
from node.metrics import MESH_DROPS, AggregatorMetrics, NodeMetrics, start_metrics
from node.roles.runtime import Chain, chain_nodes, load_directory, open_chain, open_mesh, open_watched
from protocol import (
    Aggregator,
    Decision,
    DroppedVote,
    DropReason,
    OperatorDirectory,
    OperatorSet,
    ResultMessage,
    Submission,
    SubmitOutcome,
    TaskInfo,
    Vote,
    VoteCollector,
    VoteMessage,
    decode,
)
from protocol.triggers import Readers

log = logging.getLogger("triggerx.aggregator")

MAX_RESULTS_PER_ATTEMPT = 4
MAX_COLLECTORS = 10_000
RESUBMITS = 3
RESUBMIT_BACKOFF = 2.0
SWEEP_INTERVAL = 30.0
CHAIN_PROOF_TIMEOUT = 10.0  # how long an unsigned result's execution may take to be visible
REJECT_LINGER = 30.0
"""Seconds a rejection that later votes could still prove is held before it is submitted
unproven (protocol.quorum: only a proven one reopens the task and penalises the performer).
An attester's check may take a script's 10 s run and a fetch, and votes are resent every 5 s."""
REFUSED = "aggregator_collectors_refused_total"
"""Counter of results for which no collector was opened, by `reason`: `expired` (the
assignment's deadline plus the grace has passed), `unproven` (not shown to be the assigned
performer's), `results_per_attempt` and `collectors` (a cap was reached)."""
REFUSED_REASONS = ("expired", "unproven", "results_per_attempt", "collectors")

BallotKey = tuple[int, int, bytes]  # task id, attempt, result hash
AttemptKey = tuple[int, int]  # task id, attempt


class VoteRefused(RequestRefused):
    """A vote the desk does not count (the voter gets the reason as a `rejected` reply)."""


@dataclass
class Ballot:
    """The votes on one claimed result, until `expires_at` (unix seconds), and the operators
    whose vote on it failed verification: each operator costs a ballot one failed check at
    most (a BLS verification is ~6 ms; a keeper repeating bad votes must not buy more)."""

    collector: VoteCollector
    expires_at: float
    refused: set[int] = field(default_factory=set)


class VoteDesk:
    """Votes in, per claimed result; a submission out as soon as the quorum is reached.

    `clock` gives the unix time that assignment deadlines are compared with. Decisions are
    announced by the chain itself (the gateway follows the AttestationCenter's logs). `stats`
    gets the Prometheus metrics it moves (votes, submissions, gas); `metrics` keeps the
    refusals of collectors (REFUSED).
    """

    def __init__(
        self,
        chain: Chain,
        directory: OperatorDirectory,
        *,
        dispatcher: str,
        nursery: trio.Nursery,
        grace: float,
        max_results_per_attempt: int = MAX_RESULTS_PER_ATTEMPT,
        max_collectors: int = MAX_COLLECTORS,
        resubmits: int = RESUBMITS,
        backoff: float = RESUBMIT_BACKOFF,
        clock: Callable[[], float] = time.time,
        readers: Readers | None = None,
        reject_linger: float = REJECT_LINGER,
        stats: AggregatorMetrics | None = None,
    ) -> None:
        self.chain, self.directory, self.nursery = chain, directory, nursery
        self.stats = stats or AggregatorMetrics()
        self.stats.collectors_open.set_function(lambda: len(self.collectors))
        self.dispatcher = to_checksum_address(dispatcher)
        self.grace = grace
        self.max_results_per_attempt = max_results_per_attempt
        self.max_collectors = max_collectors
        self.resubmits, self.backoff = resubmits, backoff
        self.clock = clock
        self.backend = choose_backend()
        self.aggregator = Aggregator(chain.center, chain.sender)
        self.collectors: dict[BallotKey, Ballot] = {}
        self.results: dict[AttemptKey, set[bytes]] = {}  # the result hashes collected per attempt
        self.submitting: set[AttemptKey] = set()
        self.reject_linger = reject_linger
        self.lingering: set[AttemptKey] = set()  # unproven rejections held for their proof
        self.decided: dict[AttemptKey, float] = {}  # attempt -> when to forget it
        self.metrics = Metrics()
        self._next_expiry = math.inf  # the earliest expires_at / forget time held
        self._lock = trio.Lock()  # collectors are touched in a worker thread, one call at a time
        self._full_warned_at = -math.inf
        # Unsigned results, proven against the chain (see _check_on_chain).
        self._checker = ResultChecker(
            chain.hub,
            visibility_timeout=CHAIN_PROOF_TIMEOUT,
            readers=readers or Readers({chain.chain_id: chain.hub.rpc}),
        )
        self._chain_checks = trio.CapacityLimiter(4)
        self._chain_proven: dict[AttemptKey, bytes] = {}  # attempt -> its result hash

    async def on_vote(self, sender: str, payload: bytes) -> bytes:
        """A keeper's `vote` request; the reply says whether the vote counted."""
        try:
            reply, outcome = await self._take_vote(sender, payload)
        except VoteRefused:
            self.stats.votes.labels("refused").inc()
            raise
        self.stats.votes.labels(outcome).inc()
        return reply

    async def _take_vote(self, sender: str, payload: bytes) -> tuple[bytes, str]:
        """The reply to a vote, and its outcome as counted (a label of `stats.votes`)."""
        try:
            message = decode(payload, VoteMessage)
        except msgspec.MsgspecError as error:
            raise VoteRefused(f"not a vote message: {error}") from None
        vote, report = message.vote, message.report
        voter = self.directory.operators.operators.get(vote.operator_id)
        if voter is None or voter.account != sender:
            raise VoteRefused("a vote must come from its operator")
        task = report.task_info()
        if vote.task != task:
            raise VoteRefused("the vote is not about the result it carries")
        if self.clock() >= self._next_expiry:
            self.sweep()
        attempt: AttemptKey = (task.task_id, task.attempt)
        if attempt in self.decided:
            return b"decided", "already_decided"
        key: BallotKey = (task.task_id, task.attempt, task.result_hash)
        ballot = self.collectors.get(key) or await self._open(key, report, task)
        if vote.operator_id in ballot.refused:
            raise VoteRefused("vote not counted: this operator's vote on this result was refused before")
        async with self._lock:
            dropped, decision = await trio.to_thread.run_sync(
                _count, ballot.collector, self.directory.operators, vote
            )
        if dropped and dropped[0].reason is DropReason.DUPLICATE:
            return b"counted", "duplicate"  # a keeper resending its vote (node.keeper.votes): counted once
        if dropped:
            if dropped[0].reason is DropReason.BAD_SIGNATURE:
                ballot.refused.add(vote.operator_id)
            raise VoteRefused(f"vote not counted: {dropped[0].reason.value}")
        if decision is Decision.REJECT_UNPROVEN and attempt not in self.lingering:
            self.lingering.add(attempt)
            self.nursery.start_soon(self._submit_unproven, key, ballot)
        if decision in (Decision.APPROVE, Decision.REJECT):
            self._start_submission(key, ballot)
        return b"counted", "accepted"

    def _start_submission(self, key: BallotKey, ballot: Ballot) -> None:
        attempt: AttemptKey = (key[0], key[1])
        if attempt not in self.submitting and attempt not in self.decided:
            self.submitting.add(attempt)
            self.nursery.start_soon(self.submit, key, ballot)

    async def _submit_unproven(self, key: BallotKey, ballot: Ballot) -> None:
        """Submit the ballot's rejection after `reject_linger` seconds, proven or not by then
        (a proof that came meanwhile was submitted at once, and this does nothing)."""
        await trio.sleep(self.reject_linger)
        self.lingering.discard((key[0], key[1]))
        self._start_submission(key, ballot)

    def sweep(self) -> int:
        """Forget the collectors and decided attempts whose time has passed; how many collectors went."""
        now = self.clock()
        expired = [key for key, ballot in self.collectors.items() if ballot.expires_at <= now]
        for key in expired:
            self._close(key)
        for attempt in [a for a, forget_at in self.decided.items() if forget_at <= now]:
            del self.decided[attempt]
        self._next_expiry = min(
            min((b.expires_at for b in self.collectors.values()), default=math.inf),
            min(self.decided.values(), default=math.inf),
        )
        if expired:
            log.debug("swept %d expired collectors; %d open", len(expired), len(self.collectors))
        return len(expired)

    async def sweep_forever(self, interval: float = SWEEP_INTERVAL) -> None:
        """Sweep every `interval` seconds, until cancelled."""
        while True:
            await trio.sleep(interval)
            self.sweep()

    async def submit(self, key: BallotKey, ballot: Ballot) -> None:
        """Send a decided attempt to the AttestationCenter."""
        attempt: AttemptKey = (key[0], key[1])
        try:
            sent = await self._submit(attempt, ballot.collector)
        finally:
            self.submitting.discard(attempt)
        if sent is None:
            return
        submission, outcome = sent
        log.info("task %d attempt %d decided (%s)", *attempt, outcome.tx_hash or "by another aggregator")
        self._decide(attempt, ballot.expires_at)
        if outcome.tx_hash is not None:
            await self._count_gas(submission, outcome.tx_hash)

    async def _count_gas(self, submission: Submission, tx_hash: str) -> None:
        """Add the gas `tx_hash` used to `stats` (the receipt is read again: Aggregator.submit
        keeps only the hash); a failed read costs the count, nothing else."""
        try:
            raw = await self.chain.rpc.call("eth_getTransactionReceipt", tx_hash)
            gas = Receipt.from_rpc(raw).gas_used
        except (ChainError, KeyError, TypeError, ValueError) as error:
            log.debug("the gas of submission %s is not counted: %s", tx_hash, error)
            return
        self.stats.submission_gas.labels(_decision(submission)).inc(gas)

    async def _submit(
        self, attempt: AttemptKey, collector: VoteCollector
    ) -> tuple[Submission, SubmitOutcome] | None:
        """Submit the collector's decision; after a revert on an attempt not yet decided,
        re-read the operator set, recount and resubmit, at most `resubmits` times."""
        for round_ in range(self.resubmits + 1):
            async with self._lock:
                submission = await trio.to_thread.run_sync(collector.submission)
            if submission is None:
                log.warning(
                    "task %d attempt %d: the votes reach no decision under the current operator set; "
                    "waiting for more votes",
                    *attempt,
                )
                return None
            decision, sent_at = _decision(submission), time.monotonic()
            try:
                outcome = await self.aggregator.submit(submission)
            except RevertError as error:
                self.stats.submissions.labels(decision, "reverted").inc()
                if round_ == self.resubmits:
                    log.error(
                        "task %d attempt %d: submission reverted %d times, giving up until the next vote: %s",
                        *attempt,
                        round_ + 1,
                        error,
                    )
                    return None
                delay = self.backoff * 2**round_
                log.warning(
                    "task %d attempt %d: submission reverted (%s); refreshing the operator set and "
                    "resubmitting in %.1f s (resubmission %d of %d)",
                    *attempt,
                    error,
                    delay,
                    round_ + 1,
                    self.resubmits,
                )
                await trio.sleep(delay)
                await self._refresh(collector)
            except ChainError as error:
                self.stats.submissions.labels(decision, "failed").inc()
                log.error("task %d attempt %d: submission failed: %s", *attempt, error)
                return None
            else:
                self.stats.submission_seconds.observe(time.monotonic() - sent_at)
                self.stats.submissions.labels(
                    decision, "already_decided" if outcome.already_decided else "ok"
                ).inc()
                return submission, outcome
        return None  # unreachable: the last round returns

    async def _refresh(self, collector: VoteCollector) -> None:
        """Re-read the operator set and move `collector` to it."""
        try:
            await self.directory.refresh()
        except ChainError as error:
            log.warning("operator set refresh failed, resubmitting with the last one read: %s", error)
        async with self._lock:
            collector.use_operators(self.directory.operators)

    async def _open(self, key: BallotKey, report: ResultMessage, task: TaskInfo) -> Ballot:
        """A collector for `report`'s result, if it is the assigned performer's (or, unsigned,
        the chain's) and there is room."""
        now = self.clock()
        attempt: AttemptKey = (key[0], key[1])
        expires_at = report.order.assignment.deadline + self.grace
        if expires_at <= now:
            self.metrics.inc(REFUSED, reason="expired")
            raise VoteRefused(f"task {key[0]} attempt {key[1]}: the assignment's deadline has passed")
        try:
            self._authenticate(report, task)
        except VoteRefused:
            self.metrics.inc(REFUSED, reason="unproven")
            raise
        if report.performer_signature == b"":
            await self._check_on_chain(report, attempt)
            if key in self.collectors:  # opened by another vote while the chain was read
                return self.collectors[key]
        try:
            return self._admit(key, report, task, expires_at)
        except VoteRefused:
            if self._chain_proven.get(attempt) == key[2]:
                del self._chain_proven[attempt]
            raise

    def _admit(self, key: BallotKey, report: ResultMessage, task: TaskInfo, expires_at: float) -> Ballot:
        """The new collector for `key`, within the caps on results per attempt and collectors."""
        now = self.clock()
        attempt: AttemptKey = (key[0], key[1])
        results = self.results.get(attempt, set())
        if len(results) >= self.max_results_per_attempt:
            self.metrics.inc(REFUSED, reason="results_per_attempt")
            raise VoteRefused(f"task {key[0]} attempt {key[1]} already has {len(results)} results")
        if len(self.collectors) >= self.max_collectors:
            self.metrics.inc(REFUSED, reason="collectors")
            if now - self._full_warned_at >= 60.0:
                self._full_warned_at = now
                log.warning(
                    "%d collectors open: refusing new results until some expire", len(self.collectors)
                )
            raise VoteRefused("too many results are being voted on")
        if results:
            log.warning(
                "task %d attempt %d: the performer signed %d different results", *attempt, len(results) + 1
            )
        collector = VoteCollector(
            task,
            report.performer_signature,
            self.directory.operators,
            self.backend,
            chain_id=self.chain.chain_id,
            center=self.chain.center.address,
        )
        ballot = self.collectors[key] = Ballot(collector, expires_at)
        self.results.setdefault(attempt, set()).add(key[2])
        self._next_expiry = min(self._next_expiry, expires_at)
        return ballot

    def _authenticate(self, report: ResultMessage, task: TaskInfo) -> None:
        """VoteRefused unless `report`'s result is the one its assigned, active performer signed."""
        order, result = report.order, report.result
        assignment = order.assignment
        chain_id = self.chain.chain_id
        if not order.signed_by(self.dispatcher, chain_id, self.chain.hub.address):
            raise VoteRefused("the report's assignment is not signed by the dispatcher")
        if (result.task_id, result.job_id, result.attempt) != (
            assignment.task_id,
            assignment.job_id,
            assignment.attempt,
        ):
            raise VoteRefused("the result is not for the assigned task, job and attempt")
        performer = self.directory.operators.operators.get(result.performer_id)
        if performer is None or not performer.active or performer.account != assignment.performer:
            raise VoteRefused("the result's performer is not the assigned, active operator")
        if report.performer_signature == b"":
            return  # a result rebuilt from the chain: _check_on_chain proves it
        try:
            signer = task.performer_of(report.performer_signature, chain_id, self.chain.center.address)
        except ValueError:
            signer = None
        if signer != performer.account:
            raise VoteRefused("the assigned performer did not sign this result")

    async def _check_on_chain(self, report: ResultMessage, attempt: AttemptKey) -> None:
        """VoteRefused unless the unsigned result in `report` is the execution the hub recorded.

        When a performer dies before reporting, the dispatcher relays the result rebuilt from
        the chain, unsigned (see gateway.dispatch). The chain is then the proof, checked as an
        attester checks it. Only one result can match the chain, so an attempt that has one
        takes no other unsigned result, and checks run a few at a time: unsigned results cost
        a bounded number of chain reads.
        """
        if attempt in self._chain_proven:
            self.metrics.inc(REFUSED, reason="unproven")
            raise VoteRefused(f"task {attempt[0]} attempt {attempt[1]} already has its result from the chain")
        order = report.order
        async with self._chain_checks:
            verdict = await self._checker.check(order, report.result, report.script_evidence())
        if verdict is None or not verdict.approve:
            self.metrics.inc(REFUSED, reason="unproven")
            reason = "the chain did not show it in time" if verdict is None else verdict.reason
            raise VoteRefused(f"an unsigned result must be the execution on chain: {reason}")
        self._chain_proven[attempt] = report.result.result_hash()

    def _decide(self, attempt: AttemptKey, forget_at: float) -> None:
        """The attempt is decided on chain: drop its collectors, refuse its votes until `forget_at`."""
        for result_hash in list(self.results.get(attempt, ())):
            key = (attempt[0], attempt[1], result_hash)
            forget_at = max(forget_at, self.collectors[key].expires_at)
            self._close(key)
        self.decided[attempt] = forget_at
        self._next_expiry = min(self._next_expiry, forget_at)

    def _close(self, key: BallotKey) -> None:
        del self.collectors[key]
        attempt = (key[0], key[1])
        results = self.results[attempt]
        results.discard(key[2])
        if not results:
            del self.results[attempt]
            self._chain_proven.pop(attempt, None)


def _decision(submission: Submission) -> str:
    """The `decision` label of a submission."""
    return "approve" if submission.approve else "reject"


def _count(
    collector: VoteCollector, operators: OperatorSet, vote: Vote
) -> tuple[list[DroppedVote], Decision]:
    """In a worker thread: count `vote` as the current operator set says; the decision after it."""
    collector.use_operators(operators)
    dropped = collector.add([vote])
    return dropped, collector.decision()


async def run_aggregator(setup: NodeSetup) -> None:
    """Run the aggregator role until cancelled; its metrics on `[node] metrics_listen`, if set."""
    dispatcher = setup.genesis.dispatcher
    if dispatcher is None:
        raise ConfigError("genesis: names no dispatcher, so an aggregator cannot tell assigned results")
    async with open_chain(setup) as chain, open_watched(setup, chain) as others:
        directory = await load_directory(setup, chain)
        async with open_mesh(setup, directory) as mesh, trio.open_nursery() as nursery:
            metrics = NodeMetrics()
            desk = VoteDesk(
                chain,
                directory,
                dispatcher=dispatcher,
                nursery=nursery,
                grace=setup.genesis.protocol.assignment_ttl_seconds,
                readers=Readers(chain_nodes(chain, others)),
                stats=AggregatorMetrics(metrics),
            )
            metrics.export_counts(mesh.metrics, MESH_DROPS)
            metrics.export_counts(desk.metrics, [(REFUSED, {"reason": reason}) for reason in REFUSED_REASONS])
            await start_metrics(nursery, metrics, setup.config.settings.node.metrics_listen)
            mesh.register_handler("vote", desk.on_vote)
            nursery.start_soon(directory.keep_fresh, 30.0)
            nursery.start_soon(desk.sweep_forever, SWEEP_INTERVAL)
            log.info("aggregator %s up as %s at %s", setup.operator.address, mesh.peer_id, mesh.listen_addrs)
