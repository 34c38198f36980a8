"""What an attester checks before it looks at the chain: the report is the assigned, active
performer's, under a genuine assignment (findings 6 and the Low 'deactivated performer')."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from eth_account import Account

from node.keeper.attester import report_problem
from protocol.assignment import Assignment, time_trigger_evidence
from protocol.jobs import JobTerms, interval_trigger, job_id_of
from protocol.messages import AssignmentMessage, ResultMessage
from protocol.operators import Operator, OperatorSet
from protocol.result import ExecutionResult

CHAIN_ID = 31337
HUB = "0x" + "ab" * 20
DISPATCHER = Account.from_key(b"\x01" * 32)
KEEPERS = [Account.from_key(bytes([i + 2]) * 32) for i in range(3)]
OPERATORS = OperatorSet({i: Operator(i, k.address, 100, True, b"", b"") for i, k in enumerate(KEEPERS)})
CALLDATA = b"\xd0\x9d\xe0\x8a"
JOB_ID = job_id_of("0x" + "22" * 20, 1)
TERMS = JobTerms.static_call("0x" + "33" * 20, CALLDATA, 100_000, 10**15, interval_trigger(5, 0, 0))


def report(performer: int = 0, assigned: int = 0, fire_at: float = 10.0, signer=DISPATCHER) -> ResultMessage:
    assignment = Assignment(
        7,
        JOB_ID,
        1,
        KEEPERS[assigned].address,
        2**40,
        TERMS.hash(),
        time_trigger_evidence(JOB_ID, 10.0, CALLDATA),
    )
    signature = assignment.sign(signer, CHAIN_ID, HUB)
    order = AssignmentMessage(assignment, TERMS, signature, CALLDATA, fire_at=fire_at)
    result = ExecutionResult(7, JOB_ID, 1, performer, b"\x01" * 32, 5, b"\x02" * 32, True)
    return ResultMessage(order, result, b"")


def problem(message: ResultMessage, sender: str, operators: OperatorSet = OPERATORS) -> str | None:
    return report_problem(
        message, sender, operators, dispatcher=DISPATCHER.address, chain_id=CHAIN_ID, hub=HUB
    )


def test_the_assigned_performers_report_is_checked():
    assert problem(report(), KEEPERS[0].address) is None


@pytest.mark.parametrize(
    ("message", "sender", "expected"),
    [
        # Finding 6: another keeper relays the performer's report as its own, or claims it.
        (report(), KEEPERS[1].address, "sent by"),
        (report(performer=1), KEEPERS[1].address, "assigned to"),
        # The result names a performer id that is not the assigned one.
        (report(performer=1, assigned=0), KEEPERS[0].address, "sent by"),
        (report(performer=9), KEEPERS[0].address, "not an active operator"),
        (report(signer=KEEPERS[2]), KEEPERS[0].address, "not signed by the dispatcher"),
        (report(fire_at=11.0), KEEPERS[0].address, "trigger evidence"),
    ],
)
def test_finding6_reports_not_from_the_assigned_performer_are_ignored(message, sender, expected):
    assert expected in problem(message, sender)


def test_low_a_deactivated_performer_is_not_accepted():
    deactivated = dataclasses.replace(OPERATORS.operators[0], active=False)
    operators = OperatorSet({**OPERATORS.operators, 0: deactivated})
    assert problem(report(), KEEPERS[0].address, operators) == "performer 0 is not an active operator"


def test_a_garbled_dispatcher_signature_is_a_problem_not_a_crash():
    garbled = report()
    garbled = msgspec.structs.replace(
        garbled, order=msgspec.structs.replace(garbled.order, dispatcher_signature=b"\x00" * 3)
    )
    assert problem(garbled, KEEPERS[0].address) == "the assignment is not signed by the dispatcher"
