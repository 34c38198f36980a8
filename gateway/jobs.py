"""The job a dApp developer submits: its JSON shape, its checks, and the owner's consent.

    POST /api/jobs
    {"job": {"owner": "0x…", "nonce": "1", "expiry": 1767225600,
             "target": "0x…", "function": "incrementBy(uint256)", "args": ["5"],
             "scheduleType": "interval", "schedule": {"everySeconds": 60},
             "gasLimit": 100000, "maxFeePerTask": "1000000000000000"},
     "signature": "0x…"}

The owner signs the job's on-chain consent (`JobConsent{nonce, expiry, terms}`, EIP-712 in the
TaskExecutionHub's domain: see protocol.jobs). The terms bind the target, the exact calldata
(its hash), the gas limit, the fee cap and the trigger, so what runs is exactly what was
signed; the job's id on chain is `owner << 96 | nonce`, so a signed job can be created once,
never replayed. The first task registers the job on chain with this signature (or the owner
registers it with a transaction); until `expiry` the consent may be used.

Numbers that may exceed 2**53 (nonce, fees) may be given as JSON integers or as decimal or
0x strings; the stored spec keeps them as decimal strings, safe for every JSON client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, keccak, to_checksum_address
from msgspec import Meta

from node.content import CidError, parse_cid
from node.web import json_nesting
from protocol import (
    MAX_NONCE,
    UINT64_MAX,
    UINT256_MAX,
    CalldataError,
    JobConsent,
    JobTerms,
    encode_calldata,
    job_id_of,
)
from protocol.calldata import canonical_signature
from protocol.scripts import MAX_HOSTS, MAX_VALUES, Host, Language, ScriptCall, ValueLine, value_sources
from protocol.triggers import SpecJson, TriggerKind, TriggerSpecError, kind_named, kind_names

# How deep a request's JSON may nest (call arguments: arrays of tuples of ...). Deeper JSON
# would run the decoder into the C stack: py_ecc raises Python's recursion limit, so it
# would crash the process instead of raising.
MAX_NESTING = 32
MIN_GAS_LIMIT = 21_000
MAX_GAS_LIMIT = 10_000_000
# A script's allowed host: a lower-case DNS name or IPv4 address, with a port or not.
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?")


class JobSpecError(ValueError):
    """A job is invalid; `field` is the JSON path of the offending value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class ScriptSpec(msgspec.Struct, forbid_unknown_fields=True):
    """The script that computes a job's arguments (protocol.scripts): its CID (or
    `ipfs://<cid>`; upload it with POST /api/scripts first), its language, the hosts it may
    GET through the keeper's proxy (`name` or `name:port`; none: no web), and the chain's
    values its input carries (`name = kind args`, as a condition job's; protocol.scripts)."""

    cid: Annotated[str, Meta(max_length=120)]
    language: Language = "python"
    hosts: Annotated[list[Host], Meta(max_length=MAX_HOSTS)] = []
    values: Annotated[list[ValueLine], Meta(max_length=MAX_VALUES)] = []


class JobSpec(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """A job: `schedule_type` names a registered trigger kind (protocol.triggers) and
    `schedule` is that kind's spec; the call's arguments are `args`, or what `script` prints."""

    owner: str
    nonce: int | str
    expiry: int
    target: str
    function: str
    schedule_type: str
    schedule: SpecJson
    max_fee_per_task: int | str
    args: list[Any] = msgspec.field(default_factory=list)
    gas_limit: int = 200_000
    script: ScriptSpec | None = None

    @property
    def script_call(self) -> ScriptCall | None:
        """The job's script as terms and keepers name it (None for static arguments)."""
        if self.script is None:
            return None
        return ScriptCall(
            parse_cid(self.script.cid),
            self.script.language,
            canonical_signature(self.function),
            tuple(self.script.hosts),
            tuple(self.script.values),
        )


class CreateJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/jobs."""

    job: JobSpec
    signature: str


@dataclass(frozen=True)
class ValidJob:
    """A checked job: its spec (numbers canonical), the call, its terms and its id on chain,
    and the owner's consent."""

    spec: JobSpec
    calldata: bytes
    owner: str
    chain_job_id: int
    terms: JobTerms
    consent_signature: bytes


def trigger_kind(spec: JobSpec) -> TriggerKind[Any]:
    """The trigger kind `spec` names; JobSpecError if none is registered by that name."""
    kind = kind_named(spec.schedule_type)
    if kind is None:
        known = ", ".join(kind_names())
        raise JobSpecError(
            "$.job.scheduleType", f"unknown trigger kind {spec.schedule_type!r} (known: {known})"
        )
    return kind


def job_terms(spec: JobSpec, calldata: bytes) -> JobTerms:
    """The on-chain terms of `spec`: exactly `calldata`, or its function with the script's
    arguments."""
    kind = trigger_kind(spec)
    try:
        trigger = kind.trigger_hash(kind.decode(spec.schedule))
    except TriggerSpecError as error:
        raise _schedule_error(error) from None
    fee, call = _uint(spec.max_fee_per_task), spec.script_call
    if call is not None:
        return JobTerms.dynamic_call(spec.target, call.function, call.args_hash, spec.gas_limit, fee, trigger)
    return JobTerms.static_call(spec.target, calldata, spec.gas_limit, fee, trigger)


def job_calldata(spec: JobSpec) -> bytes:
    """The call the job's tasks make: exactly, or (a job with a script) its selector alone."""
    if spec.script is not None:
        return keccak(text=canonical_signature(spec.function))[:4]
    return encode_calldata(spec.function, spec.args)


def job_consent(spec: JobSpec, calldata: bytes) -> JobConsent:
    """The consent the owner signs for `spec`."""
    return JobConsent(_uint(spec.nonce), spec.expiry, job_terms(spec, calldata))


def sign_job(spec: JobSpec, owner: LocalAccount, chain_id: int, hub: str) -> str:
    """The owner's signature of `spec` for the hub at `hub`, as the API expects it (0x-hex)."""
    return "0x" + job_consent(spec, job_calldata(spec)).sign(owner, chain_id, hub).hex()


def parse_create_request(body: bytes, chain_id: int, hub: str, now: float) -> ValidJob:
    """Decode and check a POST /api/jobs body at time `now`; JobSpecError names the first bad field.

    Checks everything that needs no chain: shapes, ranges, the calldata, the owner's
    signature, and (only then: it can cost the most) a schedule that fires before the consent
    expires.
    """
    if json_nesting(body) > MAX_NESTING:
        raise JobSpecError("body", f"nested deeper than {MAX_NESTING} levels")
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
    nonce = _amount(spec.nonce, "$.job.nonce", MAX_NONCE, minimum=0)
    max_fee = _amount(spec.max_fee_per_task, "$.job.maxFeePerTask", UINT256_MAX, minimum=1)
    if not MIN_GAS_LIMIT <= spec.gas_limit <= MAX_GAS_LIMIT:
        raise JobSpecError("$.job.gasLimit", f"must be between {MIN_GAS_LIMIT} and {MAX_GAS_LIMIT}")
    kind = trigger_kind(spec)
    try:
        schedule = kind.decode(spec.schedule)
    except TriggerSpecError as error:
        raise _schedule_error(error) from None
    if not now < spec.expiry <= UINT64_MAX:
        raise JobSpecError("$.job.expiry", "must be a unix time in the future")
    script = None if spec.script is None else _checked_script(spec)
    try:
        calldata = job_calldata(spec)
    except CalldataError as error:
        field = "$.job.function" if error.field == "function" else "$.job.args"
        raise JobSpecError(field, str(error)) from None
    canonical = msgspec.structs.replace(
        spec,
        owner=to_checksum_address(spec.owner),
        target=to_checksum_address(spec.target),
        nonce=str(nonce),
        max_fee_per_task=str(max_fee),
        schedule=msgspec.to_builtins(schedule),
        script=script,
    )
    consent = job_consent(canonical, calldata)
    try:
        signature = bytes.fromhex(request.signature.removeprefix("0x"))
        signer = consent.signer(signature, chain_id, hub)
    except ValueError:
        raise JobSpecError("$.signature", "not a valid signature") from None
    if signer != canonical.owner:
        raise JobSpecError("$.signature", f"signed by {signer}, not by the owner {canonical.owner}")
    # Only a signed request gets its schedule computed: a cron expression's first fire time
    # can cost a fraction of a second (review of issue 9), an ecrecover far less.
    try:
        first_fire = kind.validate(schedule, now)
    except TriggerSpecError as error:
        raise _schedule_error(error) from None
    if spec.expiry < first_fire:
        raise JobSpecError("$.job.expiry", "the consent expires before the job first fires")
    return ValidJob(
        spec=canonical,
        calldata=calldata,
        owner=canonical.owner,
        chain_job_id=job_id_of(canonical.owner, nonce),
        terms=consent.terms,
        consent_signature=signature,
    )


def _schedule_error(error: TriggerSpecError) -> JobSpecError:
    return JobSpecError("$.job.schedule" + (f".{error.field}" if error.field else ""), error.problem)


def _amount(value: int | str, field: str, maximum: int, minimum: int) -> int:
    """An integer given as a JSON number or a decimal or 0x string, within [minimum, maximum]."""
    try:
        number = _uint(value)
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or not minimum <= number <= maximum:
        raise JobSpecError(field, f"must be an integer from {minimum} to {maximum}")
    return number


def _uint(value: int | str) -> int:
    """`value` as an int: a JSON integer, or a decimal or 0x string (ValueError otherwise)."""
    if not isinstance(value, str):
        return value
    if value[:2].lower() == "0x":
        return int(value[2:], 16)
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{value!r} is not a decimal integer")
    return int(value)


def _checked_script(spec: JobSpec) -> ScriptSpec:
    """`spec`'s script as the owner signs it (its CID and values in their canonical forms);
    JobSpecError names what is wrong with it."""
    script = spec.script
    assert script is not None
    if spec.args:
        raise JobSpecError("$.job.args", "a job with a script takes its arguments from the script")
    try:
        cid = parse_cid(script.cid)
    except CidError as error:
        raise JobSpecError("$.job.script.cid", str(error)) from None
    for index, host in enumerate(script.hosts):
        if not _HOST.fullmatch(host):
            why = "not a lower-case host name or address, with :port or not"
            raise JobSpecError(f"$.job.script.hosts[{index}]", why)
    if len(set(script.hosts)) != len(script.hosts):
        raise JobSpecError("$.job.script.hosts", "a host is named twice")
    try:
        values = [f"{name} = {source.canonical}" for name, source in value_sources(script.values)]
    except TriggerSpecError as error:
        raise JobSpecError(f"$.job.script.{error.field}", error.problem) from None
    return ScriptSpec(cid, script.language, script.hosts, values)
