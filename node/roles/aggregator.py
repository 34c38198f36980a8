"""The aggregator role: collect votes, decide, submit the proof on chain, announce finality."""

from __future__ import annotations

import logging

import trio

from consensus.aggregator import Aggregator, VoteCollector
from consensus.bls.backend import choose_backend
from node.chain.errors import ChainError
from node.config.preflight import NodeSetup
from node.mesh import FINALITY, MeshNode
from node.messages import FinalityMessage, VoteMessage, decode, encode
from node.roles.runtime import Chain, OperatorDirectory, load_directory, open_chain, open_mesh

log = logging.getLogger("triggerx.aggregator")


class VoteDesk:
    """Votes in, per task attempt; a submission out as soon as the quorum is reached."""

    def __init__(
        self, chain: Chain, directory: OperatorDirectory, mesh: MeshNode, nursery: trio.Nursery
    ) -> None:
        self.chain, self.directory, self.mesh, self.nursery = chain, directory, mesh, nursery
        self.backend = choose_backend()
        self.aggregator = Aggregator(chain.center, chain.sender)
        self.collectors: dict[tuple[int, int], VoteCollector] = {}
        self.submitted: set[tuple[int, int]] = set()
        self._lock = trio.Lock()  # VoteCollector.add runs in a worker thread, one at a time

    async def on_vote(self, sender: str, payload: bytes) -> bytes:
        """A keeper's `vote` request; the reply says whether the vote counted."""
        message = decode(payload, VoteMessage)
        voter = self.directory.operators.operators.get(message.vote.operator_id)
        if voter is None or voter.account != sender:
            raise PermissionError("a vote must come from its operator")
        task = message.task
        key = (task.task_id, task.attempt)
        collector = self.collectors.get(key)
        if collector is None:
            performer = self.directory.operators.operators.get(task.performer_id)
            claimed = task.performer_of(
                message.performer_signature, self.chain.chain_id, self.chain.center.address
            )
            if performer is None or claimed != performer.account:
                raise PermissionError("the performer did not sign this result")
            collector = VoteCollector(
                task,
                message.performer_signature,
                self.directory.operators,
                self.backend,
                chain_id=self.chain.chain_id,
                center=self.chain.center.address,
            )
            self.collectors[key] = collector
        async with self._lock:
            dropped = await trio.to_thread.run_sync(collector.add, [message.vote])
        if dropped:
            raise ValueError(f"vote not counted: {dropped[0].reason.value}")
        submission = collector.submission()
        if submission is not None and key not in self.submitted:
            self.submitted.add(key)
            self.nursery.start_soon(self.submit, key, submission)
        return b"counted"

    async def submit(self, key: tuple[int, int], submission: object) -> None:
        """Send a decided attempt to the AttestationCenter and tell the mesh."""
        try:
            outcome = await self.aggregator.submit(submission)
        except ChainError as error:
            log.error("task %d attempt %d: submission failed: %s", *key, error)
            self.submitted.discard(key)
            return
        log.info("task %d attempt %d decided (%s)", *key, outcome.tx_hash or "by another aggregator")
        if outcome.tx_hash is not None:
            finality = FinalityMessage(key[0], key[1], submission.approve, outcome.tx_hash)
            await self.mesh.publish(FINALITY, encode(finality))
        self.collectors.pop(key, None)


async def run_aggregator(setup: NodeSetup) -> None:
    """Run the aggregator role until cancelled."""
    async with open_chain(setup) as chain:
        directory = await load_directory(setup, chain)
        async with open_mesh(setup, directory) as mesh, trio.open_nursery() as nursery:
            desk = VoteDesk(chain, directory, mesh, nursery)
            mesh.register_handler("vote", desk.on_vote)
            nursery.start_soon(directory.keep_fresh, 30.0)
            log.info("aggregator %s up as %s at %s", setup.operator.address, mesh.peer_id, mesh.listen_addrs)
