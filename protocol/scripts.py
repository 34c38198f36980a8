"""Jobs whose arguments a script computes: which script, what it reads, what it must print.

A job with dynamic arguments names a script by CID and language, and the function whose
arguments it prints (`ScriptCall`). The owner signs them as the terms' `argsHash`
(`ARGS_DYNAMIC`):

    keccak256(abi.encode(bytes32 sha256(script), keccak256(language), keccak256(function)
                         [, keccak256("hosts\n" + hosts joined by "\n")]
                         [, keccak256("values\n" + values joined by "\n")]))

so no keeper can run another script for the job, encode its output for another function, let
it reach other hosts, or feed it other values.
At each task the performer builds the script's input, one JSON document (`script_input`),
from the job, the trigger's fire and the chain block it read before running, runs the script
in its sandbox, and reads its output (`decision_from_output`): a JSON array, the arguments of
the job's function, or a custom-logic decision `{shouldExecute, args, reason}`. A decision not
to call, and a script that fails, make a task that calls nothing: the hub records a skip, paid
and attested like a call (`ScriptOutcome`).
The input travels with the result, and the result carries the hashes of the input and of the
output; each attester rebuilds the input from the order and that block, runs the same script,
and votes no if the output or the calldata it gets is not the performer's (docs/protocol.md,
"Jobs with scripts").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

import eth_abi
import msgspec
from eth_utils import keccak
from multiformats import CID, multihash

from node.chain import RpcClient
from node.content import CidError, parse_cid
from node.sandbox import RunResult, Sandbox, Script
from node.sandbox.proxy import Exchange, ScriptProxy
from node.web import WebFetcher, json_nesting
from protocol.calldata import CalldataError, encode_calldata
from protocol.result import ScriptUsage
from protocol.triggers import TriggerFire
from protocol.triggers.base import TriggerSpecError
from protocol.triggers.condition import chain_calls, chain_readings
from protocol.triggers.condition_sources import ChainSource, NodeError, Reading, SourceError, parse_source

Language = Literal["python", "javascript"]
MAX_OUTPUT_NESTING = 32  # as for a job's JSON arguments (gateway.jobs)
MAX_INPUT_BYTES = 8_192
MAX_REASON = 200  # characters of a custom-logic script's reason
MAX_HOSTS = 8  # on a script's allow-list
MAX_VALUES = 16  # chain values a script's input carries
ValueLine = Annotated[str, msgspec.Meta(max_length=512)]
Host = Annotated[str, msgspec.Meta(max_length=255)]  # a name or address, with ":port" or not
MAX_BLOCK_AGE = 256
"""Blocks between the block a script read and its execution at most (attesters refuse more:
a performer must not pick an old block to steer the script)."""


class ScriptCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The script of a job with dynamic arguments: its CIDv1 (raw, sha2-256), its language, the
    function (canonical signature) its output is the arguments of, the hosts it may GET
    through its proxy (node/sandbox/proxy.py; none: no web at all), and the chain's values its
    input carries."""

    cid: str
    language: Language
    function: str
    hosts: Annotated[tuple[Host, ...], msgspec.Meta(max_length=MAX_HOSTS)] = ()
    values: Annotated[tuple[ValueLine, ...], msgspec.Meta(max_length=MAX_VALUES)] = ()
    """On-chain values its input carries, read at the input's block: `name = kind args` lines
    as a condition job's `values` (protocol/triggers/condition_sources.py), `http` excepted."""

    def is_the_jobs(self, terms_args_hash: bytes) -> bool:
        """Whether this is the script the owner signed (`terms_args_hash`), named by its one
        canonical CID: the hash covers the digest alone, and another spelling of the same
        digest (a CIDv0, another codec) would name a block nobody can fetch as a script."""
        try:
            canonical = parse_cid(self.cid) == self.cid
        except CidError:
            return False
        return canonical and self.args_hash == terms_args_hash

    @property
    def args_hash(self) -> bytes:
        """The terms' `argsHash` for this script (see the module docstring)."""
        digest = bytes(multihash.unwrap(CID.decode(self.cid).digest))
        parts = [digest, keccak(text=self.language), keccak(text=self.function)]
        # The allow-list and the values, when there are any, are the owner's too.
        if self.hosts:
            parts.append(keccak(text="hosts\n" + "\n".join(self.hosts)))
        if self.values:
            parts.append(keccak(text="values\n" + "\n".join(self.values)))
        return keccak(eth_abi.encode(["bytes32"] * len(parts), parts))


@dataclass(frozen=True)
class ChainBlock:
    """The block a script's input names: its chain, number and timestamp."""

    chain_id: int
    number: int
    timestamp: int


def script_input(
    job_id: int,
    target: str,
    call: ScriptCall,
    fire: TriggerFire,
    block: ChainBlock,
    values: Mapping[str, str | None] | None = None,
) -> bytes:
    """The one JSON document a script reads on stdin (keys in a fixed order; the job id, which
    may exceed 2**53, as a decimal string), with the job's `values` read at `block` (exact
    decimals as strings; null for a value the chain has none of) when it declares any."""
    document: dict[str, Any] = {
        "job": {"id": str(job_id), "target": target, "function": call.function},
        "trigger": {"kind": fire.kind, "fireAt": fire.fire_at, "detail": "0x" + fire.detail.hex()},
        "chain": {"chainId": block.chain_id, "blockNumber": block.number, "timestamp": block.timestamp},
    }
    if call.values:
        document["values"] = dict(values or {})
    return msgspec.json.encode(document)


def value_sources(lines: Sequence[str]) -> list[tuple[str, ChainSource]]:
    """The sources of a script's `values` lines; TriggerSpecError (a ValueError) names a line
    that is not one, or that reads the web (a script does that through its proxy)."""
    sources = []
    for position, line in enumerate(lines):
        named = parse_source(line, position)
        if not isinstance(named.source, ChainSource):
            web = "a script's values are read on chain: for the web, name its host in hosts"
            raise TriggerSpecError(f"values[{position}]", web)
        sources.append((named.name, named.source))
    if len({name for name, _ in sources}) != len(sources):
        raise TriggerSpecError("values", "a name is given twice")
    return sources


async def read_values(call: ScriptCall, rpc: RpcClient, block_number: int) -> dict[str, str | None]:
    """`call`'s values at block `block_number`, as its input carries them; NodeError when the
    node cannot answer (a value may exist that it did not read)."""
    if not call.values:
        return {}
    sources = value_sources(call.values)
    results = await rpc.batch(chain_calls(sources, hex(block_number)), return_exceptions=True)
    values: dict[str, str | None] = {}
    for name, reading in chain_readings(sources, results).items():
        if isinstance(reading, NodeError):
            raise reading
        values[name] = None if isinstance(reading, SourceError) else _exact(reading)
    return values


async def input_at_head(
    rpc: RpcClient, chain_id: int, job_id: int, target: str, call: ScriptCall, fire: TriggerFire
) -> bytes:
    """The input of a run now: the chain's latest block, and the job's values read there
    (NodeError when the node could not read one)."""
    head = await rpc.call("eth_getBlockByNumber", "latest", False)
    block = ChainBlock(chain_id, int(head["number"], 16), int(head["timestamp"], 16))
    return script_input(job_id, target, call, fire, block, await read_values(call, rpc, block.number))


def _exact(reading: Reading) -> str:
    return format(Decimal(reading.raw).scaleb(-reading.decimals), "f")


class _ChainPart(msgspec.Struct, rename="camel"):
    chain_id: int
    block_number: int
    timestamp: int


class _Input(msgspec.Struct):
    chain: _ChainPart


def input_block(document: bytes) -> ChainBlock:
    """The block a script input names; ValueError if it is not a script input."""
    if len(document) > MAX_INPUT_BYTES:
        raise ValueError(f"a script input is at most {MAX_INPUT_BYTES} bytes")
    try:
        chain = msgspec.json.decode(document, type=_Input).chain
    except msgspec.MsgspecError as error:
        raise ValueError(f"not a script input: {error}") from None
    return ChainBlock(chain.chain_id, chain.block_number, chain.timestamp)


class ScriptOutputError(ValueError):
    """A script's output is not arguments of the job's function, nor a custom-logic decision
    (the message says why)."""


class _Decision(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    should_execute: bool
    args: list[Any] | None = None
    reason: Annotated[str, msgspec.Meta(max_length=MAX_REASON)] = ""


def decision_from_output(function: str, stdout: bytes) -> tuple[bytes, str]:
    """What a script's output says to do: the calldata of `function` with the arguments it
    printed, and its reason; no calldata (b"") when a custom-logic script says not to call.

    A script prints either its arguments (a JSON array) or a custom-logic decision
    `{"shouldExecute": bool, "args": [...], "reason": "..."}` (`args` when it says to call,
    `reason` optional, at most 200 characters). ScriptOutputError for anything else."""
    if json_nesting(stdout) > MAX_OUTPUT_NESTING:
        raise ScriptOutputError(f"the output nests deeper than {MAX_OUTPUT_NESTING} levels")
    try:
        printed = msgspec.json.decode(stdout.strip(), type=list[Any] | _Decision)
    except msgspec.ValidationError as error:
        raise ScriptOutputError(f"the output is neither an argument array nor a decision: {error}") from None
    except msgspec.DecodeError as error:
        raise ScriptOutputError(f"the output is not JSON: {error}") from None
    if isinstance(printed, list):
        args, reason = printed, ""
    elif not printed.should_execute:
        return b"", printed.reason
    elif printed.args is None:
        raise ScriptOutputError("the decision says to execute but gives no args")
    else:
        args, reason = printed.args, printed.reason
    try:
        return encode_calldata(function, args), reason
    except CalldataError as error:
        raise ScriptOutputError(f"the arguments do not fit {function}: {error}") from None


FAILED_OUTPUT = keccak(b"")
"""The output hash of a run that failed, whatever it printed (a script that prints nothing
fails too: no bytes are not JSON)."""
_RESOURCE_STATUSES = frozenset({"timeout", "cpu_limit", "killed"})


@dataclass(frozen=True)
class ScriptOutcome:
    """What a script's run decides for a task (`run_script`).

    `calldata` is the call to make; no bytes means no call: the script said not to (a
    custom-logic `shouldExecute: false`) or failed. `output_hash` is the keccak256 of what it
    printed, or FAILED_OUTPUT; `note` is the script's reason or how it failed; `status` is the
    sandbox's, or "bad_output" for a run that printed what is not a decision."""

    calldata: bytes
    output_hash: bytes
    note: str
    status: str
    usage: ScriptUsage
    exchanges: tuple[Exchange, ...] = ()
    """What the script got from the web through its proxy (node/sandbox/proxy.py), in order."""

    @property
    def failed(self) -> bool:
        """Whether the script failed (its task is a completed failure: the hub records a skip)."""
        return self.output_hash == FAILED_OUTPUT

    @property
    def ran_out(self) -> bool:
        """Whether it failed for want of time or because it was killed: what a slower or busier
        machine may see where another's run completed."""
        return self.status in _RESOURCE_STATUSES


@dataclass(frozen=True)
class ScriptEvidence:
    """What a result carries for a job with a script, besides its hashes: the input document the
    script read, and the web's answers it got through its proxy (replayed by attesters)."""

    input: bytes = b""
    exchanges: tuple[Exchange, ...] = ()


async def run_script(
    sandbox: Sandbox,
    source: bytes,
    call: ScriptCall,
    document: bytes,
    *,
    web: WebFetcher | None = None,
    replay: Sequence[Exchange] | None = None,
) -> ScriptOutcome:
    """Run `source` (the script `call` names) on `document` in `sandbox`, and what it decides.

    A script with hosts gets a proxy (node/sandbox/proxy.py): replaying `replay` (an attester's
    re-run), or else recording what it fetches through `web`."""
    # The script's wall clock reads its input block's time (node/sandbox/bwrap.py, determinism).
    script = Script(call.language, source, document, {"TRIGGERX_TIME": str(input_block(document).timestamp)})
    if not call.hosts:
        return _outcome(call, await sandbox.run(script), ())
    proxy = ScriptProxy(call.hosts, fetcher=web, replay=replay)
    async with proxy.serving() as socket_path:
        script.http_socket = socket_path
        result = await sandbox.run(script)
    return _outcome(call, result, tuple(proxy.exchanges))


def _outcome(call: ScriptCall, result: RunResult, exchanges: tuple[Exchange, ...]) -> ScriptOutcome:
    usage = ScriptUsage(
        wall_ms=min(int(result.wall_seconds * 1000), 2**32 - 1),
        cpu_ms=min(int(result.cpu_seconds * 1000), 2**32 - 1),
        max_rss_kib=min(result.max_rss_bytes // 1024, 2**32 - 1),
    )
    if result.status != "ok":
        return ScriptOutcome(
            b"", FAILED_OUTPUT, f"the script {result.reason}", result.status, usage, exchanges
        )
    try:
        calldata, reason = decision_from_output(call.function, result.stdout)
    except ScriptOutputError as error:
        return ScriptOutcome(b"", FAILED_OUTPUT, str(error), "bad_output", usage, exchanges)
    return ScriptOutcome(calldata, keccak(result.stdout), reason, "ok", usage, exchanges)
