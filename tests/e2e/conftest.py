"""The devnet, as `triggerx-node devnet` starts it, for end-to-end tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway import ScriptSpec
from node.chain import free_port, load_artifact
from node.cli import main
from node.devnet import devnet_demo_job

CLI = str(Path(sys.executable).with_name("triggerx-node"))
TOKEN = load_artifact("TestToken")


def in_process(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`triggerx-node *args` run by its `main` in this process, its output captured: for checks
    of what a command refuses (the real program spends seconds importing, each time)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["triggerx-node", *args], code, out, err)


def rpc(url: str, method: str, *params: object) -> object:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()[
        "result"
    ]


def keepers_online(gateway: str) -> dict[str, bool]:
    return {k["address"]: k["online"] for k in httpx.get(f"{gateway}/api/keepers").json()["keepers"]}


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def transact(url: str, sender: str, to: str | None, data: bytes) -> dict:
    """Send a transaction from anvil dev account `sender` (unsigned) and wait for its receipt."""
    call = {"from": sender, "data": "0x" + data.hex(), "gas": hex(3_000_000)}
    tx_hash = rpc(url, "eth_sendTransaction", {**call, "to": to} if to else call)
    receipt = None
    while receipt is None:
        receipt = rpc(url, "eth_getTransactionReceipt", tx_hash)
    return receipt


@dataclass(frozen=True)
class TransferJob:
    """A demo job fired by transfers of a fresh TestToken to `receiver`: what a test mints with."""

    url: str  # the token's chain
    sender: str  # an anvil dev account there (unsigned transactions)
    receiver: str
    token: str
    job_id: int

    def mint(self, to: str, value: int) -> dict:
        """Mint `value` to `to`; the receipt."""
        return transact(self.url, self.sender, self.token, TOKEN.abi.encode_call("mint", [to, value]))


def transfer_job(
    devnet: dict, chain: dict | None = None, *where: str, script: ScriptSpec | None = None
) -> TransferJob:
    """Deploy a TestToken on `chain` (one of devnet.json's `otherChains`; default the home chain)
    and create a devnet demo job fired by its transfers to dev account 8 that meet `where`, one
    confirmation (with `script`: its arguments from that script); returned once the gateway
    watches it."""
    url, chain_id = (chain["rpcUrl"], chain["chainId"]) if chain else (devnet["rpcUrl"], devnet["chainId"])
    sender, receiver = rpc(url, "eth_accounts")[9], rpc(url, "eth_accounts")[8]
    token = transact(url, sender, None, TOKEN.abi.encode_deploy(TOKEN.bytecode, ["E", "E"]))[
        "contractAddress"
    ]
    trigger = ("event", {
        "chainId": chain_id,
        "addresses": [token],
        "event": "Transfer(address indexed from, address indexed to, uint256 value)",
        "where": [f"to = {receiver}", *where],
        "confirmations": 1,
    })  # fmt: skip
    job = devnet_demo_job(devnet, trigger=trigger, script=script)
    created = httpx.post(f"{devnet['gatewayUrl']}/api/jobs", json=job)
    assert created.status_code == 201, created.text
    time.sleep(1.5)  # the gateway reads the chain every second: the job is watched from here on
    return TransferJob(url, sender, receiver, token, created.json()["job"]["id"])


@contextmanager
def running_devnet(folder: Path, *options: str) -> Iterator[dict]:
    """`triggerx-node devnet --instant --keepers 3` with `options`, in `folder`: its devnet.json."""
    command = [
        CLI,
        "devnet",
        "--instant",
        "--keepers",
        "3",
        "--dir",
        str(folder),
        "--http-port",
        str(free_port()),
    ]
    process = subprocess.Popen(
        [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        lines = []
        for line in process.stdout:  # a line per start-up step, then the summary
            lines.append(line)
            if line.startswith("devnet ready"):
                break
        assert lines, "the devnet printed nothing"
        assert lines[-1].startswith("devnet ready"), "".join(lines)
        yield json.loads((folder / "devnet.json").read_text())
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


@pytest.fixture(scope="module")
def module_devnet(tmp_path_factory):
    """One devnet for all the tests of a module (for tests that do not disturb each other)."""
    with running_devnet(tmp_path_factory.mktemp("devnet") / "devnet") as facts:
        yield facts


@pytest.fixture
def devnet(tmp_path):
    with running_devnet(tmp_path / "devnet") as facts:
        yield facts


@pytest.fixture
def two_chain_devnet(tmp_path):
    """The devnet with a second chain (id 31338) that its nodes read for event and condition jobs."""
    with running_devnet(tmp_path / "devnet", "--chains", "2") as facts:
        yield facts
