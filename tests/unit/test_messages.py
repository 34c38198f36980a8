"""Mesh messages survive the wire, and garbage is refused with a clear error."""

from __future__ import annotations

import msgspec
import pytest

from consensus.attestation import Vote
from node.dispatcher.assignment import Assignment
from node.keeper.result import ExecutionResult
from node.messages import AssignmentMessage, ResultMessage, VoteMessage, decode, encode

ASSIGNMENT = Assignment(
    1,
    2,
    1,
    "0x" + "11" * 20,
    "0x" + "22" * 20,
    "0x" + "33" * 20,
    b"\1\2\3\4",
    10**5,
    10**9,
    10**15,
    bytes(32),
)
RESULT = ExecutionResult(1, 2, 1, 0, bytes([7]) * 32, 5, bytes([8]) * 32, True)


def test_messages_round_trip():
    report = ResultMessage(
        AssignmentMessage.of(ASSIGNMENT, b"\5" * 65, b"\1\2\3\4", 12.5, "trace-1"), RESULT, b"\x09" * 65
    )
    back = decode(encode(report), ResultMessage)
    assert back == report
    assert back.order.unpack() == ASSIGNMENT
    assert back.task_info().result_hash == RESULT.result_hash()
    vote = VoteMessage(back.task_info(), b"sig", Vote(3, 1, RESULT.result_hash(), True, b"\1" * 96))
    assert decode(encode(vote), VoteMessage) == vote


def test_garbage_is_refused():
    with pytest.raises(msgspec.DecodeError):
        decode(b"\xc1", VoteMessage)
    with pytest.raises(msgspec.ValidationError):
        decode(encode(RESULT), VoteMessage)
