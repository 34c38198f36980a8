"""POST /api/jobs bodies: a signed job passes; every bad field is named; uint256 values round-trip."""

from __future__ import annotations

import json

import msgspec
import pytest
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from gateway import JobSpec, JobSpecError, ScriptSpec, parse_create_request, sign_job
from node.content import script_cid
from protocol import encode_calldata, job_id_of
from protocol.jobs import ARGS_DYNAMIC

CHAIN_ID = 31337
HUB = "0x" + "ab" * 20
NOW = 1_800_000_000
OWNER = Account.from_key(b"\x01" * 32)
SPEC = JobSpec(
    owner=OWNER.address,
    nonce="7",
    expiry=NOW + 86_400,
    target="0x" + "22" * 20,
    function="incrementBy(uint256)",
    args=["5"],
    schedule_type="interval",
    schedule={"everySeconds": 2},
    max_fee_per_task="1000000000000000",
    gas_limit=100_000,
)


def body(spec: JobSpec = SPEC, signature: str | None = None, **changes) -> bytes:
    document = {
        "job": msgspec.to_builtins(spec),
        "signature": signature or sign_job(spec, OWNER, CHAIN_ID, HUB),
    }
    document["job"].update(changes)
    return json.dumps(document).encode()


def parse(data: bytes):
    return parse_create_request(data, CHAIN_ID, HUB, NOW)


def test_a_signed_job_is_accepted():
    job = parse(body())
    assert job.owner == OWNER.address
    assert job.calldata == encode_calldata("incrementBy(uint256)", [5])
    assert job.chain_job_id == job_id_of(OWNER.address, 7)
    assert job.terms.max_fee_per_task == 10**15
    assert job.terms.args_hash == keccak(job.calldata)
    assert (job.spec.nonce, job.spec.max_fee_per_task) == ("7", "1000000000000000")


@pytest.mark.parametrize("value", [2**70, 2**256 - 1, str(2**200), hex(2**255)])
def test_uint256_values_are_accepted_across_their_whole_range(value):
    """A correctly signed job with maxFeePerTask 2**70 (a JSON number) gave a 500."""
    spec = msgspec.structs.replace(SPEC, max_fee_per_task=value, nonce=2**96 - 1)
    job = parse(body(spec))
    assert job.terms.max_fee_per_task == int(value, 0) if isinstance(value, str) else value
    assert job.spec.nonce == str(2**96 - 1)


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"gasLimit": "lots"}, "$.job.gasLimit", "Expected `int`"),
        ({"colour": "blue"}, "$.job", "unknown field `colour`"),
        (
            {"scheduleType": "hourly"},
            "$.job.scheduleType",
            "unknown trigger kind 'hourly' (known: after, condition, cron, event, interval",
        ),
        ({"schedule": {"everySeconds": "5"}}, "$.job.schedule.everySeconds", "expected `int`"),
        ({"schedule": {"everySeconds": 5, "hour": 3}}, "$.job.schedule.hour", "unknown field"),
        ({"schedule": [5]}, "$.job.schedule", "Expected `object`"),
        ({"target": "0x1234"}, "$.job.target", "matching regex '^0x[0-9a-fA-F]{40}$'"),
        # Issue 12: a target without 0x, and an owner with a wrong checksum, passed.
        ({"target": "22" * 20}, "$.job.target", "matching regex"),
        ({"target": "0x" + "aB" * 20}, "$.job.target", "has a wrong EIP-55 checksum"),
        ({"gasLimit": 10**9}, "$.job.gasLimit", "Expected `int` <= 10000000"),
        # Issue 12: a schedule value beyond uint64 was a 500 (eth_abi could not hash it).
        ({"schedule": {"everySeconds": 2**70}}, "$.job.schedule.everySeconds", "expected `int` <= "),
        ({"schedule": {"everySeconds": 60, "end": -1}}, "$.job.schedule.end", "expected `int` >= 0"),
        ({"maxFeePerTask": "-5"}, "$.job.maxFeePerTask", "integer from 1"),
        ({"maxFeePerTask": 2**256}, "$.job.maxFeePerTask", "integer from 1"),
        ({"nonce": 2**96}, "$.job.nonce", "integer from 0"),
        ({"function": "incrementBy"}, "$.job.function", "expected name(type,...)"),
        # Issue 12: argument errors named $.job.function, or all of $.job.args.
        ({"args": ["five"]}, "$.job.args[0]", "'five' is not an integer"),
        ({"args": ["1", "2"]}, "$.job.args", "incrementBy takes 1 argument, got 2"),
        ({"expiry": NOW - 1}, "$.job.expiry", "in the future"),
    ],
)
def test_bad_fields_are_named(changes, field, problem):
    with pytest.raises(JobSpecError) as caught:
        parse(body(**changes))
    assert caught.value.field == field
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("schedule", "field", "problem"),
    [
        ({"everySeconds": 0}, "$.job.schedule.everySeconds", "expected `int` >= 1"),
        ({"everySeconds": 5, "start": NOW + 100_000}, "$.job.expiry", "expires before"),
    ],
)
def test_a_signed_jobs_schedule_values_are_checked(schedule, field, problem):
    with pytest.raises(JobSpecError) as caught:
        parse(body(msgspec.structs.replace(SPEC, schedule=schedule)))
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_an_unsigned_jobs_schedule_is_never_computed():
    """A cron expression's first fire time can cost a fraction of a second: only a request its
    owner signed gets that far (an anonymous body costs an ecrecover at most)."""
    with pytest.raises(JobSpecError) as caught:
        parse(body(scheduleType="cron", schedule={"cron": "* * * * * *", "timezone": "Antarctica/Troll"}))
    assert caught.value.field == "$.signature"


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        ({"everySeconds": 5, "start": NOW - 100, "end": NOW - 10}, "in the past"),
        ({"everySeconds": 5, "start": NOW + 100, "end": NOW + 50}, "before start"),
    ],
)
def test_a_schedule_that_can_never_fire_is_refused(schedule, problem):
    """A job whose start and end were both in the past still ran once and was charged."""
    with pytest.raises(JobSpecError) as caught:
        parse(body(msgspec.structs.replace(SPEC, schedule=schedule)))
    assert (caught.value.field, problem in caught.value.problem) == ("$.job.schedule.end", True)


def test_the_owner_must_have_signed_exactly_this_job():
    stranger = Account.from_key(b"\x02" * 32)
    with pytest.raises(JobSpecError, match=r"\$.signature: signed by 0x"):
        parse(body(signature=sign_job(SPEC, stranger, CHAIN_ID, HUB)))
    # Arguments changed after signing: the calldata hash no longer matches.
    with pytest.raises(JobSpecError, match="not by the owner"):
        parse(body(args=["6"], signature=sign_job(SPEC, OWNER, CHAIN_ID, HUB)))
    with pytest.raises(JobSpecError, match="not by the owner"):  # another chain's signature
        parse(body(signature=sign_job(SPEC, OWNER, 1, HUB)))
    with pytest.raises(JobSpecError, match="not by the owner"):  # another hub's signature
        parse(body(signature=sign_job(SPEC, OWNER, CHAIN_ID, "0x" + "cd" * 20)))
    with pytest.raises(JobSpecError, match="not a valid signature"):
        parse(body(signature="0x1234"))
    with pytest.raises(JobSpecError, match="body: not JSON"):
        parse(b"{")


@pytest.mark.parametrize("field", ["args", "schedule"])
def test_review_deeply_nested_json_is_refused_not_a_crash(field):
    """60 KB of nested brackets in a job's arguments or schedule crashed the gateway (a
    segfault: py_ecc raises the recursion limit, so the decoder ran off the C stack)."""
    nested = "[" * 30_000 + "]" * 30_000
    document = json.loads(body())
    text = json.dumps(document).replace(f'"{field}": ', f'"{field}": {nested}, "x{field}": ', 1)
    with pytest.raises(JobSpecError) as caught:
        parse(text.encode())
    assert (caught.value.field, caught.value.problem) == ("body", "nested deeper than 32 levels")


def test_a_job_with_a_script_signs_the_script_and_takes_no_arguments_of_its_own():
    cid = script_cid(b"print('[7]')")
    spec = msgspec.structs.replace(SPEC, args=[], script=ScriptSpec("ipfs://" + cid, "javascript"))
    job = parse(body(spec))
    call = job.spec.script_call
    assert (call.cid, call.language, call.function) == (cid, "javascript", "incrementBy(uint256)")
    assert (job.terms.args_mode, job.terms.args_hash) == (ARGS_DYNAMIC, call.args_hash)
    assert job.calldata == keccak(text="incrementBy(uint256)")[:4]
    with pytest.raises(JobSpecError) as refused:
        parse(body(msgspec.structs.replace(spec, args=["5"])))
    assert refused.value.field == "$.job.args"
    with pytest.raises(JobSpecError) as refused:
        parse(
            body(spec, script={"cid": "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "language": "python"})
        )
    assert refused.value.field == "$.job.script.cid"


def test_a_scripts_allow_list_is_signed_and_checked():
    cid = script_cid(b"print('[7]')")
    hosts = ["api.example.com", "127.0.0.1:8000"]
    spec = msgspec.structs.replace(SPEC, args=[], script=ScriptSpec(cid, "python", hosts))
    job = parse(body(spec))
    assert job.spec.script_call.hosts == tuple(hosts)
    offline = parse(body(msgspec.structs.replace(spec, script=ScriptSpec(cid, "python"))))
    assert job.terms.args_hash != offline.terms.args_hash  # the owner signs the allow-list
    for bad, field in [
        (["API.example.com"], "$.job.script.hosts[0]"),
        (["api.example.com", "http://x"], "$.job.script.hosts[1]"),
        (["a.com:99999999"], "$.job.script.hosts[0]"),
        (["a.com", "a.com"], "$.job.script.hosts"),
    ]:
        with pytest.raises(JobSpecError) as refused:
            parse(body(msgspec.structs.replace(spec, script=ScriptSpec(cid, "python", bad))))
        assert refused.value.field == field, bad


def test_a_scripts_values_are_checked_and_signed():
    cid = script_cid(b"print('[7]')")
    token = to_checksum_address("0x" + "ab" * 20)
    spec = msgspec.structs.replace(
        SPEC, args=[], script=ScriptSpec(cid, "python", values=[f"b = balance {token}"])
    )
    job = parse(body(spec))
    assert job.spec.script_call.values == (f"b = balance {token}",)
    plain = parse(body(msgspec.structs.replace(spec, script=ScriptSpec(cid, "python"))))
    assert job.terms.args_hash != plain.terms.args_hash  # the owner signs the values
    for bad, field, problem in [
        (["b = balance 0x12"], "$.job.script.values[0]", "address"),
        (["b = balance"], "$.job.script.values[0]", "expected"),
        (["b = http https://x.example/p $.p"], "$.job.script.values[0]", "read on chain"),
        ([f"b = balance {token}", f"b = feed {token}"], "$.job.script.values", "given twice"),
    ]:
        with pytest.raises(JobSpecError) as refused:
            parse(body(msgspec.structs.replace(spec, script=ScriptSpec(cid, "python", values=bad))))
        assert refused.value.field == field, bad
        assert problem in refused.value.problem
