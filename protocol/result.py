"""What a performer reports after executing a task, and the hash attesters vote on."""

from __future__ import annotations

from dataclasses import dataclass, field

import eth_abi
from eth_utils import keccak

from node.chain import check_bytes, check_uint

NO_SCRIPT = bytes(32)
"""The script hashes of a job with static arguments (no script ran)."""


@dataclass(frozen=True)
class ScriptUsage:
    """What a script's run used, as its performer measured it: wall and CPU milliseconds and
    peak resident memory in KiB. Reported for operators and owners, not checked (an attester's
    own run costs what it costs on its machine)."""

    wall_ms: int = 0
    cpu_ms: int = 0
    max_rss_kib: int = 0

    def __post_init__(self) -> None:
        for name in ("wall_ms", "cpu_ms", "max_rss_kib"):
            check_uint(name, getattr(self, name), 32)


@dataclass(frozen=True)
class ExecutionResult:
    """One execution of a task attempt through TaskExecutionHub, as its performer reports it.

    For a job with a script, also the keccak256 of the input document the script read, of what
    it printed (protocol.scripts.ScriptOutcome) and of the web's answers it got, and what its
    run used; an empty call
    (`calldata_hash` of no bytes, `target_success` false) is a skip the hub recorded."""

    task_id: int
    job_id: int
    attempt: int
    performer_id: int
    tx_hash: bytes
    block_number: int
    calldata_hash: bytes
    target_success: bool
    script_input_hash: bytes = NO_SCRIPT
    script_output_hash: bytes = NO_SCRIPT
    script_usage: ScriptUsage = field(default_factory=ScriptUsage)
    script_exchanges_hash: bytes = NO_SCRIPT  # of the web's answers it got (node/sandbox/proxy.py)

    def __post_init__(self) -> None:
        for name, bits in (
            ("task_id", 256),
            ("job_id", 256),
            ("attempt", 32),
            ("performer_id", 8),
            ("block_number", 64),
        ):
            check_uint(name, getattr(self, name), bits)
        for name in (
            "tx_hash",
            "calldata_hash",
            "script_input_hash",
            "script_output_hash",
            "script_exchanges_hash",
        ):
            check_bytes(name, getattr(self, name), 32)

    @property
    def skipped(self) -> bool:
        """Whether the hub recorded a skip: the job's script said not to call, or failed."""
        return self.calldata_hash == keccak(b"")

    def result_hash(self) -> bytes:
        """The 32 bytes the performer signs and attesters approve or reject (binds every field)."""
        usage = self.script_usage
        return keccak(
            eth_abi.encode(
                [
                    "uint256",
                    "uint256",
                    "uint32",
                    "uint8",
                    "bytes32",
                    "uint64",
                    "bytes32",
                    "bool",
                    "bytes32",
                    "bytes32",
                    "uint32",
                    "uint32",
                    "uint32",
                    "bytes32",
                ],
                [
                    self.task_id,
                    self.job_id,
                    self.attempt,
                    self.performer_id,
                    self.tx_hash,
                    self.block_number,
                    self.calldata_hash,
                    self.target_success,
                    self.script_input_hash,
                    self.script_output_hash,
                    usage.wall_ms,
                    usage.cpu_ms,
                    usage.max_rss_kib,
                    self.script_exchanges_hash,
                ],
            )
        )
