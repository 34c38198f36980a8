"""What the roles say to each other over the mesh, as msgspec structs (JSON on the wire: job
ids, fees and fee caps are uint256, which msgpack cannot carry).

The mesh wraps each of these in an envelope signed by the sender's operator key; the
structs here carry the protocol objects (assignments, results, votes) with their own
signatures, so that whoever receives one can check it without trusting the relay.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import msgspec
from msgspec import Meta

from node.sandbox.proxy import MAX_EXCHANGES, Exchange
from protocol.assignment import Assignment
from protocol.attestation import TaskInfo, Vote
from protocol.jobs import JobTerms
from protocol.result import ExecutionResult
from protocol.scripts import MAX_INPUT_BYTES, ScriptCall, ScriptEvidence
from protocol.triggers import TriggerFire

M = TypeVar("M", bound=msgspec.Struct)
# Bounds on what a peer may put in fields no signature covers: trace ids go into logs,
# addresses into dials (a fire's bounds are TriggerFire's).
TraceId = Annotated[str, Meta(max_length=64)]


class Heartbeat(msgspec.Struct, frozen=True):
    """A keeper is alive (topic /triggerx/heartbeats/1)."""

    peer_id: str
    sent_at: float
    listen_addrs: list[str] = []


class OwnerConsent(msgspec.Struct, frozen=True):
    """The owner's signed consent to a job not yet registered on chain (see protocol.jobs)."""

    expiry: int
    signature: bytes


class AssignmentMessage(msgspec.Struct, frozen=True):
    """The dispatcher's order to a performer (request `assign`): the job's terms, the call to
    make (for a job with a script, its selector: the script gives the arguments), the
    trigger's fire (whose evidence the assignment signs), the owner's consent while the job is
    not yet registered on chain, and the job's script (checked against the terms' argsHash)."""

    assignment: Assignment
    terms: JobTerms
    dispatcher_signature: bytes
    calldata: bytes
    trigger: TriggerFire
    consent: OwnerConsent | None = None
    trace_id: TraceId = ""
    script: ScriptCall | None = None

    def signed_by(self, dispatcher: str, chain_id: int, hub: str) -> bool:
        """Whether the assignment carries `dispatcher`'s signature (False for a malformed one)."""
        try:
            return self.assignment.signer(self.dispatcher_signature, chain_id, hub) == dispatcher
        except ValueError:
            return False


class ResultMessage(msgspec.Struct, frozen=True):
    """A performer's report (topic /triggerx/results/1): what it was told, what it did, signed,
    and for a job with a script the input it ran the script on and the web's answers it got
    (protocol.scripts.ScriptEvidence; the result signs their hashes)."""

    order: AssignmentMessage
    result: ExecutionResult
    performer_signature: bytes
    script_input: Annotated[bytes, Meta(max_length=MAX_INPUT_BYTES)] = b""
    script_exchanges: Annotated[list[Exchange], Meta(max_length=MAX_EXCHANGES)] = []

    def script_evidence(self) -> ScriptEvidence:
        """The script's input and the web's answers, as the checks take them."""
        return ScriptEvidence(self.script_input, tuple(self.script_exchanges))

    def task_info(self) -> TaskInfo:
        """The attempt and claimed result, as AttestationCenter names them."""
        r = self.result
        return TaskInfo(r.task_id, r.job_id, r.attempt, r.performer_id, r.result_hash())


class VoteMessage(msgspec.Struct, frozen=True):
    """An attester's vote for the aggregator (request `vote`), with the report it voted on:
    the aggregator checks that the result is the assigned performer's before it counts."""

    report: ResultMessage
    vote: Vote
    trace_id: TraceId = ""


def encode(message: msgspec.Struct) -> bytes:
    """A message as the mesh carries it."""
    return msgspec.json.encode(message)


def decode(data: bytes, kind: type[M]) -> M:
    """A message of type `kind`; msgspec.DecodeError / ValidationError for anything else."""
    return msgspec.json.decode(data, type=kind)
