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
from collections.abc import Iterator
from contextlib import contextmanager
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
from protocol.triggers.after import KIND as AFTER
from protocol.triggers.after import predecessor_of

# How deep a request's JSON may nest (call arguments: arrays of tuples of ...). Deeper JSON
# would run the decoder into the C stack: py_ecc raises Python's recursion limit, so it
# would crash the process instead of raising.
MAX_NESTING = 32
ADDRESS_PATTERN = "^0x[0-9a-fA-F]{40}$"
MIN_GAS_LIMIT = 21_000
MAX_GAS_LIMIT = 10_000_000
MAX_CHAIN = 8  # jobs in one linked chain (POST /api/jobs with `jobs`)
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

    owner: Annotated[str, Meta(pattern=ADDRESS_PATTERN, description="the address that signs and pays")]
    nonce: Annotated[int | str, Meta(description="your number for this job, below 2**96, never reused")]
    expiry: Annotated[int, Meta(ge=0, description="unix seconds until the consent may register the job")]
    target: Annotated[str, Meta(pattern=ADDRESS_PATTERN, description="the contract each task calls")]
    function: Annotated[str, Meta(max_length=4096, description="its signature, e.g. incrementBy(uint256)")]
    schedule_type: Annotated[str, Meta(max_length=64, description="the trigger kind: interval, cron, …")]
    schedule: SpecJson
    max_fee_per_task: Annotated[int | str, Meta(description="the most one task may cost the owner (wei)")]
    args: list[Any] = msgspec.field(default_factory=list)
    gas_limit: Annotated[int, Meta(ge=MIN_GAS_LIMIT, le=MAX_GAS_LIMIT)] = 200_000
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


Signature = Annotated[
    str, Meta(max_length=200, description="the owner's EIP-712 JobConsent signature, 0x-hex")
]


class SignedJob(msgspec.Struct, forbid_unknown_fields=True):
    """A job and its owner's signature of its consent."""

    job: JobSpec
    signature: Signature


class CreateJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /api/jobs: one job (`job` and `signature`), or a linked chain of 2 to
    MAX_CHAIN jobs (`jobs`) in which each job after the first is an `after` job naming an
    earlier one's chainJobId (`owner << 96 | nonce`), created all or none."""

    job: JobSpec | None = None
    signature: Signature | None = None
    jobs: Annotated[list[SignedJob], Meta(min_length=2, max_length=MAX_CHAIN)] | None = None


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
    except (ValueError, OverflowError) as error:  # eth_abi: a value the hash cannot encode
        raise JobSpecError("$.job.schedule", f"cannot be signed: {error}") from None
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
    """The one job of a POST /api/jobs body (see parse_jobs_request); JobSpecError for a chain."""
    jobs = parse_jobs_request(body, chain_id, hub, now)
    if len(jobs) != 1:
        raise JobSpecError("$.jobs", "expected one job here, not a chain")
    return jobs[0]


def parse_jobs_request(body: bytes, chain_id: int, hub: str, now: float) -> list[ValidJob]:
    """Decode and check a POST /api/jobs body at time `now`: its one job, or the jobs of its
    linked chain in order; JobSpecError names the first bad field (in a chain, under
    `$.jobs[i]`).

    Checks everything that needs no chain: shapes, ranges, the calldata, the owner's
    signature, and (only then: it can cost the most) a schedule that fires before the consent
    expires; then a chain's links (`check_links`).
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
    if request.jobs is None:
        if request.job is None or request.signature is None:
            missing = "$.job" if request.job is None else "$.signature"
            raise JobSpecError(missing, "missing: give `job` and `signature`, or `jobs` (a linked chain)")
        return [_check_job(SignedJob(request.job, request.signature), chain_id, hub, now)]
    if request.job is not None or request.signature is not None:
        raise JobSpecError("$.jobs", "give either `job` and `signature`, or `jobs`, not both")
    jobs = []
    for position, entry in enumerate(request.jobs):
        with in_entry(position):
            jobs.append(_check_job(entry, chain_id, hub, now))
    check_links(jobs)
    return jobs


@contextmanager
def in_entry(position: int | None) -> Iterator[None]:
    """JobSpecErrors raised inside name their field in entry `position` of a chain's `jobs`
    (`$.job.gasLimit` becomes `$.jobs[1].job.gasLimit`); None: a one-job body's, unchanged."""
    try:
        yield
    except JobSpecError as error:
        if position is None or not error.field.startswith("$."):
            raise
        raise JobSpecError(f"$.jobs[{position}].{error.field[2:]}", error.problem) from None


def check_links(jobs: list[ValidJob]) -> None:
    """JobSpecError unless every job of a chain after the first is an `after` job that names an
    earlier one, and no job comes twice."""
    for position, job in enumerate(jobs):
        at, earlier = f"$.jobs[{position}].job", [j.chain_job_id for j in jobs[:position]]
        if job.chain_job_id in earlier:
            twin = earlier.index(job.chain_job_id)
            raise JobSpecError(f"{at}.nonce", f"the same job as jobs[{twin}] (the same owner and nonce)")
        if position == 0:
            continue
        if job.spec.schedule_type != AFTER.name:
            raise JobSpecError(f"{at}.scheduleType", "must be after: a chain's jobs run after an earlier one")
        if predecessor_of(AFTER.decode(job.spec.schedule)) not in earlier:
            raise JobSpecError(f"{at}.schedule.jobId", "must be the chainJobId of an earlier job in `jobs`")


def _check_job(request: SignedJob, chain_id: int, hub: str, now: float) -> ValidJob:
    """Check one signed job (see parse_jobs_request); JobSpecError names the field under `$`."""
    spec = request.job
    for name in ("owner", "target"):
        given = getattr(spec, name)
        if not is_address(given) or not given.startswith("0x"):
            raise JobSpecError(f"$.job.{name}", f"{given[:50]!r} is not an address: 0x and 40 hex digits")
        if given != given.lower() and given != to_checksum_address(given):
            raise JobSpecError(f"$.job.{name}", f"{given} has a wrong EIP-55 checksum (a typo?)")
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
        raise JobSpecError(f"$.job.{error.field}", error.problem) from None
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
