"""The devnet, as `triggerx-node devnet` starts it, for end-to-end tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
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
