"""The job a dApp developer submits: its JSON shape, its checks, and the owner's EIP-712 signature.

    POST /api/jobs
    {"job": {"owner": "0x…", "target": "0x…", "function": "incrementBy(uint256)", "args": ["5"],
             "scheduleType": "interval", "schedule": {"everySeconds": 60},
             "gasLimit": 100000, "maxFeePerTask": "1000000000000000", "salt": 1},
     "signature": "0x…"}

The owner signs the job (EIP-712, domain "TriggerX Gateway" on the job's chain) so that
nobody can make a job that spends someone else's balance. The signature covers the
calldata's hash, so what runs is exactly what was signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, keccak, to_checksum_address

from gateway.calldata import CalldataError, encode_calldata
from node.chain.eip712 import Domain, TypedMessage

MIN_INTERVAL_SECONDS = 1
MAX_GAS_LIMIT = 10_000_000

_JOB_FIELDS = [
    {"name": "owner", "type": "address"},
    {"name": "target", "type": "address"},
    {"name": "function", "type": "string"},
    {"name": "calldataHash", "type": "bytes32"},
    {"name": "scheduleType", "type": "string"},
    {"name": "everySeconds", "type": "uint64"},
    {"name": "start", "type": "uint64"},
    {"name": "end", "type": "uint64"},
    {"name": "gasLimit", "type": "uint64"},
    {"name": "maxFeePerTask", "type": "uint256"},
    {"name": "salt", "type": "uint256"},
]


class JobSpecError(ValueError):
    """A job is invalid; `field` is the JSON path of the offending value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class IntervalSchedule(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Every `every_seconds`, from `start` (unix seconds; default: when created) until `end`."""

    every_seconds: int
    start: int | None = None
    end: int | None = None


class JobSpec(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """A time job with static arguments (what this gateway version runs)."""

    owner: str
    target: str
    function: str
    schedule_type: Literal["interval"]
    schedule: IntervalSchedule
    max_fee_per_task: int | str
    args: list[Any] = msgspec.field(default_factory=list)
    gas_limit: int = 200_000
    salt: int = 0


class CreateJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/jobs."""

    job: JobSpec
    signature: str


@dataclass(frozen=True)
class ValidJob:
    """A checked job: its spec, what it calls, who owns it, what one task may cost at most."""

    spec: JobSpec
    calldata: bytes
    owner: str
    max_fee: int
    signature: bytes


def typed_job(spec: JobSpec, calldata: bytes, chain_id: int) -> TypedMessage:
    """The EIP-712 message the owner signs for `spec`."""
    schedule = spec.schedule
    message = {
        "owner": spec.owner,
        "target": spec.target,
        "function": spec.function,
        "calldataHash": keccak(calldata),
        "scheduleType": spec.schedule_type,
        "everySeconds": schedule.every_seconds,
        "start": schedule.start or 0,
        "end": schedule.end or 0,
        "gasLimit": spec.gas_limit,
        "maxFeePerTask": _wei(spec.max_fee_per_task),
        "salt": spec.salt,
    }
    return TypedMessage(Domain("TriggerX Gateway", "1", chain_id), "Job", _JOB_FIELDS, message)


def sign_job(spec: JobSpec, owner: LocalAccount, chain_id: int) -> str:
    """The owner's signature of `spec`, as the API expects it (0x-hex)."""
    calldata = encode_calldata(spec.function, spec.args)
    return "0x" + typed_job(spec, calldata, chain_id).sign(owner).hex()


def parse_create_request(body: bytes, chain_id: int) -> ValidJob:
    """Decode and check a POST /api/jobs body; JobSpecError names the first bad field."""
    try:
        request = msgspec.json.decode(body, type=CreateJobRequest)
    except msgspec.ValidationError as error:
        path = str(error).rpartition(" - at `")[2].rstrip("`") if " - at `" in str(error) else "body"
        raise JobSpecError(path, str(error).partition(" - at `")[0]) from None
    except msgspec.DecodeError as error:
        raise JobSpecError("body", f"not JSON: {error}") from None
    spec = request.job
    for name in ("owner", "target"):
        if not is_address(getattr(spec, name)):
            raise JobSpecError(f"$.job.{name}", f"{getattr(spec, name)!r} is not an address")
    schedule = spec.schedule
    if schedule.every_seconds < MIN_INTERVAL_SECONDS:
        raise JobSpecError("$.job.schedule.everySeconds", f"must be at least {MIN_INTERVAL_SECONDS}")
    if schedule.start is not None and schedule.end is not None and schedule.end <= schedule.start:
        raise JobSpecError("$.job.schedule.end", "must be after start")
    if not 21_000 <= spec.gas_limit <= MAX_GAS_LIMIT:
        raise JobSpecError("$.job.gasLimit", f"must be between 21000 and {MAX_GAS_LIMIT}")
    try:
        max_fee = _wei(spec.max_fee_per_task)
    except ValueError:
        raise JobSpecError("$.job.maxFeePerTask", "must be a positive integer amount of wei") from None
    if max_fee <= 0:
        raise JobSpecError("$.job.maxFeePerTask", "must be a positive integer amount of wei")
    try:
        calldata = encode_calldata(spec.function, spec.args)
    except CalldataError as error:
        raise JobSpecError("$.job.args" if "args" in str(error) else "$.job.function", str(error)) from None
    try:
        signature = bytes.fromhex(request.signature.removeprefix("0x"))
        signer = typed_job(spec, calldata, chain_id).signer(signature)
    except ValueError:
        raise JobSpecError("$.signature", "not a valid signature") from None
    if signer != to_checksum_address(spec.owner):
        raise JobSpecError("$.signature", f"signed by {signer}, not by the owner {spec.owner}")
    return ValidJob(spec, calldata, to_checksum_address(spec.owner), max_fee, signature)


def _wei(amount: int | str) -> int:
    return int(amount, 0) if isinstance(amount, str) else amount
