"""Keeper registration forms over the HTTP API and a real store (gateway.keeper_forms): a real
BLS key pair with its proof of possession, a real libp2p identity, the operator's EIP-712
signature; every bad field named, the admin's listing behind the admin credential."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from eth_account import Account

from gateway import GatewayStorage
from gateway.actions import SignedActions, gateway_domain
from gateway.api import AccessRules, create_app
from gateway.api_keys import ApiKeys
from gateway.keeper_forms import KeeperFormRequest, KeeperForms, keeper_form_message
from node.bls import choose_backend, prove_possession, public_key_to_eip2537, signature_to_eip2537
from node.mesh import identity_from_seed, peer_id_of
from node.store import Store

from ..conftest import CHAIN_ID
from ..gateway_helpers import JsonClient

ADMIN = "the-admin-credential"
HUB = "0x" + "5a" * 20  # the gateway domain's verifying contract; no chain is read for a form
OPERATOR = Account.from_key(b"\x21" * 32)
OTHER = Account.from_key(b"\x22" * 32)
BLS_SECRET = (4242).to_bytes(32, "big")
PEER = peer_id_of(identity_from_seed(b"\x31" * 32))
OTHER_PEER = peer_id_of(identity_from_seed(b"\x32" * 32))
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def bls_pair(secret: bytes) -> tuple[str, str]:
    """A BLS public key and its proof of possession, 0x-hex, as an operator sends them."""
    return "0x" + choose_backend().secret_to_public(secret).hex(), "0x" + prove_possession(secret).hex()


KEY, PROOF = bls_pair(BLS_SECRET)


def form(signer: Any = OPERATOR, secret: bytes | None = None, **changes: Any) -> dict[str, Any]:
    """A form body signed by `signer` after `changes` (a value None drops the field)."""
    key, proof = (KEY, PROOF) if secret is None else bls_pair(secret)
    body: dict[str, Any] = {
        "operator": OPERATOR.address,
        "blsPublicKey": key,
        "proofOfPossession": proof,
        "peerId": PEER,
        "name": "Keeper Co.",
        "email": "ops@keeper.example",
        "listenAddrs": [f"/ip4/203.0.113.7/tcp/9000/p2p/{PEER}"],
        "nonce": 1,
        "deadline": int(time.time()) + 600,
        "signature": "0x" + "00" * 65,
    }
    body |= changes
    try:
        request = msgspec.convert(body, KeeperFormRequest)
        signature = keeper_form_message(request, gateway_domain(CHAIN_ID, HUB)).sign(signer)
        body["signature"] = "0x" + signature.hex()
    except (msgspec.ValidationError, ValueError):
        pass  # a field a signature cannot be made over: the check before the signature's refuses it
    body |= {k: v for k, v in changes.items() if k == "signature"}
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "db") as store:
        yield store


def client_of(store: Store, forms: KeeperForms) -> JsonClient:
    access = AccessRules(ApiKeys(store), admin_token=ADMIN)
    return JsonClient(create_app(GatewayStorage(store), access=access, keeper_forms=forms).test_client())


@pytest.fixture
def client(store):
    return client_of(store, KeeperForms(store, SignedActions(store, CHAIN_ID, HUB)))


async def test_a_form_is_stored_listed_for_the_admin_and_decided(client):
    response = await client.post("/api/keepers/form", json=form())
    assert response.status_code == 201, await response.get_json()
    stored = (await response.get_json())["form"]
    assert stored["operator"] == OPERATOR.address
    assert stored["status"] == "pending"
    assert (stored["blsPublicKey"], stored["peerId"]) == (KEY, PEER)
    # What registerOperator takes, ready for the admin's transaction.
    assert stored["registryPublicKey"] == "0x" + public_key_to_eip2537(bytes.fromhex(KEY[2:])).hex()
    assert stored["registryProof"] == "0x" + signature_to_eip2537(bytes.fromhex(PROOF[2:])).hex()
    listed = await client.get("/api/admin/keepers/forms?status=pending", headers=ADMIN_HEADERS)
    assert [f["operator"] for f in (await listed.get_json())["forms"]] == [OPERATOR.address]

    # The same signed form again is a replay.
    again = await client.post("/api/keepers/form", json=form())
    assert (again.status_code, (await again.get_json())["field"]) == (409, "$.nonce")

    decided = await client.put(
        f"/api/admin/keepers/forms/{OPERATOR.address.lower()}",
        json={"status": "approved", "note": "stake received"},
        headers=ADMIN_HEADERS,
    )
    assert decided.status_code == 200
    assert (await decided.get_json())["form"]["status"] == "approved"
    pending = await client.get("/api/admin/keepers/forms?status=pending", headers=ADMIN_HEADERS)
    assert (await pending.get_json())["forms"] == []
    # An approved form is final, even signed anew.
    late = await client.post("/api/keepers/form", json=form(nonce=2))
    assert (late.status_code, (await late.get_json())["field"]) == (409, "$.operator")


BAD_FIELDS = [
    ({"operator": OPERATOR.address.lower().replace("0x", "0X")}, "$.operator"),
    ({"operator": "0x" + OPERATOR.address[2:].swapcase()}, "$.operator"),  # a wrong EIP-55 checksum
    ({"blsPublicKey": KEY[:-2]}, "$.blsPublicKey"),
    ({"blsPublicKey": "0x" + "ff" * 48}, "$.blsPublicKey"),  # not a point
    ({"proofOfPossession": PROOF + "00"}, "$.proofOfPossession"),
    ({"proofOfPossession": "0x" + "ff" * 96}, "$.proofOfPossession"),  # not a point
    ({"peerId": "abc"}, "$.peerId"),
    ({"peerId": "0OIl"}, "$.peerId"),
    ({"peerId": "Q" * 129}, "$.peerId"),
    ({"listenAddrs": ["/ip4/203.0.113.7/tcp/9000"]}, "$.listenAddrs[0]"),
    ({"listenAddrs": [f"/ip4/203.0.113.7/tcp/9000/p2p/{OTHER_PEER}"]}, "$.listenAddrs[0]"),
    ({"listenAddrs": [f"/ip4/203.0.113.{i}/tcp/9000/p2p/{PEER}" for i in range(9)]}, "$.listenAddrs"),
    ({"listenAddrs": ["/ip4/1.2.3.4/tcp/1/" + "x" * 300]}, "$.listenAddrs[0]"),
    ({"name": "line\nbreak"}, "$.name"),
    ({"name": "n" * 101}, "$.name"),
    ({"email": "not an email"}, "$.email"),
    ({"email": "a@" + "b" * 260}, "$.email"),
    ({"nonce": -1}, "$.nonce"),
    ({"nonce": 2**64}, "$.nonce"),
    ({"deadline": int(time.time()) - 1}, "$.deadline"),
    ({"deadline": int(time.time()) + 7200}, "$.deadline"),
    ({"signature": "0x" + "11" * 65}, "$.signature"),
    ({"signature": "0x1234"}, "$.signature"),
    ({"operator": None}, "$"),
    ({"stake": 100}, "$"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_FIELDS)
async def test_each_bad_field_is_a_400_naming_it(client, changes, field):
    response = await client.post("/api/keepers/form", json=form(**changes))
    answer = await response.get_json()
    assert response.status_code == 400, answer
    assert answer["field"] == field, answer


async def test_a_form_signed_by_another_account_is_refused(client):
    response = await client.post("/api/keepers/form", json=form(signer=OTHER))
    assert response.status_code == 400
    answer = await response.get_json()
    assert answer["field"] == "$.signature"
    assert OTHER.address in answer["error"]


async def test_a_proof_of_another_key_is_a_400(client):
    other_proof = bls_pair((77).to_bytes(32, "big"))[1]
    response = await client.post("/api/keepers/form", json=form(proofOfPossession=other_proof))
    assert (response.status_code, (await response.get_json())["field"]) == (400, "$.proofOfPossession")
    listed = await client.get("/api/admin/keepers/forms", headers=ADMIN_HEADERS)
    assert (await listed.get_json())["forms"] == []


async def test_a_non_json_body_is_a_415(client):
    response = await client.post(
        "/api/keepers/form", data="operator=1", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/admin/keepers/forms"), ("PUT", f"/api/admin/keepers/forms/{OPERATOR.address}")],
)
async def test_the_admin_routes_need_the_admin_credential(client, method, path):
    body = {"json": {"status": "rejected"}}
    none = await client.open(path, method=method, **body)
    assert (none.status_code, (await none.get_json())["field"]) == (401, "Authorization")
    wrong = await client.open(path, method=method, headers={"Authorization": "Bearer guess"}, **body)
    assert (wrong.status_code, (await wrong.get_json())["field"]) == (403, "Authorization")


async def test_bad_admin_input_is_named(client):
    no_form = await client.put(
        f"/api/admin/keepers/forms/{OTHER.address}", json={"status": "approved"}, headers=ADMIN_HEADERS
    )
    assert no_form.status_code == 404
    bad = await client.put(
        f"/api/admin/keepers/forms/{OTHER.address}", json={"status": "maybe"}, headers=ADMIN_HEADERS
    )
    assert (bad.status_code, (await bad.get_json())["field"]) == (400, "$.status")
    address = await client.put(
        "/api/admin/keepers/forms/0x12", json={"status": "approved"}, headers=ADMIN_HEADERS
    )
    assert (address.status_code, (await address.get_json())["field"]) == (400, "address")
    for query, field in (("status=open", "status"), ("cursor=AAAA", "cursor"), ("limit=0", "limit")):
        listed = await client.get(f"/api/admin/keepers/forms?{query}", headers=ADMIN_HEADERS)
        assert (listed.status_code, (await listed.get_json())["field"]) == (400, field)


async def test_pending_forms_are_capped_and_a_pending_form_is_replaced(tmp_path):
    """Anonymous submitters cannot fill the disk: beyond the cap a new operator's form is a 503
    (checked before the costly proof), while an operator may still correct its own."""
    with Store.open(tmp_path / "db") as store:
        client = client_of(store, KeeperForms(store, SignedActions(store, CHAIN_ID, HUB), max_pending=1))
        assert (await client.post("/api/keepers/form", json=form())).status_code == 201
        second = form(OTHER, (99).to_bytes(32, "big"), operator=OTHER.address)
        assert (await client.post("/api/keepers/form", json=second)).status_code == 503
        corrected = await client.post("/api/keepers/form", json=form(nonce=2, name="Keeper Co. Ltd"))
        assert corrected.status_code == 201
        listed = await client.get("/api/admin/keepers/forms", headers=ADMIN_HEADERS)
        assert [(f["name"], f["nonce"]) for f in (await listed.get_json())["forms"]] == [
            ("Keeper Co. Ltd", 2)
        ]
    with Store.open(tmp_path / "db") as store:  # the count of pending forms survives a restart
        forms = KeeperForms(store, SignedActions(store, CHAIN_ID, HUB), max_pending=1)
        assert forms.pending == 1
        client = client_of(store, forms)
        assert (await client.post("/api/keepers/form", json=second)).status_code == 503


async def test_a_bls_key_is_one_operators(client):
    assert (await client.post("/api/keepers/form", json=form())).status_code == 201
    copied = await client.post("/api/keepers/form", json=form(OTHER, operator=OTHER.address))
    assert (copied.status_code, (await copied.get_json())["field"]) == (409, "$.blsPublicKey")


async def test_proofs_are_checked_within_a_budget(store):
    """Each proof costs ~0.7 s of CPU: past the budget a form is a 503 with Retry-After."""
    client = client_of(store, KeeperForms(store, SignedActions(store, CHAIN_ID, HUB), checks_per_minute=1))
    assert (await client.post("/api/keepers/form", json=form())).status_code == 201
    refused = await client.post(
        "/api/keepers/form", json=form(OTHER, (99).to_bytes(32, "big"), operator=OTHER.address)
    )
    assert refused.status_code == 503
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
