"""The protocol every role shares: job terms, assignments, performer selection, mesh messages,
attestation votes, stake-weighted quorums and their aggregation, BLS12-381 (docs/protocol.md).

Public API: the job terms and the owner's consent (JobTerms, JobConsent, job_id_of, the
registry's values), a call's calldata from JSON arguments (encode_calldata, parse_signature,
canonical_signature, CalldataError), Assignment and ExecutionResult, the mesh messages
(encode, decode), the operators (OperatorSet, OperatorDirectory, registration), performer
selection, attestation votes (TaskInfo, Vote), the quorum (APPROVE, REJECT, decide) and the
aggregation of votes into submissions (VoteCollector, Aggregator). BLS (node.bls) and the trigger kinds
(protocol.triggers) are packages of their own.
"""

from protocol.aggregator import Aggregator, DroppedVote, DropReason, Submission, SubmitOutcome, VoteCollector
from protocol.assignment import Assignment
from protocol.attestation import TaskInfo, Vote, vote_message
from protocol.calldata import CalldataError, canonical_signature, encode_calldata, parse_signature
from protocol.jobs import (
    CANCELLED_TERMS,
    MAX_NONCE,
    UINT64_MAX,
    UINT256_MAX,
    UNREGISTERED,
    JobConsent,
    JobTerms,
    cancel_message,
    job_id_of,
)
from protocol.messages import (
    AssignmentMessage,
    Heartbeat,
    OwnerConsent,
    ResultMessage,
    VoteMessage,
    decode,
    encode,
)
from protocol.operators import (
    Operator,
    OperatorDirectory,
    OperatorSet,
    load_operator_set,
    register_operator,
    registration_proof,
)
from protocol.quorum import APPROVE, REJECT, Decision, decide
from protocol.result import ExecutionResult
from protocol.selection import choose_performer, rank

__all__ = [
    "APPROVE",
    "CANCELLED_TERMS",
    "MAX_NONCE",
    "REJECT",
    "UINT64_MAX",
    "UINT256_MAX",
    "UNREGISTERED",
    "Aggregator",
    "Assignment",
    "AssignmentMessage",
    "CalldataError",
    "Decision",
    "DropReason",
    "DroppedVote",
    "ExecutionResult",
    "Heartbeat",
    "JobConsent",
    "JobTerms",
    "Operator",
    "OperatorDirectory",
    "OperatorSet",
    "OwnerConsent",
    "ResultMessage",
    "Submission",
    "SubmitOutcome",
    "TaskInfo",
    "Vote",
    "VoteCollector",
    "VoteMessage",
    "cancel_message",
    "canonical_signature",
    "choose_performer",
    "decide",
    "decode",
    "encode",
    "encode_calldata",
    "job_id_of",
    "load_operator_set",
    "parse_signature",
    "rank",
    "register_operator",
    "registration_proof",
    "vote_message",
]
