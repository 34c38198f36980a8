"""POST /api/jobs bodies: a signed job passes; every bad field is named."""

from __future__ import annotations

import json

import msgspec
import pytest
from eth_account import Account

from gateway.calldata import encode_calldata
from gateway.jobs import IntervalSchedule, JobSpec, JobSpecError, parse_create_request, sign_job

CHAIN_ID = 31337
OWNER = Account.from_key(b"\x01" * 32)
SPEC = JobSpec(
    owner=OWNER.address,
    target="0x" + "22" * 20,
    function="incrementBy(uint256)",
    args=["5"],
    schedule_type="interval",
    schedule=IntervalSchedule(every_seconds=2),
    max_fee_per_task="1000000000000000",
    gas_limit=100_000,
)


def body(spec: JobSpec = SPEC, signature: str | None = None, **changes) -> bytes:
    document = {"job": msgspec.to_builtins(spec), "signature": signature or sign_job(spec, OWNER, CHAIN_ID)}
    document["job"].update(changes)
    return json.dumps(document).encode()


def test_a_signed_job_is_accepted():
    job = parse_create_request(body(), CHAIN_ID)
    assert job.owner == OWNER.address
    assert job.calldata == encode_calldata("incrementBy(uint256)", [5])
    assert job.max_fee == 10**15


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"gasLimit": "lots"}, "$.job.gasLimit", "Expected `int`"),
        ({"colour": "blue"}, "$.job", "unknown field `colour`"),
        ({"scheduleType": "cron"}, "$.job.scheduleType", "Invalid enum value 'cron'"),
        ({"target": "0x1234"}, "$.job.target", "is not an address"),
        ({"schedule": {"everySeconds": 0}}, "$.job.schedule.everySeconds", "at least 1"),
        ({"gasLimit": 10**9}, "$.job.gasLimit", "between 21000"),
        ({"maxFeePerTask": "-5"}, "$.job.maxFeePerTask", "positive integer"),
        ({"function": "incrementBy"}, "$.job.function", "expected name(type,...)"),
        ({"args": ["five"]}, "$.job.args", "'five' is not an integer"),
    ],
)
def test_bad_fields_are_named(changes, field, problem):
    with pytest.raises(JobSpecError) as caught:
        parse_create_request(body(**changes), CHAIN_ID)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_the_owner_must_have_signed_exactly_this_job():
    stranger = Account.from_key(b"\x02" * 32)
    with pytest.raises(JobSpecError, match=r"\$.signature: signed by 0x"):
        parse_create_request(body(signature=sign_job(SPEC, stranger, CHAIN_ID)), CHAIN_ID)
    # Arguments changed after signing: the calldata hash no longer matches.
    with pytest.raises(JobSpecError, match="not by the owner"):
        parse_create_request(body(args=["6"], signature=sign_job(SPEC, OWNER, CHAIN_ID)), CHAIN_ID)
    with pytest.raises(JobSpecError, match="not by the owner"):  # another chain's signature
        parse_create_request(body(signature=sign_job(SPEC, OWNER, 1)), CHAIN_ID)
    with pytest.raises(JobSpecError, match="not a valid signature"):
        parse_create_request(body(signature="0x1234"), CHAIN_ID)
    with pytest.raises(JobSpecError, match="body: not JSON"):
        parse_create_request(b"{", CHAIN_ID)
