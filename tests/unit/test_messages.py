"""Mesh messages survive the wire (uint256 values included), and garbage is refused with a clear error."""

from __future__ import annotations

import msgspec
import pytest

from protocol import (
    Assignment,
    AssignmentMessage,
    ExecutionResult,
    JobTerms,
    OwnerConsent,
    ResultMessage,
    Vote,
    VoteMessage,
    decode,
    encode,
    job_id_of,
)
from protocol.triggers import TriggerFire, interval_trigger

OWNER = "0x" + "22" * 20
JOB_ID = job_id_of(OWNER, 2**96 - 1)  # a 256-bit id: msgpack could not carry it
TERMS = JobTerms.static_call("0x" + "33" * 20, b"\1\2\3\4", 10**5, 2**255, interval_trigger(60, 0, 0))
ASSIGNMENT = Assignment(1, JOB_ID, 1, "0x" + "11" * 20, 10**9, TERMS.hash(), bytes(32))
RESULT = ExecutionResult(1, JOB_ID, 1, 0, bytes([7]) * 32, 5, bytes([8]) * 32, True)
FIRE = TriggerFire("interval", {"everySeconds": 60}, 12.5)


def test_messages_round_trip():
    order = AssignmentMessage(
        ASSIGNMENT, TERMS, b"\5" * 65, b"\1\2\3\4", FIRE, OwnerConsent(2**63, b"\6" * 65), "trace-1"
    )
    report = ResultMessage(order, RESULT, b"\x09" * 65)
    back = decode(encode(report), ResultMessage)
    assert back == report
    assert back.order.assignment == ASSIGNMENT
    assert back.order.terms.max_fee_per_task == 2**255
    assert back.task_info().result_hash == RESULT.result_hash()
    vote = VoteMessage(back, Vote(3, back.task_info(), True, b"\1" * 96))
    assert decode(encode(vote), VoteMessage) == vote


def test_garbage_is_refused():
    with pytest.raises(msgspec.DecodeError):
        decode(b"\xc1", VoteMessage)
    with pytest.raises(msgspec.ValidationError):
        decode(encode(RESULT), VoteMessage)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("attempt", 2**32, "attempt: 4294967296 is not a uint32"),
        ("task_id", -1, "task_id: -1 is not a uint256"),
        ("terms_hash", "AAAA", "terms_hash: expected 32 bytes"),
    ],
)
def test_values_outside_their_solidity_type_are_refused(field, value, problem):
    """A peer's out-of-range number is a validation error at decoding, never a crash later."""
    document = msgspec.json.decode(encode(AssignmentMessage(ASSIGNMENT, TERMS, b"", b"", FIRE)))
    document["assignment"][field] = value
    with pytest.raises(msgspec.ValidationError, match=problem):
        decode(msgspec.json.encode(document), AssignmentMessage)


@pytest.mark.parametrize("fire_at", [1e20, -1.0, float("inf")])
def test_review_a_fire_time_outside_uint64_milliseconds_is_refused(fire_at):
    """The fire time is not under the dispatcher's signature: one keeper republished a genuine
    report with fire_at 1e20, and every attester died encoding it into the trigger evidence."""
    order = AssignmentMessage(ASSIGNMENT, TERMS, b"", b"", FIRE)
    document = msgspec.json.decode(encode(order))
    document["trigger"]["fire_at"] = fire_at
    with pytest.raises(msgspec.ValidationError, match="fire_at"):
        decode(msgspec.json.encode(document), AssignmentMessage)


def test_review_a_deeply_nested_trigger_spec_is_refused_not_a_crash():
    """A TriggerFire nested 30,000 levels deep (60 KB, any operator can gossip it) crashed
    every keeper that decoded it; the spec is a flat object now, so it is a validation error."""
    document = msgspec.json.decode(encode(AssignmentMessage(ASSIGNMENT, TERMS, b"", b"", FIRE)))
    raw = msgspec.json.encode(document).replace(
        b'"spec":{', b'"spec":{"deep":' + b"[" * 30_000 + b"]" * 30_000 + b",", 1
    )
    with pytest.raises(msgspec.ValidationError):
        decode(raw, AssignmentMessage)
