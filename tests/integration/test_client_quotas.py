"""Per-client quotas of what anyone may ask for without a key (gateway.clients): the keeper
forms' proof checks, the faucet's claims and the script uploads, over the HTTP API (the Quart
test client, each request from a given peer address), a real store and, for the faucet, a real
anvil paying the claims. Each test is an attack from one client (or one operator) that must
leave everyone else's requests served."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from eth_account import Account
from py_ecc.bls.g2_primitives import G1_to_pubkey, G2_to_signature

import gateway.storage as storage_module
from gateway import GatewayStorage
from gateway.actions import SignedActions, gateway_domain
from gateway.api import AccessRules, create_app
from gateway.api_keys import ApiKeys
from gateway.faucet import Faucet
from gateway.keeper_forms import KeeperFormRequest, KeeperForms, keeper_form_message
from node.bls import choose_backend, prove_possession
from node.chain import TransactionSender
from node.content import script_cid
from node.mesh import identity_from_seed, peer_id_of
from node.store import Store

from ..conftest import CHAIN_ID
from ..gateway_helpers import JsonClient, at
from ..unit.test_bls_subgroups import curve_point_g1, curve_point_g2

HUB = "0x" + "5a" * 20  # the gateway domain's verifying contract; no chain is read for a form
ATTACKER, VICTIM = ("203.0.113.66", 4000), ("198.51.100.7", 4000)
HOUR = 3600.0


@pytest.fixture
def storage(tmp_path):
    with Store.open(tmp_path / "db") as store:
        yield GatewayStorage(store)


def client_with(storage: GatewayStorage, **services: Any) -> JsonClient:
    access = AccessRules(ApiKeys(storage.store), anonymous_per_minute=10_000)
    return JsonClient(create_app(storage, access=access, **services).test_client())


# ---- Keeper forms ------------------------------------------------------------------------------


def secret(n: int) -> bytes:
    return n.to_bytes(32, "big")


def keeper_form(operator: Any, bls: int, *, key: bytes | None = None, proof: bytes | None = None) -> dict:
    """A form of `operator`, signed by it, for the BLS secret `bls`; `key` and `proof` replace
    its public key and its proof of possession."""
    key = key or choose_backend().secret_to_public(secret(bls))
    peer = peer_id_of(identity_from_seed(bytes([bls % 256]) * 32))
    body: dict[str, Any] = {
        "operator": operator.address,
        "blsPublicKey": "0x" + key.hex(),
        "proofOfPossession": "0x" + (proof or prove_possession(secret(bls))).hex(),
        "peerId": peer,
        "nonce": 1,
        "deadline": int(time.time()) + 600,
        "signature": "0x" + "00" * 65,
    }
    message = keeper_form_message(msgspec.convert(body, KeeperFormRequest), gateway_domain(CHAIN_ID, HUB))
    return body | {"signature": "0x" + message.sign(operator).hex()}


def forms_client(storage: GatewayStorage, **budgets: int) -> JsonClient:
    forms = KeeperForms(storage.store, SignedActions(storage.store, CHAIN_ID, HUB), **budgets)
    return client_with(storage, keeper_forms=forms)


def account(n: int) -> Any:
    return Account.from_key(bytes([n]) * 32)


async def answer(response: Any) -> tuple[int, str | None]:
    return response.status_code, (await response.get_json()).get("field")


async def test_a_replayed_bad_proof_is_checked_once(storage):
    """The proof of another key (two valid points, so it takes a pairing to refuse): the first
    refusal is remembered with its signature, and the replays cost nothing from the budget."""
    client = forms_client(storage, checks_per_minute=2)
    bad = keeper_form(account(0x51), 7, proof=prove_possession(secret(8)))
    for peer in (ATTACKER, ATTACKER, ("192.0.2.1", 4000), ("192.0.2.2", 4000)):
        refused = await client.post("/api/keepers/form", json=bad, **at(peer))
        assert await answer(refused) == (400, "$.proofOfPossession")
    assert "refused before" in (await refused.get_json())["error"]
    honest = await client.post("/api/keepers/form", json=keeper_form(account(0x52), 4242), **at(VICTIM))
    assert honest.status_code == 201, await honest.get_json()


async def test_one_client_spends_only_its_share_of_the_checks(storage):
    client = forms_client(storage, checks_per_minute=10, checks_per_client=2)
    # IPv6 neighbours are one client: their /64.
    peers = [("2001:db8:1:2::1", 4000), ("2001:db8:1:2::2", 4000), ("2001:db8:1:2::3", 4000)]
    statuses = []
    for n, peer in enumerate(peers):  # throwaway operators, each with a proof of another key
        form = keeper_form(account(0x60 + n), 70 + n, proof=prove_possession(secret(90 + n)))
        statuses.append((await client.post("/api/keepers/form", json=form, **at(peer))).status_code)
    assert statuses == [400, 400, 429]
    honest = await client.post("/api/keepers/form", json=keeper_form(account(0x52), 4242), **at(VICTIM))
    assert honest.status_code == 201, await honest.get_json()


async def test_one_operator_spends_only_its_share_of_the_checks(storage):
    client = forms_client(storage, checks_per_minute=10, checks_per_operator=1)
    operator = account(0x53)
    first = keeper_form(operator, 11, proof=prove_possession(secret(12)))
    assert (await client.post("/api/keepers/form", json=first, **at(ATTACKER))).status_code == 400
    second = keeper_form(operator, 11, proof=prove_possession(secret(13)))  # another proof, same signature
    refused = await client.post("/api/keepers/form", json=second, **at(("192.0.2.9", 4000)))
    assert refused.status_code == 429
    assert operator.address in (await refused.get_json())["error"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"key": G1_to_pubkey(curve_point_g1())}, "$.blsPublicKey"),  # on the curve, not in G1
        ({"proof": G2_to_signature(curve_point_g2())}, "$.proofOfPossession"),  # not in G2
        ({"proof": b"\xc0" + bytes(95)}, "$.proofOfPossession"),  # the point at infinity
        ({"proof": b"\xab" * 96}, "$.proofOfPossession"),  # no point at all
    ],
)
async def test_points_outside_their_subgroup_are_refused_before_the_budget(storage, change, field):
    client = forms_client(storage, checks_per_minute=1)
    for n in range(3):  # each signed anew: a form never checked, refused for its points alone
        bad = keeper_form(account(0x70 + n), 7, **change)
        assert await answer(await client.post("/api/keepers/form", json=bad, **at(ATTACKER))) == (400, field)
    honest = await client.post("/api/keepers/form", json=keeper_form(account(0x52), 4242), **at(VICTIM))
    assert honest.status_code == 201, await honest.get_json()


# ---- Faucet ------------------------------------------------------------------------------------


async def test_a_client_makes_its_quota_of_claims_and_no_more(storage, rpc, accounts, sender_for):
    faucet = Faucet(storage.store, sender_for(accounts[1]), 10**15, HOUR, claims_per_client=2)
    client = client_with(storage, faucet=faucet)
    fresh = [account(0x80 + n).address for n in range(4)]
    for address, peer in zip(fresh[:2], [("2001:db8::1", 1), ("2001:db8::2", 2)], strict=True):
        claim = await client.post("/api/claim-fund", json={"address": address}, **at(peer))
        assert claim.status_code == 200
    third = await client.post("/api/claim-fund", json={"address": fresh[2]}, **at(("2001:db8::3", 3)))
    assert third.status_code == 429
    assert HOUR - 60 <= int(third.headers["Retry-After"]) <= HOUR
    assert int(await rpc.call("eth_getBalance", fresh[2], "latest"), 16) == 0
    other = await client.post("/api/claim-fund", json={"address": fresh[3]}, **at(VICTIM))
    assert other.status_code == 200


async def test_a_claim_that_paid_nothing_leaves_the_clients_quota(storage, rpc):
    broke = Account.from_key(b"\x3b" * 32)  # the gateway's account, empty: no transfer can be sent
    faucet = Faucet(storage.store, TransactionSender(rpc, broke, CHAIN_ID), 10**15, HOUR, claims_per_client=1)
    client = client_with(storage, faucet=faucet)
    claimant = account(0x90).address
    refused = await client.post("/api/claim-fund", json={"address": claimant}, **at(ATTACKER))
    assert refused.status_code == 503
    await rpc.call("anvil_setBalance", broke.address, hex(10**19))
    paid = await client.post("/api/claim-fund", json={"address": account(0x91).address}, **at(ATTACKER))
    assert paid.status_code == 200, await paid.get_json()


async def test_a_clients_quota_survives_a_restart(tmp_path, accounts, sender_for):
    for address, expected in ((account(0xA0).address, 200), (account(0xA1).address, 429)):
        with Store.open(tmp_path / "db") as store:
            faucet = Faucet(store, sender_for(accounts[1]), 10**15, HOUR, claims_per_client=1)
            client = client_with(GatewayStorage(store), faucet=faucet)
            claim = await client.post("/api/claim-fund", json={"address": address}, **at(ATTACKER))
            assert claim.status_code == expected


# ---- Script uploads ----------------------------------------------------------------------------


def kept(storage: GatewayStorage) -> set[str]:
    return {record.cid for record in storage.scripts.records()}


async def test_a_clients_upload_beyond_its_quota_pushes_out_its_own_oldest(storage):
    client = client_with(storage)
    victim = (await (await client.post("/api/scripts", data=b"print(1)", **at(VICTIM))).get_json())["cid"]
    sent = []
    for n in range(storage_module.UNPINNED_SCRIPTS_PER_CLIENT + 2):
        upload = await client.post("/api/scripts", data=b"#%d" % n, **at(("2001:db8::%x" % (n + 1), 4000)))
        sent.append((await upload.get_json())["cid"])
    assert kept(storage) == {victim, *sent[2:]}  # the /64's two oldest went
    assert {s.client for s in storage.scripts.records()} == {"198.51.100.7", "2001:db8::/64"}


def test_beyond_the_total_the_client_holding_most_loses_its_oldest(storage, monkeypatch):
    monkeypatch.setattr(storage_module, "MAX_UNPINNED_SCRIPTS", 4)
    uploads = [(b"a1", "a"), (b"b1", "b"), (b"a2", "a"), (b"a3", "a"), (b"b2", "b"), (b"c1", "c")]
    for second, (data, client) in enumerate(uploads):
        storage.keep_script(script_cid(data), data, 1_000.0 + second, client)
    # a held 3 when b2 came (a1 went); when c1 came, a and b held 2 each, b's oldest the older.
    assert kept(storage) == {script_cid(data) for data in (b"a2", b"a3", b"b2", b"c1")}


def test_bytes_uploaded_again_are_the_new_uploaders(storage, monkeypatch):
    monkeypatch.setattr(storage_module, "UNPINNED_SCRIPTS_PER_CLIENT", 2)
    storage.keep_script(script_cid(b"shared"), b"shared", 1_000.0, "a")
    storage.keep_script(script_cid(b"shared"), b"shared", 1_001.0, "b")
    for n in range(2):  # a's quota, full of its own: the shared script is b's now
        storage.keep_script(script_cid(b"a%d" % n), b"a%d" % n, 1_002.0 + n, "a")
    stored = storage.scripts.get(script_cid(b"shared"))
    assert stored is not None
    assert (stored.client, stored.uploaded_at) == ("b", 1_001.0)
