"""The gateway's task monitor: the AttestationCenter's decisions, in order, from a checkpoint.

It reads `TaskSubmitted` / `TaskRejected` logs with `eth_getLogs` over block ranges from the
last block it processed, so nothing is missed across reconnects or restarts (the follower
stores a checkpoint with each decision it records). Blocks are read only once they have
`confirmations` blocks on top, so a reorg shallower than that cannot un-decide a task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import trio

from gateway.ledger import TaskLedger
from gateway.storage import DECISIONS_CHECKPOINT, Checkpoint
from node.chain import ChainError, Contract
from protocol.quorum import APPROVE

log = logging.getLogger("triggerx.gateway")
CHAIN_RETRY = 5.0  # seconds before reading the chain again after a failed read


@dataclass(frozen=True)
class TaskDecision:
    """The chain's final word on one task attempt."""

    task_id: int
    job_id: int
    attempt: int
    approved: bool
    performer_id: int
    tx_hash: str
    block_number: int
    reopened: bool = False
    """A rejection proven by two thirds of the stake: the hub lets a later attempt execute."""
    signer_bitmap: int = 0
    """The operators whose votes the decision carries: bit i is operator id i."""


class TaskMonitor:
    """Yields the decisions recorded by `center`, from block `next_block` on.

    Args:
        center: the AttestationCenter.
        next_block: the first block not processed yet (from the store; 0 on a new network).
        confirmations: blocks that must follow a block before its logs are read.
        poll_interval: seconds between looks at the chain head.
        max_range: most blocks per eth_getLogs request (providers cap ranges).
    """

    def __init__(
        self,
        center: Contract,
        next_block: int = 0,
        *,
        confirmations: int = 0,
        poll_interval: float = 0.2,
        max_range: int = 2_000,
    ) -> None:
        self.center = center
        self.next_block = next_block
        self.confirmations = confirmations
        self.poll_interval = poll_interval
        self.max_range = max_range
        self._topics = [center.abi.event_topic("TaskSubmitted"), center.abi.event_topic("TaskRejected")]

    async def poll(self) -> list[TaskDecision]:
        """The decisions in the confirmed blocks not read yet (possibly none); advances `next_block`."""
        head = int(await self.center.rpc.call("eth_blockNumber"), 16) - self.confirmations
        decisions: list[TaskDecision] = []
        while self.next_block <= head:
            last = min(head, self.next_block + self.max_range - 1)
            logs = await self.center.rpc.call(
                "eth_getLogs",
                {
                    "address": self.center.address,
                    "topics": [self._topics],
                    "fromBlock": hex(self.next_block),
                    "toBlock": hex(last),
                },
            )
            for entry in logs:
                event = self.center.abi.decode_log(entry)
                if event is None:
                    continue
                decisions.append(
                    TaskDecision(
                        task_id=event.args["taskId"],
                        job_id=event.args["jobId"],
                        attempt=event.args["attempt"],
                        approved=event.name == "TaskSubmitted",
                        performer_id=event.args["performerId"],
                        tx_hash=event.tx_hash,
                        block_number=event.block_number,
                        reopened=event.name == "TaskRejected"
                        and APPROVE.met(event.args["signedStake"], event.args["totalStake"]),
                        signer_bitmap=event.args["signerBitmap"],
                    )
                )
            self.next_block = last + 1
        return decisions


async def follow_decisions(
    center: Contract, ledger: TaskLedger, on_decision: Callable[[TaskDecision], None]
) -> None:
    """Record every decision of `center` in `ledger` and pass it to `on_decision`, from the
    stored checkpoint on (a new gateway starts at the chain's head), until cancelled."""
    checkpoint = ledger.storage.checkpoints.get(DECISIONS_CHECKPOINT)
    if checkpoint is not None:
        start = checkpoint.next_block
    else:
        start = int(await center.rpc.call("eth_blockNumber"), 16)
    monitor = TaskMonitor(center, start)
    while True:
        try:
            decisions = await monitor.poll()
        except ChainError as error:  # the node may be briefly unreachable: read again later
            log.warning("could not read decisions: %s", error)
            await trio.sleep(CHAIN_RETRY)
            continue
        for decision in decisions:
            # The checkpoint written with a decision is its own block: after a crash the
            # follower reads that block again (recording a decision twice changes nothing),
            # so a decision read but not yet recorded is never skipped.
            ledger.record_decision(decision, decision.block_number)
            on_decision(decision)
        ledger.storage.checkpoints.put(Checkpoint(DECISIONS_CHECKPOINT, monitor.next_block))
        await trio.sleep(monitor.poll_interval)
