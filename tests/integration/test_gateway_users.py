"""Users over the HTTP API and a real store: registration, reading, the email set with the
address's EIP-712 signature in the gateway domain (built here as gateway/api/guide.md documents
it, not with the gateway's code), replays, and a user's jobs page by page."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
import trio
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from gateway import GatewayStorage
from gateway.actions import UPDATE_JOB, ActionRefusedError, SignedActions
from gateway.api.users import users_blueprint
from gateway.users import Users
from node.store import Store
from protocol import JobTerms, job_id_of

from ..api_helpers import api_client
from ..conftest import CHAIN_ID
from ..gateway_helpers import counter_job

USER = Account.from_key(b"\x11" * 32)
STRANGER = Account.from_key(b"\x12" * 32)
EMAIL = "alice@example.org"
LONGEST_EMAIL = "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "c" * 6  # 254 characters
DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
SET_EMAIL_TYPE = [
    {"name": "user", "type": "address"},
    {"name": "emailHash", "type": "bytes32"},
    {"name": "nonce", "type": "uint64"},
    {"name": "deadline", "type": "uint64"},
]
UPDATE_JOB_TYPE = [
    {"name": "jobId", "type": "uint256"},
    {"name": "paused", "type": "bool"},
    {"name": "nonce", "type": "uint64"},
    {"name": "deadline", "type": "uint64"},
]


def bad_checksum(address: str) -> str:
    """`address` with one letter's case flipped: a wrong EIP-55 checksum."""
    at = next(i for i, c in enumerate(address) if i > 1 and c.isalpha())
    return address[:at] + address[at].swapcase() + address[at + 1 :]


def sign(hub: str, primary: str, fields: list, values: dict, account=USER) -> bytes:
    """`account`'s signature of `values` in the gateway domain, as the guide documents it."""
    typed = {
        "types": {"EIP712Domain": DOMAIN_TYPE, primary: fields},
        "primaryType": primary,
        "domain": {"name": "TriggerX Gateway", "version": "1", "chainId": CHAIN_ID, "verifyingContract": hub},
        "message": values,
    }
    return bytes(Account.sign_message(encode_typed_data(full_message=typed), account.key).signature)


def email_body(hub: str, email: str | None, nonce: int, *, deadline=None, signer=USER, override=None) -> str:
    """A PUT /api/users/email body for USER, signed by `signer`; `override` replaces fields after signing."""
    hashed = bytes(32) if email is None else keccak(email.encode())
    deadline = int(time.time()) + 600 if deadline is None else deadline
    values = {"user": USER.address, "emailHash": hashed, "nonce": nonce, "deadline": deadline}
    signature = sign(hub, "SetEmail", SET_EMAIL_TYPE, values, signer)
    body = {
        "address": USER.address,
        "email": email,
        "emailHash": "0x" + hashed.hex(),
        "nonce": nonce,
        "deadline": deadline,
        "signature": "0x" + signature.hex(),
    }
    return json.dumps(body | (override or {}))


def open_api(store: Store, hub: str, max_registered: int = 100_000):
    """(client, OpenAPI document, users, actions, storage) of a users API over `store`."""
    storage = GatewayStorage(store)
    users = Users(store, max_registered)
    actions = SignedActions(store, CHAIN_ID, hub)
    client, document = api_client(lambda ops: users_blueprint(ops, storage, users, actions))
    return client, document, users, actions, storage


@pytest.fixture
def db(tmp_path):
    return tmp_path / "db"


@pytest.fixture
def api(db, core):
    with Store.open(db) as store:
        yield open_api(store, core.hub.address)


async def reply(response) -> tuple[int, dict]:
    return response.status_code, await response.get_json()


async def test_a_user_registers_once_and_is_read_back(api):
    client, *_ = api
    status, first = await reply(await client.post("/api/users", data=json.dumps({"address": USER.address})))
    assert status == 201
    assert first["user"] == {
        "address": USER.address,
        "createdAt": first["user"]["createdAt"],
        "emailSet": False,
        "jobsRun": 0,
        "tasksCompleted": 0,
        "points": 0,
    }
    # Idempotent, in any case of the address: the existing record, 200.
    again = await client.post("/api/users", data=json.dumps({"address": USER.address.lower()}))
    assert await reply(again) == (200, first)
    assert await reply(await client.get(f"/api/users/address/{USER.address.lower()}")) == (200, first)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": "0x12"}, "$.address"),
        ({"address": USER.address.replace("0x", "0X")}, "$.address"),
        ({"address": bad_checksum(USER.address)}, "$.address"),  # bad checksum
        ({"address": USER.address, "email": EMAIL}, "$"),  # unknown field
        ({}, "$"),
        ({"address": 7}, "$.address"),
    ],
)
async def test_registration_refuses_bad_bodies_naming_the_field(api, body, field):
    client, *_ = api
    status, answer = await reply(await client.post("/api/users", data=json.dumps(body)))
    assert (status, answer.get("field")) == (400, field), answer


async def test_registration_takes_json_only(api):
    client, *_ = api
    response = await client.post("/api/users", data=USER.address, headers={"content-type": "text/plain"})
    assert (await reply(response))[0] == 415


async def test_registrations_without_a_signature_are_capped_across_restarts(db, core):
    """Anyone may register any address: the records that costs the gateway are bounded."""
    addresses = [Account.from_key(bytes([i + 1]) * 32).address for i in range(4)]
    with Store.open(db) as store:
        client, _, users, *_ = open_api(store, core.hub.address, max_registered=2)
        for address, status in zip(addresses, (201, 201, 503), strict=False):
            response = await client.post("/api/users", data=json.dumps({"address": address}))
            assert response.status_code == status
        answer = await response.get_json()
        assert answer["error"].startswith("2 addresses are registered already")
        users.ensure(addresses[2], 1.0)  # a job's owner is a user all the same
    with Store.open(db) as store:
        client, _, users, *_ = open_api(store, core.hub.address, max_registered=2)
        again = await client.post("/api/users", data=json.dumps({"address": addresses[0]}))
        assert again.status_code == 200
        full = await client.post("/api/users", data=json.dumps({"address": addresses[3]}))
        assert full.status_code == 503
        assert (await client.get(f"/api/users/address/{addresses[2]}")).status_code == 200
        email = email_body(core.hub.address, EMAIL, 1)  # a signed email makes a user too
        assert (await client.put("/api/users/email", data=email)).status_code == 200


async def test_unknown_users_are_404_and_non_addresses_400(api):
    client, *_ = api
    for path in (f"/api/users/address/{USER.address}", f"/api/users/address/{USER.address}/jobs"):
        status, answer = await reply(await client.get(path))
        assert (status, answer["error"]) == (404, f"no user {USER.address}")
    for bad in ("0xZZ", "0x" + "1" * 41, "x" * 1000, bad_checksum(USER.address)):
        status, answer = await reply(await client.get(f"/api/users/address/{bad}"))
        assert (status, answer.get("field")) == (400, "address"), (bad, answer)


async def test_the_email_is_set_with_the_users_signature_and_never_shown(api, core):
    client, _, users, *_ = api
    response = await client.put("/api/users/email", data=email_body(core.hub.address, EMAIL, 5))
    status, answer = await reply(response)
    assert (status, answer["user"]["emailSet"], answer["user"]["address"]) == (200, True, USER.address)
    read = await client.get(f"/api/users/address/{USER.address}")
    for shown in (await response.get_data(), await read.get_data()):
        assert b"alice" not in shown
        assert b"example" not in shown
    assert (await read.get_json())["user"]["emailSet"] is True
    stored = users.get(USER.address)
    assert (stored.email, stored.email_nonce) == (EMAIL, 5)


async def test_a_replayed_or_older_signature_is_refused_with_the_smallest_nonce_left(api, core):
    client, _, users, *_ = api
    body = email_body(core.hub.address, EMAIL, 5)
    assert (await client.put("/api/users/email", data=body)).status_code == 200
    status, answer = await reply(await client.put("/api/users/email", data=body))
    assert (status, answer["field"]) == (409, "$.nonce")
    assert answer["error"] == f"nonce 5 is used up: the smallest nonce {USER.address} may sign now is 6"
    older = email_body(core.hub.address, "mallory@example.org", 4)
    assert (await reply(await client.put("/api/users/email", data=older)))[0] == 409
    assert users.get(USER.address).email == EMAIL


async def test_the_same_signature_sent_ten_times_at_once_is_applied_once(api, core):
    client, *_ = api
    body = email_body(core.hub.address, EMAIL, 1)
    statuses: list[int] = []

    async def put() -> None:
        statuses.append((await client.put("/api/users/email", data=body)).status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(put)
    assert sorted(statuses) == [200] + [409] * 9


async def test_deadlines_must_be_ahead_and_within_an_hour(api, core):
    client, _, users, *_ = api
    now = int(time.time())
    for deadline in (now - 1, now + 3700):
        body = email_body(core.hub.address, EMAIL, 1, deadline=deadline)
        status, answer = await reply(await client.put("/api/users/email", data=body))
        assert (status, answer["field"]) == (400, "$.deadline")
    assert users.get(USER.address) is None


async def test_a_signature_by_another_address_is_refused_and_uses_no_nonce(api, core):
    client, _, users, *_ = api
    body = email_body(core.hub.address, EMAIL, 1, signer=STRANGER)
    status, answer = await reply(await client.put("/api/users/email", data=body))
    assert (status, answer["field"]) == (400, "$.signature")
    assert answer["error"] == f"this SetEmail is signed by {STRANGER.address}, not by {USER.address}"
    assert users.get(USER.address) is None
    signed_by_user = email_body(core.hub.address, EMAIL, 1)
    assert (await client.put("/api/users/email", data=signed_by_user)).status_code == 200


async def test_a_signature_for_another_gateway_domain_is_refused(api, core):
    client, *_ = api
    elsewhere = "0x" + "44" * 20  # another deployment's hub
    body = json.loads(email_body(core.hub.address, EMAIL, 1))
    body["signature"] = json.loads(email_body(elsewhere, EMAIL, 1))["signature"]
    status, answer = await reply(await client.put("/api/users/email", data=json.dumps(body)))
    assert (status, answer["field"]) == (400, "$.signature")


@pytest.mark.parametrize(
    ("email", "override", "field"),
    [
        ("alice@example.org\nBcc: all@example.org", {}, "$.email"),  # a header injection
        ("alice@example.org\n", {}, "$.email"),
        (LONGEST_EMAIL + "c", {}, "$.email"),
        ("alice", {}, "$.email"),
        (EMAIL, {"emailHash": "0x" + keccak(b"bob@example.org").hex()}, "$.emailHash"),
        (None, {"emailHash": "0x" + keccak(EMAIL.encode()).hex()}, "$.emailHash"),
        (EMAIL, {"emailHash": "0x1234"}, "$.emailHash"),
        (EMAIL, {"signature": "0x" + "00" * 65}, "$.signature"),
        (EMAIL, {"signature": "0x" + "ab" * 64}, "$.signature"),
        (EMAIL, {"nonce": 2**63}, "$.nonce"),
        (EMAIL, {"nonce": -1}, "$.nonce"),
        (EMAIL, {"deadline": "soon"}, "$.deadline"),
        (EMAIL, {"address": "0x12"}, "$.address"),
        (EMAIL, {"extra": True}, "$"),
    ],
)
async def test_bad_email_requests_are_400_naming_the_field(api, core, email, override, field):
    client, _, users, *_ = api
    body = email_body(core.hub.address, email, 1, override=override)
    status, answer = await reply(await client.put("/api/users/email", data=body))
    assert (status, answer.get("field")) == (400, field), answer
    assert users.get(USER.address) is None


async def test_the_longest_email_is_taken(api, core):
    client, _, users, *_ = api
    assert len(LONGEST_EMAIL) == 254
    response = await client.put("/api/users/email", data=email_body(core.hub.address, LONGEST_EMAIL, 1))
    assert response.status_code == 200
    assert users.get(USER.address).email == LONGEST_EMAIL


async def test_a_zero_hash_removes_the_email(api, core):
    client, _, users, *_ = api
    await client.put("/api/users/email", data=email_body(core.hub.address, EMAIL, 1))
    removal = email_body(core.hub.address, None, 2)
    status, answer = await reply(await client.put("/api/users/email", data=removal))
    assert (status, answer["user"]["emailSet"]) == (200, False)
    assert users.get(USER.address).email is None


async def test_used_nonces_and_emails_survive_a_restart(db, core):
    body = email_body(core.hub.address, EMAIL, 7)
    with Store.open(db) as store:
        client, *_ = open_api(store, core.hub.address)
        assert (await client.put("/api/users/email", data=body)).status_code == 200
    with Store.open(db) as store:
        client, *_ = open_api(store, core.hub.address)
        assert (await reply(await client.put("/api/users/email", data=body)))[0] == 409
        answer = await (await client.get(f"/api/users/address/{USER.address}")).get_json()
        assert answer["user"]["emailSet"] is True


async def test_every_gateway_action_shares_the_addresss_nonces(api, core):
    """UpdateJob (for job updates) is checked by the same SignedActions: one nonce sequence."""
    client, _, _, actions, storage = api
    await client.put("/api/users/email", data=email_body(core.hub.address, EMAIL, 5))
    deadline = int(time.time()) + 60
    for nonce, refused in ((5, True), (6, False)):
        values = {"jobId": 2**200, "paused": True, "nonce": nonce, "deadline": deadline}
        signature = sign(core.hub.address, "UpdateJob", UPDATE_JOB_TYPE, values)
        message = actions.message(UPDATE_JOB, values)
        if refused:
            with pytest.raises(ActionRefusedError) as error:
                await actions.verify(message, signature, USER.address, time.time())
            assert (error.value.status, error.value.field) == (409, "$.nonce")
            continue
        verified = await actions.verify(message, signature, USER.address, time.time())
        with storage.store.batch() as batch:
            actions.consume(verified, batch)
    assert actions.smallest_nonce(USER.address) == 7


async def test_a_users_jobs_page_by_page(api):
    client, _, users, _, storage = api
    calldata = b"\xd0\x9d\xe0\x8a"
    terms = JobTerms.static_call("0x" + "22" * 20, calldata, 100_000, 10**15, bytes(32))
    for job_id, owner in ((1, USER.address), (2, STRANGER.address), (3, USER.address), (4, USER.address)):
        job = counter_job(owner, job_id_of(owner, job_id), terms, calldata)
        storage.jobs.put(msgspec.structs.replace(job, id=job_id))
    users.ensure(USER.address, 1.0)  # as the intake does for a new job's owner
    path = f"/api/users/address/{USER.address}/jobs"
    status, first = await reply(await client.get(f"{path}?limit=2"))
    assert (status, [job["id"] for job in first["jobs"]]) == (200, [1, 3])
    assert {job["owner"] for job in first["jobs"]} == {USER.address}
    _, second = await reply(await client.get(f"{path}?limit=2&cursor={first['cursor']}"))
    assert ([job["id"] for job in second["jobs"]], second["cursor"]) == ([4], None)
    for query, field in (("?cursor=AAAA", "cursor"), ("?cursor=", "cursor"), ("?limit=0", "limit")):
        status, answer = await reply(await client.get(path + query))
        assert (status, answer.get("field")) == (400, field), answer


async def test_the_openapi_document_describes_the_user_operations(api):
    _, document, *_ = api
    paths = document["paths"]
    assert set(paths) == {
        "/api/users",
        "/api/users/address/{address}",
        "/api/users/email",
        "/api/users/address/{address}/jobs",
    }
    put = paths["/api/users/email"]["put"]
    assert "SetEmail(address user, bytes32 emailHash, uint64 nonce, uint64 deadline)" in put["description"]
    assert {"400", "409"} <= set(put["responses"])
    ids = {op["operationId"] for path in paths.values() for op in path.values()}
    links = paths["/api/users"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} <= ids
    schema = document["components"]["schemas"]["SetEmailRequest"]
    assert schema["additionalProperties"] is False
