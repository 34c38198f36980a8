"""A real anvil process on 127.0.0.1, for tests, benchmarks and the devnet."""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

_PLATFORMS = {("Linux", "x86_64"): "linux-amd64", ("Linux", "aarch64"): "linux-arm64"}
_PLATFORMS |= {("Darwin", "x86_64"): "darwin-amd64", ("Darwin", "arm64"): "darwin-arm64"}


def anvil_binary() -> Path:
    """The anvil binary: `$TRIGGERX_ANVIL`, or the one scripts/setup installed with npm."""
    if env := os.environ.get("TRIGGERX_ANVIL"):
        return Path(env)
    package = f"anvil-{_PLATFORMS.get((platform.system(), platform.machine()), 'linux-amd64')}"
    root = Path(__file__).resolve().parents[2]
    return root / "scripts" / "toolchain" / "node_modules" / "@foundry-rs" / package / "bin" / "anvil"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AnvilError(RuntimeError):
    """anvil could not be started."""


class Anvil:
    """An anvil node with the Prague hardfork (EIP-2537 precompiles) and funded dev accounts.

    Mining is instant unless `block_time` (seconds) is given. `restart` brings a fresh
    chain up on the same port, which is how tests break and heal a connection.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int = 31337,
        block_time: float | None = None,
        accounts: int = 10,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.chain_id = chain_id
        self.block_time = block_time
        self.account_count = accounts
        self.extra_args = extra_args
        self.private_keys: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir = tempfile.TemporaryDirectory(prefix="anvil-")

    @property
    def http_url(self) -> str:
        """JSON-RPC over HTTP."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """JSON-RPC over WebSocket (same port)."""
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        """Start anvil and return once it answers JSON-RPC."""
        config = Path(self._workdir.name) / "anvil.json"
        log = Path(self._workdir.name) / "anvil.log"
        command = [
            str(anvil_binary()),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--hardfork", "prague",
            "--accounts", str(self.account_count),
            "--config-out", str(config),
            *(["--block-time", str(self.block_time)] if self.block_time else []),
            *self.extra_args,
        ]  # fmt: skip
        with log.open("wb") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AnvilError(f"anvil exited with {self._process.returncode}: {log.read_text()[-2000:]}")
            try:
                httpx.post(
                    self.http_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=1
                )
                break
            except httpx.TransportError:
                time.sleep(0.02)
        else:
            self.stop()
            raise AnvilError(f"anvil did not answer on {self.http_url} within {timeout}s")
        self.private_keys = json.loads(config.read_text())["private_keys"]

    def stop(self) -> None:
        """Stop anvil (SIGTERM, then SIGKILL after 5 s)."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        """Stop, then start a fresh chain on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> Anvil:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self._workdir.cleanup()
