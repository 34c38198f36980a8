"""`triggerx-node devnet`: a whole network on this machine, each node its own OS process.

It starts anvil, makes throwaway keys for a gateway, an aggregator and N keepers, deploys
and wires the contracts, registers the keepers, writes genesis.json, one TOML config per
node and devnet.json (what a client needs: URLs, addresses, the demo owner's key) into the
devnet folder, starts the nodes, waits until the gateway sees every keeper online, prints
the gateway URL and a ready-to-paste curl, and stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount

from gateway import JobSpec, ScriptSpec, sign_job
from node.bls import CURVE_ORDER, choose_backend
from node.chain import (
    Anvil,
    Contract,
    RpcClient,
    TransactionSender,
    deploy,
    free_port,
    load_artifact,
    revert_decoder,
)
from node.config import Contracts, Genesis, InitialOperator, load_genesis
from node.devnet.chain import KEEPER_STAKE, Deployment, KeeperKeys, provision
from node.keys import KeyDirectory, import_bls_keystore, new_identity, peer_id, save_keys

REPO_GENESIS = Path(__file__).resolve().parents[2] / "genesis.json"
# A local network notices a dead keeper in seconds; a public one tolerates slow links.
DEVNET_HEARTBEAT_SECONDS = 1
DEVNET_OFFLINE_AFTER_SECONDS = 4
DEVNET_SCRYPT_N = 2**12  # throwaway keys: fast to unlock
READY_TIMEOUT = 120.0
ETH = 10**18
FAUCET_WEI = ETH  # what POST /api/claim-fund sends an address, once a day


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


class DevnetError(RuntimeError):
    """The devnet could not start; the message says which part failed."""


def _make_node(root: Path, name: str, role: str, password: str) -> NodeSpec:
    operator = Account.create()
    bls_secret = (secrets.randbelow(CURVE_ORDER - 1) + 1).to_bytes(32, "big")
    identity = new_identity()
    keys = KeyDirectory(root / name / "keys")
    bls = import_bls_keystore(bls_secret, password, scrypt_n=DEVNET_SCRYPT_N)
    save_keys(keys, bytes(operator.key), bls, identity, password, scrypt_n=DEVNET_SCRYPT_N, overwrite=True)
    metrics_port = None if role == "gateway" else free_port()
    return NodeSpec(name, role, root / name, operator, bls_secret, identity, free_port(), metrics_port)


def _config(
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


async def _fund_and_demo(
    rpc_url: str,
    deployer: LocalAccount,
    owner: LocalAccount,
    aggregator: str,
    gateway: str,
    hub_address: str,
) -> str:
    """Give the aggregator gas money and the gateway its faucet's, the demo owner a task
    balance, and deploy the demo counter."""
    async with RpcClient(rpc_url, revert_decoder=revert_decoder()) as rpc:
        chain_id = int(await rpc.call("eth_chainId"), 16)
        sender = TransactionSender(rpc, deployer, chain_id)
        await sender.transact(aggregator, b"", 100 * ETH)
        await sender.transact(gateway, b"", 1000 * ETH)
        counter = await deploy(sender, load_artifact("Counter"))
        hub = Contract(rpc, load_artifact("TaskExecutionHub"), hub_address)
        await hub.transact(TransactionSender(rpc, owner, chain_id), "deposit", value=10 * ETH)
        return counter.address


def _genesis(
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


def demo_job(
    owner: LocalAccount,
    counter: str,
    chain_id: int,
    hub: str,
    every_seconds: int = 5,
    end: int | None = None,
    *,
    trigger: tuple[str, dict[str, Any]] | None = None,
    script: ScriptSpec | None = None,
) -> dict[str, object]:
    """A signed job that increments the demo counter every `every_seconds` until `end` (unix
    seconds; never by default), or on `trigger` (a kind's name and its schedule) when given,
    with a fresh random nonce each time, so every call makes a new job; the consent is valid
    for a week. With `script`, the counter goes up by what the script prints
    (`incrementBy(uint256)`)."""
    schedule_type, schedule = trigger or (
        "interval",
        {"everySeconds": every_seconds} | ({} if end is None else {"end": end}),
    )
    spec = JobSpec(
        owner=owner.address,
        nonce=str(secrets.randbits(64)),
        expiry=int(time.time()) + 7 * 86_400,
        target=counter,
        function="increment()" if script is None else "incrementBy(uint256)",
        schedule_type=schedule_type,
        schedule=schedule,
        max_fee_per_task=str(10**16),
        gas_limit=100_000,
        script=script,
    )
    return {"job": msgspec.to_builtins(spec), "signature": sign_job(spec, owner, chain_id, hub)}


def devnet_demo_job(
    facts: dict[str, Any],
    every_seconds: int = 5,
    end: int | None = None,
    *,
    trigger: tuple[str, dict[str, Any]] | None = None,
    script: ScriptSpec | None = None,
) -> dict[str, object]:
    """`demo_job` for the devnet described by `facts` (its devnet.json)."""
    owner = Account.from_key(facts["demoOwnerKey"])
    hub, counter = facts["contracts"]["taskExecutionHub"], facts["demoCounter"]
    return demo_job(owner, counter, facts["chainId"], hub, every_seconds, end, trigger=trigger, script=script)


class Devnet:
    """The running devnet: anvil and the node processes."""

    def __init__(
        self,
        root: Path,
        keepers: int,
        instant: bool,
        http_port: int | None,
        anvil_port: int | None,
        chains: int = 1,
    ) -> None:
        self.root = root
        self.keeper_count = keepers
        block_time = None if instant else 1
        self.anvil = Anvil(port=anvil_port, block_time=block_time)
        # The other chains: read for event and condition jobs (tasks execute on the first).
        self.others = [
            Anvil(chain_id=self.anvil.chain_id + n, block_time=block_time) for n in range(1, chains)
        ]
        self.http_port = http_port or free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> dict[str, object]:
        """Bring the whole network up; the facts a client needs (also in devnet.json)."""
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.anvil.start()
        for other in self.others:
            other.start()
        password_file = self.root / "password"
        password = secrets.token_hex(16)
        password_file.write_text(password)
        password_file.chmod(0o600)
        admin_token_file = self.root / "admin-token"
        admin_token = secrets.token_urlsafe(24)
        admin_token_file.write_text(admin_token)
        admin_token_file.chmod(0o600)
        gateway = _make_node(self.root, "gateway", "gateway", password)
        aggregator = _make_node(self.root, "aggregator", "aggregator", password)
        keepers = [
            _make_node(self.root, f"keeper-{i}", "keeper", password) for i in range(1, self.keeper_count + 1)
        ]
        deployer = Account.from_key(self.anvil.private_keys[0])
        owner = Account.from_key(self.anvil.private_keys[1])
        keys = [KeeperKeys(k.operator.address, k.bls_secret, peer_id(k.identity).to_bytes()) for k in keepers]
        deployment = trio.run(provision, self.anvil.http_url, deployer, gateway.operator.address, keys)
        counter = trio.run(
            _fund_and_demo,
            self.anvil.http_url,
            deployer,
            owner,
            aggregator.operator.address,
            gateway.operator.address,
            deployment.hub,
        )
        genesis_path = self.root / "genesis.json"
        genesis = _genesis(
            load_genesis(REPO_GENESIS), self.anvil.http_url, deployment, aggregator, gateway, keepers
        )
        genesis_path.write_bytes(msgspec.json.format(msgspec.json.encode(genesis)))
        nodes = [aggregator, gateway, *keepers]
        for node in nodes:  # the aggregator first: it is the bootstrap peer
            config = _config(
                node, self.anvil, self.others, genesis_path, password_file, self.http_port, admin_token_file
            )
            log = (node.root / "node.log").open("wb")
            command = [str(Path(sys.executable).with_name("triggerx-node")), "--config", str(config)]
            self.processes[node.name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        gateway_url = f"http://127.0.0.1:{self.http_port}"
        self._wait_ready(gateway_url)
        facts = {
            "gatewayUrl": gateway_url,
            "rpcUrl": self.anvil.http_url,
            "chainId": deployment.chain_id,
            "otherChains": [{"chainId": other.chain_id, "rpcUrl": other.http_url} for other in self.others],
            "contracts": msgspec.to_builtins(genesis.contracts),
            "demoOwnerKey": "0x" + bytes(owner.key).hex(),
            "adminToken": admin_token,  # Authorization: Bearer <it>, for /api/admin
            "demoCounter": counter,
            "keepers": {k.name: k.operator.address for k in keepers},
            "processes": {name: process.pid for name, process in self.processes.items()},
            "configs": {name: str(self.root / name / "node.toml") for name in self.processes},
            # Prometheus: each keeper's and the aggregator's own server, the gateway's API.
            "metricsUrls": {node.name: node.metrics_url for node in nodes if node.metrics_url}
            | {gateway.name: f"{gateway_url}/metrics"},
        }
        (self.root / "devnet.json").write_text(json.dumps(facts, indent=2) + "\n")
        facts["demoJob"] = demo_job(owner, counter, deployment.chain_id, deployment.hub)
        return facts

    def _wait_ready(self, gateway_url: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    tail = (self.root / name / "node.log").read_text(errors="replace")[-2000:]
                    raise DevnetError(f"{name} exited with {process.returncode}:\n{tail}")
            try:
                keepers = httpx.get(f"{gateway_url}/api/keepers", timeout=2).json()["keepers"]
                if sum(k["online"] for k in keepers) >= self.keeper_count:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        raise DevnetError(f"the mesh did not form within {READY_TIMEOUT:.0f}s (logs in {self.root})")

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after 10 s) and anvil."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.anvil.stop()
        for other in self.others:
            other.stop()


def run_devnet(
    root: Path, keepers: int, instant: bool, http_port: int | None, anvil_port: int | None, chains: int = 1
) -> int:
    """Start the devnet, print how to use it, and run until Ctrl-C or SIGTERM; the exit code."""
    devnet = Devnet(root, keepers, instant, http_port, anvil_port, chains)
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        facts = devnet.start()
        body = json.dumps(facts["demoJob"])
        print(f"devnet ready: {keepers} keepers, 1 aggregator, 1 gateway (folder {root})")
        print(f"gateway:  {facts['gatewayUrl']} (API documented at {facts['gatewayUrl']}/docs)")
        print(f"metrics:  {', '.join(f'{name} {url}' for name, url in facts['metricsUrls'].items())}")
        print(f"chain:    {facts['rpcUrl']} (chain id {facts['chainId']})")
        for other in devnet.others:
            print(
                f"chain:    {other.http_url} (chain id {other.chain_id}, read for event and condition jobs)"
            )
        print("create a demo job (increments the demo counter every 5 s):")
        url = facts["gatewayUrl"]
        print(f"  curl -s -X POST {url}/api/jobs -H 'content-type: application/json' -d '{body}'")
        print(f"then: curl -s {facts['gatewayUrl']}/api/tasks/job/1")
        sys.stdout.flush()
        reported: set[str] = set()
        while not stop:
            time.sleep(0.2)
            # A node that dies is reported, not fatal: the network is meant to survive it.
            for name, process in devnet.processes.items():
                if process.poll() is not None and name not in reported:
                    reported.add(name)
                    log = root / name / "node.log"
                    print(f"{name} exited with {process.returncode}; see {log}", file=sys.stderr, flush=True)
        return 0
    except DevnetError as error:
        print(f"triggerx-node: error: devnet: {error}", file=sys.stderr)
        return 1
    finally:
        devnet.stop()
