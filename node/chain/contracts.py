"""Our contracts from their compiled artifacts: load, deploy, call, transact, read events."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from node.chain.abi import ContractAbi, DecodedEvent, RevertDecoder
from node.chain.rpc import RpcClient
from node.chain.transactions import Receipt, TransactionSender

ARTIFACTS_DIR = Path(
    os.environ.get("TRIGGERX_ARTIFACTS_DIR", Path(__file__).resolve().parents[2] / "contracts" / "out")
)


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: its ABI, creation code, and the hash of the sources it came from."""

    name: str
    abi: ContractAbi
    bytecode: bytes
    source_hash: str
    sources: tuple[str, ...]

    @classmethod
    def load(cls, name: str, directory: Path = ARTIFACTS_DIR) -> Artifact:
        """Read `<directory>/<name>.json` as written by scripts/compile_contracts."""
        path = directory / f"{name}.json"
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no artifact {path}; run scripts/compile_contracts") from None
        return cls(
            name=raw["contractName"],
            abi=ContractAbi(raw["abi"]),
            bytecode=bytes.fromhex(raw["bytecode"][2:]),
            source_hash=raw["sourceHash"],
            sources=tuple(raw["sources"]),
        )


@cache
def load_artifact(name: str) -> Artifact:
    """The artifact `name` from the default directory, read once per process."""
    return Artifact.load(name)


def revert_decoder(directory: Path = ARTIFACTS_DIR) -> RevertDecoder:
    """A decoder that knows the custom errors of every artifact in `directory`.

    A call into one contract can revert with another's error (the hub bubbles up the gas
    registry's), so the decoder knows them all.
    """
    return RevertDecoder(Artifact.load(p.stem, directory).abi for p in sorted(directory.glob("*.json")))


class Contract:
    """A deployed contract bound to an address; calls go through `rpc`, transactions through a sender."""

    def __init__(self, rpc: RpcClient, artifact: Artifact, address: str) -> None:
        self.rpc = rpc
        self.artifact = artifact
        self.address = to_checksum_address(address)

    @property
    def abi(self) -> ContractAbi:
        """The contract's ABI codec."""
        return self.artifact.abi

    def encode(self, function: str, *args: Any) -> bytes:
        """The calldata of `function(*args)`."""
        return self.abi.encode_call(function, args)

    async def call(self, function: str, *args: Any, sender: str | None = None, block: str = "latest") -> Any:
        """Run `function(*args)` with `eth_call` and decode what it returns."""
        method, params = self.call_request(function, *args, sender=sender, block=block)
        return self.decode_result(function, await self.rpc.call(method, *params))

    def call_request(
        self, function: str, *args: Any, sender: str | None = None, block: str = "latest"
    ) -> tuple[str, list[Any]]:
        """The `eth_call` of `function(*args)`, to send with others in one `RpcClient.batch`
        (decode each reply with `decode_result`)."""
        request: dict[str, Any] = {"to": self.address, "data": "0x" + self.encode(function, *args).hex()}
        if sender is not None:
            request["from"] = sender
        return "eth_call", [request, block]

    def decode_result(self, function: str, reply: str) -> Any:
        """What `function` returned, from an `eth_call` reply (0x-hex)."""
        return self.abi.decode_result(function, bytes.fromhex(reply[2:]))

    async def transact(
        self,
        sender: TransactionSender,
        function: str,
        *args: Any,
        value: int = 0,
        gas: int | None = None,
        timeout: float = 60.0,
    ) -> Receipt:
        """Send `function(*args)` from `sender` and wait for it; a revert raises `RevertError`."""
        data = self.encode(function, *args)
        return await sender.transact(self.address, data, value, gas, timeout=timeout)

    def events(self, receipt: Receipt, name: str | None = None) -> list[DecodedEvent]:
        """The events this contract emitted in `receipt`, optionally only those called `name`."""
        found = []
        for log in receipt.logs:
            if to_checksum_address(log["address"]) != self.address:
                continue
            event = self.abi.decode_log(log)
            if event is not None and (name is None or event.name == name):
                found.append(event)
        return found


async def deploy(sender: TransactionSender, artifact: Artifact, *args: Any, value: int = 0) -> Contract:
    """Deploy `artifact` with constructor `args` and return it bound to its new address."""
    receipt = await sender.transact(None, artifact.abi.encode_deploy(artifact.bytecode, args), value)
    if receipt.contract_address is None:
        raise ValueError(f"deploying {artifact.name}: the receipt names no contract address")
    return Contract(sender.rpc, artifact, receipt.contract_address)
