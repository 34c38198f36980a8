"""What the roles say to each other over the mesh, as msgspec structs (msgpack on the wire).

The mesh wraps each of these in an envelope signed by the sender's operator key; the
structs here carry the protocol objects (assignments, results, votes) with their own
signatures, so that whoever receives one can check it without trusting the relay.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from consensus.attestation import TaskInfo, Vote
from node.dispatcher.assignment import Assignment
from node.keeper.result import ExecutionResult

M = TypeVar("M", bound=msgspec.Struct)


class Heartbeat(msgspec.Struct, frozen=True):
    """A keeper is alive (topic /triggerx/heartbeats/1)."""

    peer_id: str
    sent_at: float
    listen_addrs: list[str] = []


class AssignmentMessage(msgspec.Struct, frozen=True):
    """The dispatcher's order to a performer (request `assign`), with the call to make."""

    assignment: dict
    dispatcher_signature: bytes
    calldata: bytes
    fire_at: float = 0.0
    trace_id: str = ""

    @classmethod
    def of(
        cls,
        assignment: Assignment,
        signature: bytes,
        calldata: bytes,
        fire_at: float = 0.0,
        trace_id: str = "",
    ) -> AssignmentMessage:
        """The message for `assignment`, signed by the dispatcher, to call `calldata` (fired at `fire_at`)."""
        return cls(assignment.as_struct(), signature, calldata, fire_at, trace_id)

    def unpack(self) -> Assignment:
        """The assignment (its signature is checked by whoever acts on it)."""
        return Assignment.from_struct(self.assignment)


class ResultMessage(msgspec.Struct, frozen=True):
    """A performer's report (topic /triggerx/results/1): what it was told, what it did, signed."""

    order: AssignmentMessage
    result: ExecutionResult
    performer_signature: bytes

    def task_info(self) -> TaskInfo:
        """The attempt and claimed result, as AttestationCenter names them."""
        r = self.result
        return TaskInfo(r.task_id, r.job_id, r.attempt, r.performer_id, r.result_hash())


class VoteMessage(msgspec.Struct, frozen=True):
    """An attester's vote for the aggregator (request `vote`), with what it voted on."""

    task: TaskInfo
    performer_signature: bytes
    vote: Vote
    trace_id: str = ""


class FinalityMessage(msgspec.Struct, frozen=True):
    """The aggregator submitted a decision (topic /triggerx/finality/1)."""

    task_id: int
    attempt: int
    approved: bool
    tx_hash: str


def encode(message: msgspec.Struct) -> bytes:
    """A message as the mesh carries it."""
    return msgspec.msgpack.encode(message)


def decode(data: bytes, kind: type[M]) -> M:
    """A message of type `kind`; msgspec.DecodeError / ValidationError for anything else."""
    return msgspec.msgpack.decode(data, type=kind)
