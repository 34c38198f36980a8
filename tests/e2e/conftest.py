"""The devnet, as `triggerx-node devnet` starts it, for end-to-end tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from node.chain import free_port

CLI = str(Path(sys.executable).with_name("triggerx-node"))


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
        for line in process.stdout:
            lines.append(line)
            if line.startswith("then:"):
                break
        assert "".join(lines).startswith("devnet ready"), "".join(lines)
        yield json.loads((folder / "devnet.json").read_text())
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0


@pytest.fixture
def devnet(tmp_path):
    with running_devnet(tmp_path / "devnet") as facts:
        yield facts


@pytest.fixture
def two_chain_devnet(tmp_path):
    """The devnet with a second chain (id 31338) that its nodes read for event and condition jobs."""
    with running_devnet(tmp_path / "devnet", "--chains", "2") as facts:
        yield facts
