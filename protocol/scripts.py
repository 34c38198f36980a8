"""Jobs whose arguments a script computes: which script, what it reads, what it must print.

A job with dynamic arguments names a script by CID and language, and the function whose
arguments it prints (`ScriptCall`). The owner signs them as the terms' `argsHash`
(`ARGS_DYNAMIC`):

    keccak256(abi.encode(bytes32 sha256(script), keccak256(language), keccak256(function)))

so no keeper can run another script for the job, or encode its output for another function.
At each task the performer builds the script's input, one JSON document (`script_input`),
from the job, the trigger's fire and the chain block it read before running, runs the script
in its sandbox, and reads its output: a JSON array, the arguments of the job's function
(`calldata_from_output`).
The input travels with the result; each attester rebuilds it from the order and that block,
runs the same script, and votes no if the calldata it gets is not the one executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import eth_abi
import msgspec
from eth_utils import keccak
from multiformats import CID, multihash

from node.content import CidError, parse_cid
from node.sandbox import Sandbox, Script
from node.web import json_nesting
from protocol.calldata import CalldataError, encode_calldata
from protocol.triggers import TriggerFire

Language = Literal["python", "javascript"]
MAX_OUTPUT_NESTING = 32  # as for a job's JSON arguments (gateway.jobs)
MAX_INPUT_BYTES = 8_192
MAX_BLOCK_AGE = 256
"""Blocks between the block a script read and its execution at most (attesters refuse more:
a performer must not pick an old block to steer the script)."""


class ScriptCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The script of a job with dynamic arguments: its CIDv1 (raw, sha2-256), its language, and
    the function (canonical signature) its output is the arguments of."""

    cid: str
    language: Language
    function: str

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
        return keccak(eth_abi.encode(["bytes32", "bytes32", "bytes32"], parts))


@dataclass(frozen=True)
class ChainBlock:
    """The block a script's input names: its chain, number and timestamp."""

    chain_id: int
    number: int
    timestamp: int


class ScriptOutputError(ValueError):
    """A script's output is not arguments of the job's function (the message says why)."""


def script_input(job_id: int, target: str, call: ScriptCall, fire: TriggerFire, block: ChainBlock) -> bytes:
    """The one JSON document a script reads on stdin (keys in a fixed order; the job id, which
    may exceed 2**53, as a decimal string)."""
    document = {
        "job": {"id": str(job_id), "target": target, "function": call.function},
        "trigger": {"kind": fire.kind, "fireAt": fire.fire_at, "detail": "0x" + fire.detail.hex()},
        "chain": {"chainId": block.chain_id, "blockNumber": block.number, "timestamp": block.timestamp},
    }
    return msgspec.json.encode(document)


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


def calldata_from_output(function: str, stdout: bytes) -> bytes:
    """The calldata of `function` with the arguments a script printed (a JSON array, alone on
    its output); ScriptOutputError otherwise."""
    if json_nesting(stdout) > MAX_OUTPUT_NESTING:
        raise ScriptOutputError(f"the output nests deeper than {MAX_OUTPUT_NESTING} levels")
    try:
        args = msgspec.json.decode(stdout.strip())
    except msgspec.DecodeError as error:
        raise ScriptOutputError(f"the output is not JSON: {error}") from None
    if not isinstance(args, list):
        raise ScriptOutputError("the output is not a JSON array of arguments")
    try:
        return encode_calldata(function, args)
    except CalldataError as error:
        raise ScriptOutputError(f"the arguments do not fit {function}: {error}") from None


class ScriptFailedError(ValueError):
    """A script did not run to completion (the message says how it ended)."""


async def run_for_calldata(sandbox: Sandbox, source: bytes, call: ScriptCall, document: bytes) -> bytes:
    """Run `source` (the script `call` names) on `document` in `sandbox`; the calldata its
    output makes. ScriptFailedError if it does not run to completion, ScriptOutputError if
    what it prints is not arguments of the function."""
    result = await sandbox.run(Script(call.language, source, document))
    if result.status != "ok":
        raise ScriptFailedError(f"the script {result.reason}")
    return calldata_from_output(call.function, result.stdout)
