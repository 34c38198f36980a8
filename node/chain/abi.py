"""An offline ABI codec: calls, return values, events and revert data, from a contract's ABI JSON.

Built on eth-abi. Structs travel as dicts keyed by component name (tuples are accepted
on input too); addresses come out checksummed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import eth_abi
from eth_utils import keccak, to_checksum_address

from node.chain.errors import RevertError

AbiItem = Mapping[str, Any]

_ERROR_STRING = keccak(text="Error(string)")[:4]
_PANIC = keccak(text="Panic(uint256)")[:4]
_PANIC_CODES = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "corrupt storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function pointer",
}


def canonical_type(param: AbiItem) -> str:
    """The canonical type string of an ABI parameter, e.g. `(uint256,address)[]` for a struct array."""
    kind: str = param["type"]
    if not kind.startswith("tuple"):
        return kind
    inner = ",".join(canonical_type(c) for c in param["components"])
    return f"({inner}){kind[len('tuple') :]}"


def signature(item: AbiItem) -> str:
    """`name(type1,type2)` for a function, event or error."""
    return f"{item['name']}({','.join(canonical_type(p) for p in item['inputs'])})"


def _to_abi(param: AbiItem, value: Any) -> Any:
    """Python value → what eth-abi encodes (structs from dicts, arrays element-wise)."""
    kind: str = param["type"]
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return [_to_abi(element, v) for v in value]
    if kind == "tuple":
        components = param["components"]
        if isinstance(value, Mapping):
            missing = [c["name"] for c in components if c["name"] not in value]
            if missing:
                raise ValueError(f"struct {param.get('name', '')!r} lacks {', '.join(missing)}")
            value = [value[c["name"]] for c in components]
        return tuple(_to_abi(c, v) for c, v in zip(components, value, strict=True))
    return value


def _from_abi(param: AbiItem, value: Any) -> Any:
    """What eth-abi decoded → Python value (structs as dicts, addresses checksummed)."""
    kind: str = param["type"]
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return [_from_abi(element, v) for v in value]
    if kind == "tuple":
        return {c["name"]: _from_abi(c, v) for c, v in zip(param["components"], value, strict=True)}
    if kind == "address":
        return to_checksum_address(value)
    return value


def encode_params(params: Sequence[AbiItem], args: Sequence[Any]) -> bytes:
    """ABI-encode `args` for the parameter list `params`."""
    if len(args) != len(params):
        raise TypeError(f"expected {len(params)} arguments, got {len(args)}")
    values = [_to_abi(p, a) for p, a in zip(params, args, strict=True)]
    return eth_abi.encode([canonical_type(p) for p in params], values)


def decode_params(params: Sequence[AbiItem], data: bytes) -> list[Any]:
    """ABI-decode `data` for the parameter list `params`."""
    values = eth_abi.decode([canonical_type(p) for p in params], data)
    return [_from_abi(p, v) for p, v in zip(params, values, strict=True)]


@dataclass(frozen=True)
class DecodedEvent:
    """A log decoded against an event of the ABI."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    tx_hash: str
    log_index: int


class ContractAbi:
    """Lookup and codec over one contract's ABI."""

    def __init__(self, abi: Iterable[AbiItem]) -> None:
        self.items = list(abi)
        self._functions: dict[str, list[AbiItem]] = {}
        self._by_selector: dict[bytes, AbiItem] = {}
        self._events: dict[bytes, AbiItem] = {}
        self._events_by_name: dict[str, AbiItem] = {}
        self.errors: dict[bytes, AbiItem] = {}
        self.constructor: AbiItem = {"type": "constructor", "inputs": []}
        for item in self.items:
            match item["type"]:
                case "function":
                    self._functions.setdefault(item["name"], []).append(item)
                    self._functions[signature(item)] = [item]
                    self._by_selector[keccak(text=signature(item))[:4]] = item
                case "event":
                    self._events[keccak(text=signature(item))] = item
                    self._events_by_name[item["name"]] = item
                case "error":
                    self.errors[keccak(text=signature(item))[:4]] = item
                case "constructor":
                    self.constructor = item

    def function(self, name: str) -> AbiItem:
        """The function called `name`, or `name(types)` to choose among overloads."""
        found = self._functions.get(name)
        if not found:
            raise KeyError(f"no function {name!r} in this ABI")
        if len(found) > 1:
            options = ", ".join(signature(f) for f in found)
            raise KeyError(f"{name!r} is overloaded; name one of: {options}")
        return found[0]

    def event(self, name: str) -> AbiItem:
        """The event called `name`."""
        try:
            return self._events_by_name[name]
        except KeyError:
            raise KeyError(f"no event {name!r} in this ABI") from None

    def event_topic(self, name: str) -> str:
        """topic0 of event `name`, as 0x-hex."""
        return "0x" + keccak(text=signature(self.event(name))).hex()

    def encode_call(self, name: str, args: Sequence[Any]) -> bytes:
        """Selector + encoded arguments of a call to function `name`."""
        fn = self.function(name)
        return keccak(text=signature(fn))[:4] + encode_params(fn["inputs"], args)

    def decode_call(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """The function a calldata calls and its arguments by name; ValueError if it calls none of ours."""
        item = self._by_selector.get(data[:4])
        if item is None:
            raise ValueError(f"calldata selector 0x{data[:4].hex()} is no function of this ABI")
        values = decode_params(item["inputs"], data[4:])
        return item["name"], {p["name"]: v for p, v in zip(item["inputs"], values, strict=True)}

    def decode_result(self, name: str, data: bytes) -> Any:
        """The return value of `name`: one value, a tuple of several, or None."""
        outputs = self.function(name)["outputs"]
        values = decode_params(outputs, data)
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)

    def encode_deploy(self, bytecode: bytes, args: Sequence[Any]) -> bytes:
        """Creation code followed by the encoded constructor arguments."""
        return bytecode + encode_params(self.constructor["inputs"], args)

    def decode_log(self, log: Mapping[str, Any]) -> DecodedEvent | None:
        """Decode a JSON-RPC log object, or None when its topic0 is not an event of this ABI."""
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        if not topics or topics[0] not in self._events:
            return None
        event = self._events[topics[0]]
        indexed = [p for p in event["inputs"] if p["indexed"]]
        plain = [p for p in event["inputs"] if not p["indexed"]]
        args: dict[str, Any] = {}
        for param, topic in zip(indexed, topics[1:], strict=True):
            # Indexed dynamic values are stored as their hash; keep the hash.
            dynamic = param["type"] in ("string", "bytes") or param["type"].endswith("]")
            dynamic = dynamic or param["type"].startswith("tuple")
            args[param["name"]] = topic if dynamic else decode_params([param], topic)[0]
        data = bytes.fromhex(log["data"][2:])
        args.update(zip((p["name"] for p in plain), decode_params(plain, data), strict=True))
        return DecodedEvent(
            name=event["name"],
            args=args,
            address=to_checksum_address(log["address"]),
            block_number=int(log["blockNumber"], 16),
            tx_hash=log["transactionHash"],
            log_index=int(log["logIndex"], 16),
        )


class RevertDecoder:
    """Turns revert data into a `RevertError`, knowing `Error`, `Panic` and registered custom errors."""

    def __init__(self, abis: Iterable[ContractAbi] = ()) -> None:
        self._errors: dict[bytes, AbiItem] = {}
        for abi in abis:
            self.register(abi)

    def register(self, abi: ContractAbi) -> None:
        """Learn the custom errors of `abi`."""
        self._errors.update(abi.errors)

    def decode(self, data: bytes, tx_hash: str | None = None) -> RevertError:
        """The error that `data` (the bytes a reverting call returned) describes."""
        selector, body = data[:4], data[4:]
        try:
            if not data:
                return RevertError("no reason given", data, tx_hash=tx_hash)
            if selector == _ERROR_STRING:
                (message,) = eth_abi.decode(["string"], body)
                return RevertError(message, data, "Error", {"message": message}, tx_hash)
            if selector == _PANIC:
                (code,) = eth_abi.decode(["uint256"], body)
                meaning = _PANIC_CODES.get(code, "unknown panic code")
                return RevertError(f"panic 0x{code:02x}: {meaning}", data, "Panic", {"code": code}, tx_hash)
            if selector in self._errors:
                item = self._errors[selector]
                names = [p["name"] for p in item["inputs"]]
                args = dict(zip(names, decode_params(item["inputs"], body), strict=True))
                shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
                return RevertError(f"{item['name']}({shown})", data, item["name"], args, tx_hash)
        except eth_abi.exceptions.DecodingError:
            pass
        return RevertError(f"unrecognised revert data 0x{data.hex()}", data, tx_hash=tx_hash)


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


def check_uint(name: str, value: int, bits: int) -> None:
    """ValueError unless `value` is an integer that fits Solidity's `uint<bits>`.

    Values decoded from the mesh or the API are checked with this before anything encodes
    them, so an out-of-range number is a clear refusal, never an encoder's exception later.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise ValueError(f"{name}: {value!r} is not a uint{bits}")


def check_bytes(name: str, value: bytes, size: int) -> None:
    """ValueError unless `value` is exactly `size` bytes (a Solidity `bytes<size>`)."""
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError(f"{name}: expected {size} bytes")


@functools.lru_cache(maxsize=16_384)
def checksum_address(value: str) -> str:
    """`value` as an EIP-55 checksummed address; ValueError if it is not an address.

    eth_utils' `to_checksum_address`, remembered: records that hold an address are decoded
    on every read (a job's target at each of its fires), and at ~50 µs a call the checksum
    was most of the gateway's cost of a fire.
    """
    return to_checksum_address(value)
