"""genesis.json: the repo's file validates; every kind of bad field is one line naming its JSON path."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID

from node.bls import choose_backend
from node.config import GenesisError, load_genesis, parse_genesis

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # anvil's first deployment, checksummed
PEERS = [str(ID.from_pubkey(create_new_key_pair(bytes([n]) * 32).public_key)) for n in (1, 2)]
BLS_KEYS = ["0x" + choose_backend().secret_to_public(n.to_bytes(32, "big")).hex() for n in (1, 2)]


def full_genesis() -> dict[str, Any]:
    document = json.loads((ROOT / "genesis.json").read_text())
    document["contracts"]["taskExecutionHub"] = ADDRESS
    document["dispatcher"] = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    document["initialOperators"] = [
        {"address": f"0x{n:040x}", "blsPublicKey": BLS_KEYS[n - 1], "peerId": PEERS[n - 1], "stake": 10**30}
        for n in (1, 2)
    ]
    document["aggregatorBootstrap"] = [
        f"/ip4/127.0.0.1/tcp/4001/p2p/{PEERS[0]}",
        f"/dns4/agg/tcp/1/p2p/{PEERS[1]}",
    ]
    return document


def test_the_repos_genesis_is_valid():
    genesis = load_genesis(ROOT / "genesis.json")
    assert genesis.chain_id == 31337
    assert genesis.network == "triggerx-devnet"
    assert genesis.contracts.attestation_center is None
    assert genesis.dispatcher is None
    protocol = genesis.protocol
    assert protocol.offline_after_seconds > protocol.heartbeat_interval_seconds


def test_a_deployed_network_with_operators_is_valid():
    genesis = parse_genesis(json.dumps(full_genesis()).encode())
    assert genesis.contracts.task_execution_hub == ADDRESS
    assert [operator.peer_id for operator in genesis.initial_operators] == PEERS
    assert genesis.initial_operators[0].stake == 10**30  # beyond 64 bits, exactly
    assert genesis.initial_operators[0].bls_public_key == BLS_KEYS[0]


def replace(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit setting the field at the dotted `path` (list indexes as numbers) to `value`."""

    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            document = document[int(part) if part.isdigit() else part]
        document[int(last) if last.isdigit() else last] = value

    return edit


def delete(path: str) -> Callable[[dict[str, Any]], None]:
    """An edit removing the field at the dotted `path`."""

    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            document = document[part]
        del document[last]

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (replace("chainId", "31337"), "$.chainId: expected `int`, got `str`"),
        (replace("chainId", 0), "$.chainId: expected `int` >= 1"),
        (replace("network", ""), "$.network: expected `str` of length >= 1"),
        (replace("protocol.maxTaskAttempts", True), "$.protocol.maxTaskAttempts: expected `int`, got `bool`"),
        # AttestationCenter decides attempts 1 to 7 only (Low: the genesis was not capped).
        (replace("protocol.maxTaskAttempts", 8), "$.protocol.maxTaskAttempts: expected `int` <= 7"),
        (
            replace("protocol.retryBackoffSeconds", 1.5),
            "$.protocol.retryBackoffSeconds: expected `int`, got `float`",
        ),
        (replace("protocol.assignmentTtlSeconds", 0), "$.protocol.assignmentTtlSeconds: expected `int` >= 1"),
        # Parameters nothing could honour are gone: a genesis that sets one is refused.
        (
            replace("protocol.approveThreshold", {"numerator": 1, "denominator": 2}),
            "$.protocol.approveThreshold: unknown field",
        ),
        (replace("protocol.attestersPerTask", 16), "$.protocol.attestersPerTask: unknown field"),
        (replace("protocol.extra", 1), "$.protocol.extra: unknown field"),
        (replace("extra", 1), "$.extra: unknown field"),
        (delete("contracts.operatorRegistry"), "$.contracts.operatorRegistry: missing"),
        (delete("rpcUrls"), "$.rpcUrls: missing"),
        (
            replace("rpcUrls", ["http://a", "localhost:8545"]),
            "$.rpcUrls[1]: expected an http(s) URL, got 'localhost:8545'",
        ),
        (
            replace("contracts.taskExecutionHub", ADDRESS.lower()),
            f"$.contracts.taskExecutionHub: '{ADDRESS.lower()}' is not checksummed: expected {ADDRESS}",
        ),
        (
            replace("dispatcher", "0x1234"),
            "$.dispatcher: expected a checksummed Ethereum address, got '0x1234'",
        ),
        (
            replace("initialOperators.0.blsPublicKey", "0x" + "ab" * 47),
            "$.initialOperators[0].blsPublicKey: expected a BLS public key (0x and 48 bytes of hex), "
            f"got '0x{'ab' * 47}'",
        ),
        (
            replace("initialOperators.0.blsPublicKey", "0x" + "00" * 48),
            f"$.initialOperators[0].blsPublicKey: '0x{'00' * 48}' is not a valid BLS12-381 public key",
        ),
        (
            replace("initialOperators.1.peerId", "QmNotAPeer"),
            "$.initialOperators[1].peerId: expected an Ed25519 libp2p peer id (12D3KooW...), "
            "got 'QmNotAPeer'",
        ),
        (replace("initialOperators.1.stake", -1), "$.initialOperators[1].stake: expected `int` >= 0"),
        (
            replace("initialOperators.1.peerId", PEERS[0]),
            "$.initialOperators[1].peerId: duplicate of $.initialOperators[0].peerId",
        ),
        (
            replace("aggregatorBootstrap.1", "/dns4/agg/tcp/1"),
            "$.aggregatorBootstrap[1]: expected a multiaddr ending in /p2p/<peer id>, got '/dns4/agg/tcp/1'",
        ),
        (
            replace("protocol.offlineAfterSeconds", 5),
            "$.protocol.offlineAfterSeconds: must exceed heartbeatIntervalSeconds (5), got 5",
        ),
        (replace("contracts", None), "$.contracts: expected `object`, got `null`"),
    ],
)
def test_a_bad_field_is_one_line_naming_its_json_path(tmp_path, edit, message):
    document = copy.deepcopy(full_genesis())
    edit(document)
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(document))
    with pytest.raises(GenesisError) as caught:
        load_genesis(path)
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "genesis: not JSON: Input data was truncated"),
        (b"[]", "genesis: $: expected `object`, got `array`"),
        (b"\xff", "genesis: not JSON: JSON is malformed: invalid character (byte 0)"),
    ],
)
def test_what_is_not_a_genesis_object_is_one_line(data, message):
    with pytest.raises(GenesisError) as caught:
        parse_genesis(data)
    assert str(caught.value) == message


def test_an_unreadable_genesis_is_one_line(tmp_path):
    with pytest.raises(GenesisError) as caught:
        load_genesis(tmp_path / "missing.json")
    assert (
        str(caught.value) == f"genesis {tmp_path / 'missing.json'}: cannot read it: No such file or directory"
    )
