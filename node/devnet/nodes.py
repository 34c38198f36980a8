"""The devnet's nodes: throwaway keys, a TOML config each, and the genesis that names them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import msgspec
from eth_account import Account
from eth_account.signers.local import LocalAccount

from node.bls import CURVE_ORDER, choose_backend
from node.chain import Anvil, free_port
from node.config import Contracts, Genesis, InitialOperator
from node.devnet.chain import KEEPER_STAKE, Deployment
from node.keys import KeyDirectory, import_bls_keystore, new_identity, peer_id, save_keys

REPO_GENESIS = Path(__file__).resolve().parents[2] / "genesis.json"
# A local network notices a dead keeper in seconds; a public one tolerates slow links.
DEVNET_HEARTBEAT_SECONDS = 1
DEVNET_OFFLINE_AFTER_SECONDS = 4
DEVNET_SCRYPT_N = 2**12  # throwaway keys: fast to unlock
FAUCET_WEI = 10**18  # what POST /api/claim-fund sends an address, once a day


@dataclass
class NodeSpec:
    """One node of the devnet: its role, folder, keys and ports."""

    name: str
    role: str
    root: Path
    operator: LocalAccount
    bls_secret: bytes
    identity: object
    mesh_port: int
    metrics_port: int | None = None  # keepers and the aggregator; the gateway serves /metrics on its API

    @property
    def metrics_url(self) -> str | None:
        return None if self.metrics_port is None else f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def peer_id(self) -> str:
        return peer_id(self.identity).to_base58()


def make_node(root: Path, name: str, role: str, password: str) -> NodeSpec:
    operator = Account.create()
    bls_secret = (secrets.randbelow(CURVE_ORDER - 1) + 1).to_bytes(32, "big")
    identity = new_identity()
    keys = KeyDirectory(root / name / "keys")
    bls = import_bls_keystore(bls_secret, password, scrypt_n=DEVNET_SCRYPT_N)
    save_keys(keys, bytes(operator.key), bls, identity, password, scrypt_n=DEVNET_SCRYPT_N, overwrite=True)
    metrics_port = None if role == "gateway" else free_port()
    return NodeSpec(name, role, root / name, operator, bls_secret, identity, free_port(), metrics_port)


def write_config(
    node: NodeSpec,
    anvil: Anvil,
    others: list[Anvil],
    genesis: Path,
    password_file: Path,
    http_port: int,
    admin_token_file: Path,
) -> Path:
    keys = node.root / "keys"
    lines = [
        "[node]",
        f'role = "{node.role}"',
        f'data_dir = "{node.root / "data"}"',
        "private_http_sources = true  # the devnet's condition jobs may read local test servers",
        f'script_sources = ["http://127.0.0.1:{http_port}/ipfs/"]',
        *([f'metrics_listen = "127.0.0.1:{node.metrics_port}"'] if node.metrics_port is not None else []),
        "[chain]",
        f'rpc_url = "{anvil.http_url}"',
        f'ws_url = "{anvil.ws_url}"',
        "watch = ["
        + ", ".join(f'"{other.chain_id} {other.http_url} {other.ws_url}"' for other in others)
        + "]",
        "[mesh]",
        f'listen = "/ip4/127.0.0.1/tcp/{node.mesh_port}"',
        "[keys]",
        f'operator_keystore = "{keys / "operator.json"}"',
        f'operator_password_file = "{password_file}"',
        f'bls_keystore = "{keys / "bls.json"}"',
        f'bls_password_file = "{password_file}"',
        f'identity = "{keys / "identity.key"}"',
        "[gateway]",
        f'http_listen = "127.0.0.1:{http_port}"',
        "script_jobs = true  # the devnet's scripts are the tests' own",
        f'admin_token_file = "{admin_token_file}"',
        "anonymous_requests_per_minute = 1000000  # one machine's tests and benchmarks share an address",
        f"faucet_wei = {FAUCET_WEI}",
        "[genesis]",
        f'path = "{genesis}"',
    ]
    path = node.root / "node.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def devnet_genesis(
    base: Genesis,
    rpc_url: str,
    deployment: Deployment,
    aggregator: NodeSpec,
    gateway: NodeSpec,
    keepers: list[NodeSpec],
) -> Genesis:
    backend = choose_backend()
    return msgspec.structs.replace(
        base,
        chain_id=deployment.chain_id,
        rpc_urls=[rpc_url],
        contracts=Contracts(
            task_execution_hub=deployment.hub,
            operator_registry=deployment.operator_registry,
            attestation_center=deployment.attestation_center,
        ),
        dispatcher=deployment.dispatcher,
        initial_operators=[
            InitialOperator(
                address=k.operator.address,
                bls_public_key="0x" + backend.secret_to_public(k.bls_secret).hex(),
                peer_id=k.peer_id,
                stake=KEEPER_STAKE,
            )
            for k in keepers
        ],
        aggregator_bootstrap=[f"/ip4/127.0.0.1/tcp/{aggregator.mesh_port}/p2p/{aggregator.peer_id}"],
        aggregators=[aggregator.operator.address],
        dispatcher_peer_id=gateway.peer_id,
        protocol=msgspec.structs.replace(
            base.protocol,
            heartbeat_interval_seconds=DEVNET_HEARTBEAT_SECONDS,
            offline_after_seconds=DEVNET_OFFLINE_AFTER_SECONDS,
        ),
    )
