"""The devnet, as `triggerx-node devnet` starts it, for end-to-end tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from node.chain import free_port

CLI = str(Path(sys.executable).with_name("triggerx-node"))


def rpc(url: str, method: str, *params: object) -> object:
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}).json()[
        "result"
    ]


@pytest.fixture
def devnet(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            CLI,
            "devnet",
            "--instant",
            "--keepers",
            "3",
            "--dir",
            str(tmp_path / "devnet"),
            "--http-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("then:"):
                break
        assert "".join(lines).startswith("devnet ready"), "".join(lines)
        yield json.loads((tmp_path / "devnet" / "devnet.json").read_text())
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
