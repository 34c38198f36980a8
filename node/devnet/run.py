"""`triggerx-node devnet`: a whole network on this machine, each node its own OS process.

It takes its folder (node.devnet.record: never one that holds another run, unless told to),
starts anvil, makes throwaway keys for a gateway, an aggregator and N keepers, deploys and
wires the contracts, registers the keepers, writes genesis.json, one TOML config per node and
devnet.json (what a client needs: URLs, addresses, the demo owner's key) into the folder,
starts the nodes and waits until the gateway sees every keeper online, a line per step; then
it says what runs where (node.devnet.report), and stops everything on Ctrl-C or SIGTERM,
saying what stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import msgspec
import trio
from eth_account import Account

from node.chain import Anvil, ChainError, free_port
from node.chain.anvil import AnvilError
from node.config import load_genesis
from node.devnet.chain import KeeperKeys, provision
from node.devnet.demo import demo_job, fund_and_deploy_demo
from node.devnet.nodes import REPO_GENESIS, devnet_genesis, make_node, write_config
from node.devnet.record import (
    FACTS_FILE,
    SUPERVISOR_LOG,
    DevnetError,
    ProcessRecord,
    RunRecord,
    claim_folder,
    new_record,
    process_record,
    write_record,
)
from node.devnet.report import Progress, keepers_text, ready_summary, stop_report
from node.keys import peer_id

READY_TIMEOUT = 120.0


class Devnet:
    """The running devnet: anvil and the node processes, with its run record in its folder.

    `force`: wipe a folder that holds a stopped run or other files (node.devnet.record);
    `detached`: recorded for `devnet status`; `progress`: where the start-up steps are told."""

    def __init__(
        self,
        root: Path,
        keepers: int,
        instant: bool,
        http_port: int | None,
        anvil_port: int | None,
        chains: int = 1,
        *,
        force: bool = False,
        detached: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.root = root
        self.keeper_count = keepers
        self.force, self.detached = force, detached
        self.progress = progress or Progress(None)
        block_time = None if instant else 1
        self.anvil = Anvil(port=anvil_port, block_time=block_time)
        # The other chains: read for event and condition jobs (tasks execute on the first).
        self.others = [
            Anvil(chain_id=self.anvil.chain_id + n, block_time=block_time) for n in range(1, chains)
        ]
        self.http_port = http_port or free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.record: RunRecord | None = None  # once the folder is this run's
        self._anvil_processes: dict[str, subprocess.Popen[bytes]] = {}
        self._interrupted = False

    def interrupt(self) -> None:
        """Give up starting at the next step (from a signal handler; `stop` still has to run)."""
        self._interrupted = True

    def _step(self, what: str) -> AbstractContextManager[None]:
        if self._interrupted:
            raise DevnetError("interrupted before it was ready")
        return self.progress.step(what)

    def _track(self, name: str, pid: int, log: Path | None = None) -> None:
        assert self.record is not None
        self.record.processes.append(process_record(name, pid, log))
        write_record(self.root, self.record)

    def _start_chains(self) -> None:
        blocks = "a block per transaction" if self.anvil.block_time is None else "1 s blocks"
        for name, anvil in self._chains():
            with self._step(f"{name} on :{anvil.port} (chain id {anvil.chain_id}, {blocks})"):
                anvil.start()
            # Anvil keeps its process to itself; the run record needs its pid, the stop report its exit.
            self._anvil_processes[name] = anvil._process
            self._track(name, anvil._process.pid)

    def _chains(self) -> list[tuple[str, Anvil]]:
        return [("anvil", self.anvil), *((f"anvil-{other.chain_id}", other) for other in self.others)]

    def start(self) -> dict[str, object]:
        """Bring the whole network up; the facts a client needs (also in devnet.json)."""
        wiped = any(self.root.iterdir()) if self.root.is_dir() else False
        claim_folder(self.root, self.force)
        self.record = new_record(self.root, self.detached)
        self.progress.note(f"folder {self.root}" + (": wiped what it held (--force)" if wiped else ""))
        self._start_chains()
        password_file = self.root / "password"
        password = secrets.token_hex(16)
        password_file.write_text(password)
        password_file.chmod(0o600)
        admin_token_file = self.root / "admin-token"
        admin_token = secrets.token_urlsafe(24)
        admin_token_file.write_text(admin_token)
        admin_token_file.chmod(0o600)
        with self._step(f"keys for the gateway, the aggregator and {keepers_text(self.keeper_count)}"):
            gateway = make_node(self.root, "gateway", "gateway", password)
            aggregator = make_node(self.root, "aggregator", "aggregator", password)
            keepers = [
                make_node(self.root, f"keeper-{i}", "keeper", password)
                for i in range(1, self.keeper_count + 1)
            ]
        deployer = Account.from_key(self.anvil.private_keys[0])
        owner = Account.from_key(self.anvil.private_keys[1])
        keys = [KeeperKeys(k.operator.address, k.bls_secret, peer_id(k.identity).to_bytes()) for k in keepers]
        with self._step(f"contracts deployed, {keepers_text(self.keeper_count)} funded, staked, registered"):
            deployment = trio.run(provision, self.anvil.http_url, deployer, gateway.operator.address, keys)
        with self._step("demo counter deployed, the demo owner's deposit made"):
            counter = trio.run(
                fund_and_deploy_demo,
                self.anvil.http_url,
                deployer,
                owner,
                aggregator.operator.address,
                gateway.operator.address,
                deployment.hub,
            )
        genesis_path = self.root / "genesis.json"
        genesis = devnet_genesis(
            load_genesis(REPO_GENESIS), self.anvil.http_url, deployment, aggregator, gateway, keepers
        )
        genesis_path.write_bytes(msgspec.json.format(msgspec.json.encode(genesis)))
        nodes = [aggregator, gateway, *keepers]
        for node in nodes:  # the aggregator first: it is the bootstrap peer
            config = write_config(
                node, self.anvil, self.others, genesis_path, password_file, self.http_port, admin_token_file
            )
            log_path = node.root / "node.log"
            command = [str(Path(sys.executable).with_name("triggerx-node")), "--config", str(config)]
            with log_path.open("wb") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            self.processes[node.name] = process
            self._track(node.name, process.pid, log_path)
        self.progress.note(
            f"aggregator, gateway and {keepers_text(self.keeper_count)} started "
            f"(pids {', '.join(str(p.pid) for p in self.processes.values())})"
        )
        gateway_url = f"http://127.0.0.1:{self.http_port}"
        self._wait_ready(gateway_url)
        facts = {
            "gatewayUrl": gateway_url,
            "rpcUrl": self.anvil.http_url,
            "chainId": deployment.chain_id,
            "otherChains": [{"chainId": other.chain_id, "rpcUrl": other.http_url} for other in self.others],
            "contracts": msgspec.to_builtins(genesis.contracts),
            "demoOwner": owner.address,
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
        (self.root / FACTS_FILE).write_text(json.dumps(facts, indent=2) + "\n")
        self.record.ready = True
        write_record(self.root, self.record)
        facts["demoJob"] = demo_job(owner, counter, deployment.chain_id, deployment.hub)
        return facts

    def _check_nodes(self) -> None:
        if self._interrupted:
            raise DevnetError("interrupted before it was ready")
        for name, process in self.processes.items():
            if process.poll() is not None:
                tail = (self.root / name / "node.log").read_text(errors="replace")[-2000:]
                raise DevnetError(f"{name} exited with {process.returncode}:\n{tail}")

    def _wait_ready(self, gateway_url: str) -> None:
        """Until the gateway answers and sees every keeper online: a line for each keeper that comes."""
        deadline = time.monotonic() + READY_TIMEOUT
        online = 0
        with self.progress.step(f"gateway answering on {gateway_url}"):
            while not _answers(f"{gateway_url}/api/health"):
                self._check_nodes()
                if time.monotonic() > deadline:
                    raise DevnetError(
                        f"the gateway did not answer within {READY_TIMEOUT:.0f}s (logs in {self.root})"
                    )
                time.sleep(0.2)
        while online < self.keeper_count:
            self._check_nodes()
            if time.monotonic() > deadline:
                raise DevnetError(f"the mesh did not form within {READY_TIMEOUT:.0f}s (logs in {self.root})")
            now = _keepers_online(gateway_url)
            for count in range(online + 1, min(now, self.keeper_count) + 1):
                self.progress.note(
                    f"keeper {count}/{self.keeper_count} online ({self.progress.elapsed():.1f} s)"
                )
            online = max(online, now)
            time.sleep(0.3)

    def stop(self) -> list[ProcessRecord]:
        """Stop every node (SIGTERM, then SIGKILL after 10 s), then anvil; each process with its
        exit, as the run record now has them."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for _, anvil in self._chains():
            anvil.stop()
        if self.record is None:
            return []
        exits = {name: p.returncode for name, p in (self.processes | self._anvil_processes).items()}
        for stopped in self.record.processes:
            stopped.exit = exits.get(stopped.name)
        self.record.stopped_at = time.time()
        if self.root.is_dir():
            write_record(self.root, self.record)
        return self.record.processes


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def _keepers_online(gateway_url: str) -> int:
    try:
        keepers = httpx.get(f"{gateway_url}/api/keepers", timeout=2).json()["keepers"]
        return sum(k["online"] for k in keepers)
    except (httpx.HTTPError, ValueError, KeyError):
        return 0


def _log_to_file(path: Path) -> None:
    """From here on, this process's stdout and stderr go to `path` (a detached supervisor's
    terminal is gone; its starter stops reading when the pipe closes)."""
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, sys.stdout.fileno())
    os.dup2(log, sys.stderr.fileno())
    os.close(log)


def run_devnet(
    root: Path,
    keepers: int,
    instant: bool,
    http_port: int | None,
    anvil_port: int | None,
    chains: int = 1,
    *,
    force: bool = False,
    detached: bool = False,
) -> int:
    """Start the devnet with a line per step, say what runs where, and run until Ctrl-C or
    SIGTERM, then say what stopped; the exit code. `detached`: once ready, write to
    <root>/devnet.log instead (the process that started this one has returned)."""
    progress = Progress(sys.stdout)
    devnet = Devnet(
        root,
        keepers,
        instant,
        http_port,
        anvil_port,
        chains,
        force=force,
        detached=detached,
        progress=progress,
    )
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True
        devnet.interrupt()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        facts = devnet.start()
        print(ready_summary(facts, root, progress.elapsed(), detached), flush=True)
        if detached:
            _log_to_file(root / SUPERVISOR_LOG)
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
    except (DevnetError, AnvilError, ChainError) as error:
        print(f"triggerx-node: error: devnet: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        if stopped := devnet.stop():
            print(stop_report(stopped, root, detached), flush=True)
