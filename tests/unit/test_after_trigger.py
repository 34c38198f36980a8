"""The `after` trigger kind (its spec, signed hash and evidence) and POST /api/jobs bodies that
hold a linked chain of jobs: every link checked, every error naming its entry's field."""

from __future__ import annotations

import json

import eth_abi
import msgspec
import pytest
import trio
from eth_account import Account
from eth_utils import keccak

from gateway import JobSpec, JobSpecError, parse_create_request, sign_job
from gateway.jobs import parse_jobs_request
from node.chain import load_artifact
from protocol import job_id_of
from protocol.triggers import NotYetVisibleError, Readers, TriggerFire, TriggerSpecError, kind_named
from protocol.triggers.after import KIND, TASK_SUBMITTED, ApprovalEvidence

CHAIN_ID = 31337
HUB = "0x" + "ab" * 20
NOW = 1_800_000_000
OWNER = Account.from_key(b"\x01" * 32)
FIRST = JobSpec(
    owner=OWNER.address,
    nonce="1",
    expiry=NOW + 86_400,
    target="0x" + "22" * 20,
    function="increment()",
    schedule_type="interval",
    schedule={"everySeconds": 60},
    max_fee_per_task="1000000000000000",
    gas_limit=100_000,
)
FIRST_ID = job_id_of(OWNER.address, 1)
EVIDENCE = ApprovalEvidence(7, b"\x11" * 32, 1234)


def after(nonce: int, predecessor: int | str) -> JobSpec:
    """OWNER's job `nonce`, run after job `predecessor` (an id on chain)."""
    return msgspec.structs.replace(
        FIRST, nonce=str(nonce), schedule_type="after", schedule={"jobId": str(predecessor)}
    )


def entry(spec: JobSpec) -> dict:
    return {"job": msgspec.to_builtins(spec), "signature": sign_job(spec, OWNER, CHAIN_ID, HUB)}


def chain(*specs: JobSpec) -> bytes:
    return json.dumps({"jobs": [entry(spec) for spec in specs]}).encode()


def refusal(body: bytes) -> tuple[str, str]:
    with pytest.raises(JobSpecError) as refused:
        parse_jobs_request(body, CHAIN_ID, HUB, NOW)
    return refused.value.field, refused.value.problem


def test_the_kind_is_registered_and_signs_its_predecessor():
    assert kind_named("after") is KIND
    spec, first_fire = KIND.parse({"jobId": str(FIRST_ID)}, NOW)
    assert first_fire == NOW
    expected = keccak(eth_abi.encode(["bytes32", "uint256"], [keccak(text="after"), FIRST_ID]))
    assert KIND.trigger_hash(spec) == expected
    assert KIND.trigger_hash(KIND.decode({"jobId": str(2**256 - 1)})) != expected


def test_the_approval_event_is_the_attestation_centers():
    topic = load_artifact("AttestationCenter").abi.event_topic("TaskSubmitted")
    assert bytes.fromhex(topic[2:]) == TASK_SUBMITTED


@pytest.mark.parametrize(
    ("schedule", "field", "problem"),
    [
        ({"jobId": "0"}, "jobId", "a decimal integer from 1 to 2**256 - 1"),
        ({"jobId": "007"}, "jobId", "a decimal integer"),  # one spelling per job: it is signed
        ({"jobId": "0x10"}, "jobId", "a decimal integer"),
        ({"jobId": "١٢"}, "jobId", "a decimal integer"),  # Arabic-Indic digits pass isdigit()
        ({"jobId": str(2**256)}, "jobId", "a decimal integer"),
        ({"jobId": "9" * 79}, "jobId", "length <= 78"),
        ({"jobId": 12}, "jobId", "expected `str`, got `int`"),
        ({"jobId": "12", "after": 3}, "after", "unknown field"),
        ({}, "jobId", "missing"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(schedule, field, problem):
    with pytest.raises(TriggerSpecError) as refused:
        KIND.parse(schedule, NOW)
    assert refused.value.field == field
    assert problem in refused.value.problem


def test_the_evidence_is_canonical():
    detail = EVIDENCE.encode()
    assert detail == eth_abi.encode(["uint256", "bytes32", "uint256"], [7, b"\x11" * 32, 1234])
    assert ApprovalEvidence.decode(detail) == EVIDENCE
    for bad in (b"", detail[:-1], detail + bytes(32), bytes(95)):
        fire = TriggerFire("after", {"jobId": str(FIRST_ID)}, NOW, bad)
        assert KIND.check_fire(KIND.decode(fire.spec), fire) is not None, bad


def test_an_attester_that_knows_no_hub_abstains():
    fire = TriggerFire("after", {"jobId": str(FIRST_ID)}, NOW, EVIDENCE.encode())
    terms_trigger = KIND.trigger_hash(KIND.decode(fire.spec))
    assert KIND.check(fire, terms_trigger, NOW) is None
    assert KIND.check(fire, bytes(32), NOW) == "the trigger spec is not the one the owner signed"
    with pytest.raises(NotYetVisibleError):
        trio.run(KIND.check_on_chain, KIND.decode(fire.spec), fire, Readers({}), 2000)


def test_a_linked_chain_is_checked_in_order():
    jobs = parse_jobs_request(chain(FIRST, after(2, FIRST_ID), after(3, FIRST_ID)), CHAIN_ID, HUB, NOW)
    assert [job.chain_job_id for job in jobs] == [FIRST_ID, *(job_id_of(OWNER.address, n) for n in (2, 3))]
    assert jobs[1].spec.schedule == {"jobId": str(FIRST_ID)}
    one = json.dumps(entry(after(2, FIRST_ID))).encode()
    [alone] = parse_jobs_request(one, CHAIN_ID, HUB, NOW)
    assert alone.chain_job_id == job_id_of(OWNER.address, 2)
    with pytest.raises(JobSpecError) as refused:
        parse_create_request(chain(FIRST, after(2, FIRST_ID)), CHAIN_ID, HUB, NOW)
    assert refused.value.field == "$.jobs"


def test_each_link_must_name_an_earlier_job_of_the_chain():
    second = job_id_of(OWNER.address, 2)
    assert refusal(chain(FIRST, after(2, FIRST_ID), after(3, job_id_of(OWNER.address, 9)))) == (
        "$.jobs[2].job.schedule.jobId",
        "must be the chainJobId of an earlier job in `jobs`",
    )
    forward = refusal(chain(FIRST, after(2, job_id_of(OWNER.address, 3)), after(3, second)))
    assert forward[0] == "$.jobs[1].job.schedule.jobId"
    assert refusal(chain(FIRST, after(2, second)))[0] == "$.jobs[1].job.schedule.jobId"  # itself
    timed = msgspec.structs.replace(FIRST, nonce="2")
    assert refusal(chain(FIRST, timed)) == (
        "$.jobs[1].job.scheduleType",
        "must be after: a chain's jobs run after an earlier one",
    )
    assert refusal(chain(FIRST, FIRST)) == (
        "$.jobs[1].job.nonce",
        "the same job as jobs[0] (the same owner and nonce)",
    )


def test_an_entrys_own_errors_name_the_entry():
    document = json.loads(chain(FIRST, after(2, FIRST_ID), after(3, FIRST_ID)))
    document["jobs"][2]["signature"] = entry(after(4, FIRST_ID))["signature"]
    assert refusal(json.dumps(document).encode())[0] == "$.jobs[2].signature"
    document = json.loads(chain(FIRST, after(2, FIRST_ID)))
    document["jobs"][1]["job"]["gasLimit"] = 5
    assert refusal(json.dumps(document).encode())[0] == "$.jobs[1].job.gasLimit"
    document["jobs"][1]["job"] |= {"gasLimit": 100_000, "schedule": {"jobId": "x"}}
    assert refusal(json.dumps(document).encode())[0] == "$.jobs[1].job.schedule.jobId"
    document["jobs"][1]["colour"] = "blue"
    assert refusal(json.dumps(document).encode()) == ("$.jobs[1]", "Object contains unknown field `colour`")


@pytest.mark.parametrize(
    ("document", "field", "problem"),
    [
        ({"jobs": [entry(FIRST)]}, "$.jobs", "length >= 2"),
        ({"jobs": [entry(after(n, FIRST_ID)) for n in range(2, 11)]}, "$.jobs", "length <= 8"),
        ({**entry(FIRST), "jobs": [entry(FIRST), entry(after(2, FIRST_ID))]}, "$.jobs", "not both"),
        ({"signature": "0x00"}, "$.job", "missing"),
        ({"job": msgspec.to_builtins(FIRST)}, "$.signature", "missing"),
        ({}, "$.job", "missing"),
        ({"jobs": "many"}, "$.jobs", "Expected `array | null`"),
        ({**entry(FIRST), "signature": "0x" + "00" * 200}, "$.signature", "length <= 200"),
    ],
)
def test_a_body_is_one_job_or_a_chain_of_2_to_8(document, field, problem):
    got = refusal(json.dumps(document).encode())
    assert got[0] == field
    assert problem in got[1]
