"""A keeper that lies, for tests/e2e/test_rogue_performer.py, in one of two ways:

- `made-up-log`: it executes nothing, reports the fire of a log that does not exist (the
  order's trigger detail replaced by one naming a made-up transaction), and refuses the
  assignment, so that the dispatcher moves on at once instead of waiting out its deadline
  (what is tested is the report);
- `other-arguments`: for a job whose script gives incrementBy's arguments, it executes
  incrementBy(1000) whatever the script says, and reports it as the script's (with the
  honest run's input and output hashes).

    python tests/e2e/rogue_keeper.py made-up-log|other-arguments --config <a keeper's node.toml>
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eth_utils import keccak

from node.cli import main
from node.keeper import AssignmentRefused, TaskExecutor
from node.roles.keeper import Keeper
from protocol import AssignmentMessage, ExecutionResult, ResultMessage, encode_calldata
from protocol.scripts import ScriptOutcome
from protocol.triggers.event import LogEvidence


async def report_a_made_up_log(self: Keeper, order: AssignmentMessage) -> None:
    """Keeper._perform, lying: the report names a log in a transaction nobody sent."""
    real = LogEvidence.decode(order.trigger.detail)
    made_up = dataclasses.replace(real, tx_hash=os.urandom(32))
    forged = msgspec.structs.replace(
        order, trigger=msgspec.structs.replace(order.trigger, detail=made_up.encode())
    )
    head = int(await self.chain.rpc.call("eth_blockNumber"), 16)
    assignment = order.assignment
    result = ExecutionResult(
        assignment.task_id,
        assignment.job_id,
        assignment.attempt,
        self.me.id,
        os.urandom(32),
        head,
        keccak(order.calldata),
        True,
    )
    report = ResultMessage(forged, result, b"")
    signature = report.task_info().sign_as_performer(
        self.setup.operator, self.chain.chain_id, self.chain.center.address
    )
    self.send_vote(msgspec.structs.replace(report, performer_signature=signature), approve=True, own=True)


ACCEPT = Keeper.on_assign


async def report_then_refuse(self: Keeper, sender: str, payload: bytes) -> bytes:
    """Start the lying report, then refuse the assignment."""
    await ACCEPT(self, sender, payload)
    raise AssignmentRefused("a rogue reports and leaves")


HONEST_RUN = TaskExecutor._run_script


async def other_arguments(self: TaskExecutor, order: AssignmentMessage) -> tuple[ScriptOutcome, bytes]:
    """TaskExecutor._run_script, lying: the script's honest run, with other arguments to send."""
    outcome, document = await HONEST_RUN(self, order)
    assert order.script is not None
    return dataclasses.replace(outcome, calldata=encode_calldata(order.script.function, [1000])), document


if __name__ == "__main__":
    lie = sys.argv.pop(1)
    if lie == "made-up-log":
        Keeper._perform = report_a_made_up_log  # type: ignore[method-assign]
        Keeper.on_assign = report_then_refuse  # type: ignore[method-assign]
    else:
        assert lie == "other-arguments", lie
        TaskExecutor._run_script = other_arguments  # type: ignore[method-assign]
    sys.argv[0] = "triggerx-node"
    main()
