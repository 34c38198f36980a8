"""What an attester checks before it looks at the chain: the report is the assigned, active
performer's, under a genuine assignment (findings 6 and the Low 'deactivated performer')."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from eth_account import Account

from node.keeper import report_problem
from protocol import (
    Assignment,
    AssignmentMessage,
    ExecutionResult,
    JobTerms,
    Operator,
    OperatorSet,
    ResultMessage,
    job_id_of,
)
from protocol.triggers import TriggerFire, interval_trigger, kind_named

CHAIN_ID = 31337
HUB = "0x" + "ab" * 20
DISPATCHER = Account.from_key(b"\x01" * 32)
KEEPERS = [Account.from_key(bytes([i + 2]) * 32) for i in range(3)]
OPERATORS = OperatorSet({i: Operator(i, k.address, 100, True, b"", b"") for i, k in enumerate(KEEPERS)})
CALLDATA = b"\xd0\x9d\xe0\x8a"
JOB_ID = job_id_of("0x" + "22" * 20, 1)
TERMS = JobTerms.static_call("0x" + "33" * 20, CALLDATA, 100_000, 10**15, interval_trigger(5, 0, 0))


INTERVAL = kind_named("interval")
SIGNED_FIRE = TriggerFire("interval", {"everySeconds": 5}, 10.0)
NOW = 100.0


def report(
    performer: int = 0, assigned: int = 0, fire: TriggerFire = SIGNED_FIRE, signer=DISPATCHER, sign_fire=None
) -> ResultMessage:
    """A performer's report; the dispatcher signs the evidence of `sign_fire` (default: `fire`)."""
    assignment = Assignment(
        7,
        JOB_ID,
        1,
        KEEPERS[assigned].address,
        2**40,
        TERMS.hash(),
        INTERVAL.evidence(JOB_ID, sign_fire or fire, CALLDATA),
    )
    signature = assignment.sign(signer, CHAIN_ID, HUB)
    order = AssignmentMessage(assignment, TERMS, signature, CALLDATA, fire)
    result = ExecutionResult(7, JOB_ID, 1, performer, b"\x01" * 32, 5, b"\x02" * 32, True)
    return ResultMessage(order, result, b"")


def problem(message: ResultMessage, sender: str, operators: OperatorSet = OPERATORS) -> str | None:
    return report_problem(
        message, sender, operators, dispatcher=DISPATCHER.address, chain_id=CHAIN_ID, hub=HUB, now=NOW
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
        (report(sign_fire=TriggerFire("interval", {"everySeconds": 5}, 11.0)), KEEPERS[0].address,
         "trigger evidence"),
    ],
)  # fmt: skip
def test_finding6_reports_not_from_the_assigned_performer_are_ignored(message, sender, expected):
    assert expected in problem(message, sender)


def other_spec(spec: dict) -> TriggerFire:
    return TriggerFire("interval", spec, 10.0)


@pytest.mark.parametrize(
    ("fire", "expected"),
    [
        # The dispatcher signs a fire of a trigger the owner never signed (every second, not 5).
        (other_spec({"everySeconds": 1}), "not the one the owner signed"),
        (other_spec({"everySeconds": "5"}), "malformed"),
        (other_spec({"everySeconds": 5, "cron": "* * * * *"}), "malformed"),
        # A fire time in the future: the task would run before its time.
        (TriggerFire("interval", {"everySeconds": 5}, NOW + 3600), "in the future"),
        (TriggerFire("hourly", {"everySeconds": 5}, 10.0), "unknown trigger kind"),
    ],
)
def test_attesters_accept_only_fires_the_owners_trigger_allows(fire, expected):
    """The evidence binds a fire under the dispatcher's signature; the kind's check binds the
    fire to the owner's signed trigger, so a dispatcher cannot run a job off its schedule."""
    assert expected in problem(report(fire=fire), KEEPERS[0].address)


def test_a_fire_off_the_signed_grid_is_refused():
    spec = {"everySeconds": 5, "start": 1000, "end": 2000}
    terms = dataclasses.replace(TERMS, trigger=interval_trigger(5, 1000, 2000))
    kind = INTERVAL
    assert kind.check(TriggerFire("interval", spec, 1010.0), terms.trigger, now=3000) is None
    assert "not a fire time" in kind.check(TriggerFire("interval", spec, 1012.0), terms.trigger, now=3000)
    assert "not a fire time" in kind.check(TriggerFire("interval", spec, 995.0), terms.trigger, now=3000)
    assert "after the job's end" in kind.check(TriggerFire("interval", spec, 2005.0), terms.trigger, now=3000)


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


def test_the_dispatcher_may_relay_an_unsigned_result_from_the_chain():
    """A performer that died after its transaction never reports; the dispatcher relays the
    result it rebuilt from the chain, unsigned (gateway.relay). Only the dispatcher may, and
    only unsigned: a signed report must come from its performer."""
    relayed = report()
    assert problem(relayed, DISPATCHER.address) is None
    assert "sent by" in problem(relayed, KEEPERS[1].address)
    signed = msgspec.structs.replace(relayed, performer_signature=b"\x01" * 65)
    assert "sent by" in problem(signed, DISPATCHER.address)
