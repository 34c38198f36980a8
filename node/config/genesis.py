"""genesis.json: the definition of a network, shared by all its nodes.

The schema is strict: every field is required (a contract not deployed yet is `null`), no
unknown field is accepted, and JSON types must match exactly (`1.0` is not an integer, `true`
is not a number). Errors name the JSON path of the bad field, e.g.
`genesis.json: $.protocol.maxTaskAttempts: expected `int` <= 7`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

from node.config.errors import GenesisError, split_validation_error
from node.config.types import BlsPublicKey, ChecksumAddress, HttpUrl, PeerId, PeerMultiaddr, dec_hook

Positive = Annotated[int, Meta(ge=1)]


class _Object(msgspec.Struct, frozen=True, forbid_unknown_fields=True, rename="camel"):
    """A JSON object of genesis.json: camelCase keys, nothing unknown."""


class Contracts(_Object, frozen=True):
    """The network's contracts; null until the devnet (or an operator) deploys them."""

    task_execution_hub: ChecksumAddress | None
    operator_registry: ChecksumAddress | None
    attestation_center: ChecksumAddress | None


class InitialOperator(_Object, frozen=True):
    """An operator registered when the network starts."""

    address: ChecksumAddress
    bls_public_key: BlsPublicKey
    peer_id: PeerId
    stake: Annotated[int, Meta(ge=0)]


class Protocol(_Object, frozen=True):
    """Protocol parameters every node must agree on. (The quorum thresholds are constants of
    the AttestationCenter and protocol.quorum, and every active operator attests: see
    docs/protocol.md, "Constants".)"""

    assignment_ttl_seconds: Positive  # an assignment's deadline, from when it is signed
    # attempts, each by a different keeper, before a task fails (AttestationCenter.MAX_ATTEMPT is 7)
    max_task_attempts: Annotated[int, Meta(ge=1, le=7)]
    retry_backoff_seconds: Positive  # first retry delay; doubles with each attempt
    heartbeat_interval_seconds: Positive
    offline_after_seconds: Positive  # a keeper without heartbeats this long is not assigned tasks


class Genesis(_Object, frozen=True):
    """The whole genesis.json."""

    chain_id: Positive
    network: Annotated[str, Meta(min_length=1)]
    rpc_urls: list[HttpUrl]
    contracts: Contracts
    dispatcher: ChecksumAddress | None  # the address that signs assignments; null until deployed
    initial_operators: list[InitialOperator]
    aggregator_bootstrap: list[PeerMultiaddr]
    protocol: Protocol
    aggregators: list[ChecksumAddress] = msgspec.field(
        default_factory=list
    )  # their mesh messages are accepted
    # The gateway's mesh peer id: keepers and aggregators admit its connections. Without it,
    # nodes run with peer admission off (any libp2p peer may connect), and say so.
    dispatcher_peer_id: PeerId | None = None


def load_genesis(path: Path) -> Genesis:
    """Read and check the genesis file at `path`; GenesisError names the file and the bad field."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise GenesisError(f"genesis {path}: cannot read it: {error.strerror}") from None
    return parse_genesis(data, source=str(path))


def parse_genesis(data: bytes, source: str = "genesis") -> Genesis:
    """Check the genesis JSON `data`; `source` names it in errors."""
    try:
        genesis = msgspec.json.decode(data, type=Genesis, dec_hook=dec_hook)
    except msgspec.ValidationError as error:
        path, problem = split_validation_error(error)
        raise GenesisError(f"{source}: {path}: {problem}") from None
    except msgspec.DecodeError as error:
        raise GenesisError(f"{source}: not JSON: {error}") from None
    problem = _rule_broken(genesis)
    if problem is not None:
        raise GenesisError(f"{source}: {problem[0]}: {problem[1]}")
    return genesis


def _rule_broken(genesis: Genesis) -> tuple[str, str] | None:
    """The JSON path and problem of the first rule across fields that `genesis` breaks."""
    protocol = genesis.protocol
    if protocol.offline_after_seconds <= protocol.heartbeat_interval_seconds:
        return (
            "$.protocol.offlineAfterSeconds",
            f"must exceed heartbeatIntervalSeconds ({protocol.heartbeat_interval_seconds}), "
            f"got {protocol.offline_after_seconds}",
        )
    for field, attribute in (
        ("address", "address"),
        ("blsPublicKey", "bls_public_key"),
        ("peerId", "peer_id"),
    ):
        first: dict[str, int] = {}
        for index, operator in enumerate(genesis.initial_operators):
            value = getattr(operator, attribute)
            if value in first:
                return (
                    f"$.initialOperators[{index}].{field}",
                    f"duplicate of $.initialOperators[{first[value]}].{field}",
                )
            first[value] = index
    return None
