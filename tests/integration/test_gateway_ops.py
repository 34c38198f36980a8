"""The gateway's faucet, health and metrics over the HTTP API: a real anvil pays the claims and
answers the health probe (or is stopped, or is a port nobody answers on), a real store keeps
the claims across a restart, and prometheus_client's parser reads /metrics."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from eth_account import Account
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from gateway import GatewayStorage, TaskLedger
from gateway.actions import SignedActions
from gateway.api import create_app
from gateway.faucet import Faucet
from gateway.health import KeeperStatus
from gateway.keeper_forms import KeeperForms
from gateway.metrics import GatewayMetrics
from gateway.service_health import ChainProbe, GatewayHealth, HealthAnswer, ServiceHealth, Services
from node.chain import Anvil, RpcClient, TransactionSender, free_port
from node.mesh import Metrics
from node.metrics import MESH_DROPS
from node.store import Store

from ..conftest import CHAIN_ID
from ..gateway_helpers import JsonClient, watching_job

AMOUNT = 10**17
HOUR = 3600.0
CLAIMANTS = [Account.from_key(bytes([0x40 + i]) * 32).address for i in range(4)]


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "db") as store:
        yield store


def client_with(store: Store, **services: Any) -> JsonClient:
    return JsonClient(create_app(GatewayStorage(store), **services).test_client())


async def balance(rpc: RpcClient, address: str) -> int:
    return int(await rpc.call("eth_getBalance", address, "latest"), 16)


async def silent_node(nursery: trio.Nursery) -> str:
    """The URL of a port that accepts connections and never answers (a hung chain node)."""

    async def hold(stream: trio.SocketStream) -> None:
        async with stream:
            await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")  # accepting from here on
    nursery.start_soon(trio.serve_listeners, hold, listeners)
    return f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


# ---- Faucet -----------------------------------------------------------------------------------


async def test_a_claim_pays_and_a_second_one_in_the_period_waits(store, rpc, accounts, sender_for):
    client = client_with(store, faucet=Faucet(store, sender_for(accounts[1]), AMOUNT, HOUR))
    claimant = CLAIMANTS[0]
    before = await balance(rpc, claimant)
    response = await client.post("/api/claim-fund", json={"address": claimant.lower()})
    assert response.status_code == 200, await response.get_json()
    answer = await response.get_json()
    assert (answer["address"], answer["amount"]) == (claimant, str(AMOUNT))
    receipt = await rpc.call("eth_getTransactionReceipt", answer["txHash"])
    assert receipt["status"] == "0x1"
    assert receipt["from"] == accounts[1].address.lower()
    assert int(receipt["blockNumber"], 16) == answer["blockNumber"]
    assert await balance(rpc, claimant) == before + AMOUNT

    again = await client.post("/api/claim-fund", json={"address": claimant})
    assert again.status_code == 429
    assert HOUR - 60 <= int(again.headers["Retry-After"]) <= HOUR
    assert await balance(rpc, claimant) == before + AMOUNT


async def test_a_claim_survives_a_restart(tmp_path, rpc, accounts, sender_for):
    for expected in (200, 429):
        with Store.open(tmp_path / "db") as store:
            client = client_with(store, faucet=Faucet(store, sender_for(accounts[1]), AMOUNT, HOUR))
            response = await client.post("/api/claim-fund", json={"address": CLAIMANTS[0]})
            assert response.status_code == expected


async def test_a_transfer_that_is_not_sent_leaves_no_claim(store, rpc):
    broke = Account.from_key(b"\x3b" * 32)  # the gateway's account, empty: the transfer cannot be sent
    client = client_with(store, faucet=Faucet(store, TransactionSender(rpc, broke, CHAIN_ID), AMOUNT, HOUR))
    refused = await client.post("/api/claim-fund", json={"address": CLAIMANTS[0]})
    assert refused.status_code == 503
    assert (await refused.get_json())["error"].startswith("the transfer could not be sent")
    await rpc.call("anvil_setBalance", broke.address, hex(10**19))
    paid = await client.post("/api/claim-fund", json={"address": CLAIMANTS[0]})
    assert paid.status_code == 200


async def test_a_claim_is_recorded_before_its_transfer_is_sent(store, accounts, nursery):
    """A crash once the transfer is sent must not allow a second claim: the claim is in the store
    before the chain hears of it, and cleared when the transfer could not be sent."""
    async with RpcClient(await silent_node(nursery), timeout=0.5, retries=0) as hung:
        faucet = Faucet(store, TransactionSender(hung, accounts[1], CHAIN_ID), AMOUNT, HOUR)
        client = client_with(store, faucet=faucet)
        answers: list[int] = []

        async def claim() -> None:
            answers.append((await client.post("/api/claim-fund", json={"address": CLAIMANTS[0]})).status_code)

        async with trio.open_nursery() as claims:
            claims.start_soon(claim)
            await trio.testing.wait_all_tasks_blocked()  # the transfer is on its way to the node
            recorded = faucet.claims.get(CLAIMANTS[0])
            assert recorded is not None
            assert recorded.tx_hash is None
        assert answers == [503]
        assert faucet.claims.get(CLAIMANTS[0]) is None


async def test_a_faucet_of_zero_wei_is_off(store, rpc, accounts, sender_for):
    client = client_with(store, faucet=Faucet(store, sender_for(accounts[1]), 0, HOUR))
    response = await client.post("/api/claim-fund", json={"address": CLAIMANTS[0]})
    assert (response.status_code, await response.get_json()) == (503, {"error": "this network has no faucet"})


async def test_there_is_no_faucet_on_a_mainnet_whatever_the_config_says(store):
    with Anvil(chain_id=1) as mainnet:
        async with RpcClient(mainnet.http_url) as rpc:
            sender = TransactionSender(rpc, Account.from_key(mainnet.private_keys[1]), 1)
            client = client_with(store, faucet=Faucet(store, sender, AMOUNT, HOUR))
            before = await balance(rpc, CLAIMANTS[0])
            response = await client.post("/api/claim-fund", json={"address": CLAIMANTS[0]})
            assert response.status_code == 503
            assert "chain 1" in (await response.get_json())["error"]
            assert await balance(rpc, CLAIMANTS[0]) == before


async def test_claims_per_period_are_capped_for_everyone(store, rpc, accounts, sender_for):
    """Callers with many addresses cannot drain the gateway's account: each claim here comes
    from a client of its own (within its quota), and the third is over the period's cap."""
    client = client_with(
        store, faucet=Faucet(store, sender_for(accounts[1]), AMOUNT, HOUR, max_claims_per_period=2)
    )
    peers = [{"scope_base": {"client": (f"192.0.2.{n}", 4000)}} for n in range(1, 4)]
    for claimant, peer in zip(CLAIMANTS[:2], peers, strict=False):
        assert (await client.post("/api/claim-fund", json={"address": claimant}, **peer)).status_code == 200
    third = await client.post("/api/claim-fund", json={"address": CLAIMANTS[2]}, **peers[2])
    assert third.status_code == 429
    assert "the faucet gave its 2 claims" in (await third.get_json())["error"]
    assert HOUR - 60 <= int(third.headers["Retry-After"]) <= HOUR
    assert await balance(rpc, CLAIMANTS[2]) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": "0x12"}, "$.address"),
        ({"address": "0x" + CLAIMANTS[0][2:].swapcase()}, "$.address"),  # a wrong checksum
        ({"address": "0x" + "00" * 20}, "$.address"),
        ({"address": CLAIMANTS[0], "amount": "1"}, "$"),
        ({}, "$"),
    ],
)
async def test_a_bad_claim_is_a_400_naming_the_field(store, accounts, sender_for, body, field):
    client = client_with(store, faucet=Faucet(store, sender_for(accounts[1]), AMOUNT, HOUR))
    response = await client.post("/api/claim-fund", json=body)
    assert (response.status_code, (await response.get_json()).get("field")) == (400, field)


async def test_the_faucet_does_not_pay_its_own_account(store, accounts, sender_for):
    client = client_with(store, faucet=Faucet(store, sender_for(accounts[1]), AMOUNT, HOUR))
    response = await client.post("/api/claim-fund", json={"address": accounts[1].address})
    assert (response.status_code, (await response.get_json())["field"]) == (400, "$.address")


async def test_claims_and_the_dispatchers_transactions_share_one_nonce_sequence(
    store, rpc, accounts, sender_for
):
    """The faucet sends with the operator account's sender, which the dispatcher uses at the
    same time: no nonce is used twice, none is skipped."""
    sender = sender_for(accounts[1])
    client = client_with(store, faucet=Faucet(store, sender, AMOUNT, HOUR))
    statuses: list[int] = []

    async def claim(address: str) -> None:
        # Each from a client of its own: one client makes only a few claims a period.
        peer = {"scope_base": {"client": (f"192.0.2.{CLAIMANTS.index(address) + 1}", 4000)}}
        statuses.append((await client.post("/api/claim-fund", json={"address": address}, **peer)).status_code)

    start = int(await rpc.call("eth_getTransactionCount", accounts[1].address, "latest"), 16)
    async with trio.open_nursery() as nursery:
        for address in CLAIMANTS:
            nursery.start_soon(claim, address)
            nursery.start_soon(sender.transact, accounts[2].address, b"", 1)  # the dispatcher's own
    assert statuses == [200] * len(CLAIMANTS)
    assert [await balance(rpc, address) for address in CLAIMANTS] == [AMOUNT] * len(CLAIMANTS)
    end = int(await rpc.call("eth_getTransactionCount", accounts[1].address, "latest"), 16)
    assert end - start == 2 * len(CLAIMANTS)


# ---- Health -----------------------------------------------------------------------------------


def keeper(address: str, online: bool) -> KeeperStatus:
    return KeeperStatus(address=address, peer_id="p", online=online, last_seen=0.0, uptime=1.0)


async def health_of(client: JsonClient) -> tuple[int, HealthAnswer]:
    """GET /api/health, decoded strictly: the same schema at 200 and at 503."""
    response = await client.get("/api/health")
    return response.status_code, msgspec.json.decode(await response.get_data(), type=HealthAnswer)


async def test_health_is_200_with_a_live_chain_and_running_services(store, rpc, nursery):
    probe = ChainProbe(rpc, CHAIN_ID)
    await nursery.start(probe.run)
    services = Services()
    nursery.start_soon(services.run, "scheduler", trio.sleep_forever)
    await trio.testing.wait_all_tasks_blocked()
    storage = GatewayStorage(store)
    health = GatewayHealth(storage, probe, services, lambda: [keeper("a", True), keeper("b", False)])
    client = JsonClient(create_app(storage, health=health.snapshot).test_client())
    status, answer = await health_of(client)
    assert (status, answer.ok) == (200, True)
    assert answer.chain.chain_id == CHAIN_ID
    assert answer.chain.head == int(await rpc.call("eth_blockNumber"), 16)
    assert answer.chain.lag_seconds is not None
    assert answer.chain.lag_seconds >= 0
    assert {name: s.ok for name, s in answer.services.items()} == {"scheduler": True, "store": True}
    assert answer.keepers_online == 1


@pytest.mark.parametrize("node", ["closed port", "silent"])
async def test_health_is_503_within_its_timeout_when_the_chain_does_not_answer(store, nursery, node):
    url = f"http://127.0.0.1:{free_port()}" if node == "closed port" else await silent_node(nursery)
    async with RpcClient(url) as dead:
        probe = ChainProbe(dead, CHAIN_ID, timeout=1.0)
        started = trio.current_time()
        reading = await probe.read()
        assert trio.current_time() - started < 1.5
        assert not reading.ok
        assert reading.detail
        storage = GatewayStorage(store)
        client = JsonClient(create_app(storage, health=GatewayHealth(storage, probe).snapshot).test_client())
        status, answer = await health_of(client)
        assert (status, answer.ok, answer.chain.ok, answer.chain.head) == (503, False, False, None)
        assert answer.services["store"].ok


async def test_health_turns_503_when_the_chain_stops_or_is_another(store, anvil, rpc):
    probe = ChainProbe(rpc, CHAIN_ID, timeout=2.0)
    storage = GatewayStorage(store)
    client = JsonClient(create_app(storage, health=GatewayHealth(storage, probe).snapshot).test_client())
    assert (await probe.read()).ok
    assert (await health_of(client))[0] == 200
    probe.read_at = trio.current_time() - 60  # the probe stopped reading: its last reading is stale
    status, answer = await health_of(client)
    assert (status, answer.chain.detail) == (503, "no reading for 60 s")
    anvil.stop()
    assert not (await probe.read()).ok
    assert (await health_of(client))[0] == 503

    with Anvil(chain_id=CHAIN_ID + 1) as other:
        async with RpcClient(other.http_url) as wrong:
            reading = await ChainProbe(wrong, CHAIN_ID).read()
            assert (reading.ok, reading.detail) == (False, f"the node serves chain {CHAIN_ID + 1}")


async def test_a_stopped_service_makes_the_gateway_unhealthy(store, rpc):
    services = Services()
    await services.run("decisions", trio.lowlevel.checkpoint)  # returned: stopped
    with pytest.raises(ValueError, match="broken"):
        await services.run("dispatcher", _fail)
    probe = ChainProbe(rpc, CHAIN_ID)
    await probe.read()
    storage = GatewayStorage(store)
    client = JsonClient(
        create_app(storage, health=GatewayHealth(storage, probe, services).snapshot).test_client()
    )
    status, answer = await health_of(client)
    assert (status, answer.chain.ok) == (503, True)
    assert answer.services["decisions"] == ServiceHealth(ok=False, detail="stopped")
    assert answer.services["dispatcher"].detail == "stopped: ValueError"


async def _fail() -> None:
    raise ValueError("broken")


# ---- Metrics ----------------------------------------------------------------------------------


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def requests(route: str, status: str, method: str = "GET") -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = {"route": route, "method": method, "status": status}
    return "triggerx_gateway_http_requests_total", tuple(sorted(labels.items()))


async def test_metrics_count_requests_by_route_template(store):
    metrics = GatewayMetrics(keepers_online=lambda: 2)
    metrics.node.export_counts(Metrics(), MESH_DROPS)  # as the role does with its mesh's
    client = client_with(store, metrics=metrics)
    assert (await client.get("/api/jobs/id/7")).status_code == 404
    assert (await client.get("/api/tasks/id/8")).status_code == 404
    assert (await client.get("/api/no/such/path/123")).status_code == 404
    assert (await client.open("/api/jobs", method="BREW")).status_code == 405
    first = await client.get("/metrics")
    assert first.status_code == 200
    assert first.headers["Content-Type"] == CONTENT_TYPE_LATEST
    text = (await first.get_data()).decode()
    samples = parse(text)
    assert samples[requests("/api/jobs/id/{id}", "4xx")] == 1
    assert samples[requests("/api/tasks/id/{id}", "4xx")] == 1
    assert samples[requests("unmatched", "4xx")] == 1
    assert samples[requests("unmatched", "4xx", "other")] == 1
    assert "/api/no/such" not in text
    assert "BREW" not in text
    assert samples[("triggerx_gateway_keepers_online", ())] == 2
    assert samples[("triggerx_mesh_messages_dropped_total", (("reason", "flood"),))] == 0
    second = parse((await (await client.get("/metrics")).get_data()).decode())
    assert second[requests("/metrics", "2xx")] == 1  # the first scrape, counted once it was answered


async def test_metrics_count_jobs_and_tasks_by_trigger_kind(store, nursery):
    storage = GatewayStorage(store)
    ledger = TaskLedger(storage)
    job = watching_job("interval", {"everySeconds": 60})
    storage.jobs.put(job)
    metrics = GatewayMetrics()
    await nursery.start(metrics.count_tasks, ledger, storage)
    metrics.job_created(job)
    first = ledger.create(job, 60.0)
    ledger.create(job, 120.0)
    ledger.fail(first.id, "no keeper answered")
    await trio.testing.wait_all_tasks_blocked()
    samples = parse(metrics.node.render().decode())
    assert samples[("triggerx_gateway_jobs_created_total", (("kind", "interval"),))] == 1
    assert samples[("triggerx_gateway_tasks_created_total", (("kind", "interval"),))] == 2
    assert samples[("triggerx_gateway_tasks_created_total", (("kind", "cron"),))] == 0
    finished = "triggerx_gateway_tasks_finished_total"
    assert samples[(finished, (("kind", "interval"), ("status", "failed")))] == 1
    assert samples[(finished, (("kind", "interval"), ("status", "completed")))] == 0

    # More events at once than the counter's stream holds: the ledger drops the stream (and the
    # event it could not queue: the counter's waiting reader took the first, 4,096 were queued);
    # the counter subscribes again and goes on counting.
    for n in range(4098):
        ledger.create(job, 180.0 + n)
    await trio.testing.wait_all_tasks_blocked()
    ledger.create(job, 1.0e6)
    await trio.testing.wait_all_tasks_blocked()
    samples = parse(metrics.node.render().decode())
    assert samples[("triggerx_gateway_task_event_streams_dropped_total", ())] == 1
    assert samples[("triggerx_gateway_tasks_created_total", (("kind", "interval"),))] == 2 + 4097 + 1


async def test_the_openapi_document_has_every_operation(store, rpc, accounts, sender_for):
    storage = GatewayStorage(store)
    probe = ChainProbe(rpc, CHAIN_ID)
    app = create_app(
        storage,
        keeper_forms=KeeperForms(store, SignedActions(store, CHAIN_ID, "0x" + "5a" * 20)),
        faucet=Faucet(store, sender_for(accounts[1]), AMOUNT, HOUR),
        health=GatewayHealth(storage, probe).snapshot,
        metrics=GatewayMetrics(),
    )
    document = await (await app.test_client().get("/openapi.json")).get_json()
    paths = document["paths"]
    assert {
        "/api/keepers/form",
        "/api/admin/keepers/forms",
        "/api/claim-fund",
        "/api/health",
        "/metrics",
    } <= set(paths)
    assert list(paths["/metrics"]["get"]["responses"]["200"]["content"]) == [CONTENT_TYPE_LATEST]
    health = paths["/api/health"]["get"]["responses"]
    assert health["503"]["content"] == health["200"]["content"]
    assert health["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HealthAnswer"
    }
