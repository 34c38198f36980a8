"""The condition-trigger service on anvil and LevelDB: rising edges fire once each, trees of
and / or / not, stale feeds, cooldowns, a restart that neither repeats nor loses an edge, and
sources that fail without stalling the others (web sources served from 127.0.0.1)."""

from __future__ import annotations

import msgspec
import pytest
import trio

from gateway import ConditionState, GatewayStorage, JobRecord, TaskLedger
from gateway.api import create_app
from gateway.triggers import ConditionTriggers, WatchedChain, WebPoller
from node.chain import deploy, load_artifact
from node.mesh import Metrics
from node.store import Store
from node.web import JsonValues, WebLimits, WebSourceError, fetch
from protocol.triggers import Readers
from protocol.triggers.condition import KIND, ConditionProgram, ReadingEvidence
from protocol.triggers.condition_sources import parse_source

from ..gateway_helpers import DyingLedger, ProcessKilledError, watching_job
from ..web_server import Route, web_server

CHAIN = 31337
ETHER = 10**18


@pytest.fixture
def storage(tmp_path):
    with Store.open(tmp_path / "gateway.db") as store:
        yield GatewayStorage(store)


@pytest.fixture
async def web():
    async with JsonValues(WebLimits(timeout=1.0, allow_private=True)) as values:
        yield WebPoller(values, Metrics())


@pytest.fixture
async def feed(accounts, sender_for):
    """ETH/USD at 2000, 8 decimals."""
    return await deploy(sender_for(accounts[0]), load_artifact("PriceFeed"), 8, "ETH/USD", 2000 * 10**8)


def condition_job(*values: str, when: str, job_id: int = 1, **extra) -> JobRecord:
    """Job `job_id`: a condition job on chain CHAIN read with no confirmations."""
    schedule = {"chainId": CHAIN, "values": list(values), "when": when, "confirmations": 0, **extra}
    return msgspec.structs.replace(watching_job("condition", schedule), id=job_id)


def program_of(job: JobRecord) -> ConditionProgram:
    return ConditionProgram.of(KIND.decode(job.spec.schedule))


def service(storage, rpc, web, ledger=None) -> ConditionTriggers:
    """The service as a (re)started gateway builds it: every stored job scheduled, states read."""
    chains = [WatchedChain(CHAIN, rpc, 2, 0.05)]
    triggers = ConditionTriggers(storage, ledger or TaskLedger(storage), lambda task_id: None, chains, web)
    for job in storage.jobs.records():
        triggers.schedule(job)
    return triggers


async def set_balance(rpc, address: str, ether: int) -> None:
    await rpc.call("anvil_setBalance", address, hex(ether * ETHER))
    await rpc.call("anvil_mine", "0x1")


def state_of(storage, job_id: int = 1) -> ConditionState:
    return storage.condition_states.get(job_id) or ConditionState(job_id=job_id)


async def test_a_balance_that_crosses_stays_and_crosses_again_fires_once_per_rising_edge(
    rpc, accounts, storage, web
):
    holder = accounts[5].address
    storage.jobs.put(condition_job(f"b = balance {holder}", when="b >= 100"))
    triggers = service(storage, rpc, web)
    fired = []
    for ether in (50, 150, 150, 150, 10, 200):
        await set_balance(rpc, holder, ether)
        fired.append(len(await triggers.poll(CHAIN)))
    assert fired == [0, 1, 0, 0, 0, 1]
    job = storage.jobs.get(1)
    readers = Readers({CHAIN: rpc})
    for task, ether in zip(storage.tasks.scan(limit=10).items, (150, 200), strict=True):
        evidence = ReadingEvidence.decode(task.trigger_detail, program_of(job))
        assert evidence.values == (ether * ETHER,)
        block = await rpc.call("eth_getBlockByNumber", hex(evidence.block_number), False)
        assert (task.fire_at, "0x" + evidence.block_hash.hex()) == (
            int(block["timestamp"], 16),
            block["hash"],
        )
        fire = task.fire_of(job)
        assert KIND.check(fire, KIND.trigger_hash(KIND.decode(job.spec.schedule)), task.fire_at) is None
        assert await KIND.check_on_chain(KIND.decode(fire.spec), fire, readers, evidence.block_number) is None
    # Restarted while the condition holds: neither the same head nor a new block fires it.
    again = service(storage, rpc, web)
    assert await again.poll(CHAIN) == []
    await rpc.call("anvil_mine", "0x1")
    assert await again.poll(CHAIN) == []


async def test_a_writer_killed_at_a_rising_edge_fires_it_once_after_the_restart(rpc, accounts, storage, web):
    holder = accounts[5].address
    storage.jobs.put(condition_job(f"b = balance {holder}", when="b >= 100"))
    dying = service(storage, rpc, web, DyingLedger(storage, dies_at=1))
    await set_balance(rpc, holder, 150)
    with pytest.raises(ProcessKilledError):
        await dying.poll(CHAIN)
    assert (storage.tasks.scan(limit=10).items, state_of(storage).holds) == ([], False)
    assert len(await service(storage, rpc, web).poll(CHAIN)) == 1
    assert await service(storage, rpc, web).poll(CHAIN) == []


@pytest.mark.parametrize(
    ("price", "ether", "holds"),
    [(2000, 0, False), (1200, 5, False), (2000, 5, True), (3500, 0, True), (1200, 0, False), (900, 5, True)],
)
async def test_and_or_not_trees(rpc, accounts, sender_for, storage, web, feed, price, ether, holds):
    holder = accounts[5].address
    when = "not (p between 1000 and 1500) and (b > 1 or p > 3000)"
    storage.jobs.put(condition_job(f"p = feed {feed.address}", f"b = balance {holder}", when=when))
    await feed.transact(sender_for(accounts[0]), "setAnswer", price * 10**8)
    await set_balance(rpc, holder, ether)
    assert len(await service(storage, rpc, web).poll(CHAIN)) == int(holds)
    assert state_of(storage).holds is holds


async def test_a_stale_feed_does_not_fire_and_says_why(rpc, accounts, sender_for, storage, web, feed):
    storage.jobs.put(condition_job(f"p = feed {feed.address}", when="p > 1000", maxFeedAgeSeconds=600))
    triggers = service(storage, rpc, web)
    await rpc.call("evm_increaseTime", hex(601))
    await rpc.call("anvil_mine", "0x1")
    assert await triggers.poll(CHAIN) == []
    assert "the feed's answer is 601 s old, more than the job's 600 s" in state_of(storage).error
    await feed.transact(sender_for(accounts[0]), "setAnswer", 2100 * 10**8)  # fresh again
    assert len(await triggers.poll(CHAIN)) == 1
    assert state_of(storage).error is None


async def test_erc20_balances_and_view_calls_with_a_path(rpc, accounts, sender_for, storage, web, feed):
    minter, holder = sender_for(accounts[0]), accounts[5].address
    token = await deploy(minter, load_artifact("TestToken"), "T", "T")
    round_data = "latestRoundData() returns (uint80, int256, uint256, uint256, uint80)[1] decimals 8"
    storage.jobs.put(condition_job(f"held = erc20 {token.address} {holder}", when="held >= 2.5"))
    storage.jobs.put(
        condition_job(f"answer = call {feed.address} {round_data}", when="answer < 1999.5", job_id=2)
    )
    triggers = service(storage, rpc, web)
    await token.transact(minter, "mint", holder, 2 * ETHER)
    assert await triggers.poll(CHAIN) == []
    await token.transact(minter, "mint", holder, ETHER // 2)
    await feed.transact(minter, "setAnswer", 1999 * 10**8)
    fired = await triggers.poll(CHAIN)
    assert sorted(storage.tasks.get(t).job_id for t in fired) == [1, 2]


async def test_a_cooldown_swallows_the_rising_edges_inside_it(rpc, accounts, storage, web):
    holder = accounts[5].address
    storage.jobs.put(condition_job(f"b = balance {holder}", when="b >= 100", cooldownSeconds=1000))
    triggers = service(storage, rpc, web)
    fired = []
    for ether, later in ((150, 0), (10, 0), (150, 0), (10, 1000), (150, 0)):
        await rpc.call("evm_increaseTime", hex(later))
        await set_balance(rpc, holder, ether)
        fired.append(len(await triggers.poll(CHAIN)))
    assert fired == [1, 0, 0, 0, 1]


async def test_a_failing_source_shows_on_its_job_and_stalls_no_other(rpc, accounts, storage, web, feed):
    holder = accounts[5].address
    storage.jobs.put(condition_job(f"x = call {feed.address} missing() returns (uint256)", when="x > 0"))
    storage.jobs.put(condition_job(f"b = balance {holder}", when="b >= 100", job_id=2))
    triggers = service(storage, rpc, web)
    await set_balance(rpc, holder, 150)
    [task_id] = await triggers.poll(CHAIN)
    assert storage.tasks.get(task_id).job_id == 2
    assert f"{feed.address}.missing() failed" in state_of(storage).error
    assert web.metrics.get("condition_source_errors_total", source="chain") == 1
    client = create_app(storage).test_client()
    shown = (await (await client.get("/api/jobs/id/1")).get_json())["job"]
    assert shown["condition"]["error"] == state_of(storage).error
    assert shown["condition"]["errorSince"] > 0


async def test_web_sources_that_misbehave_each_fail_clearly_while_a_good_one_fires(rpc, storage, web):
    routes = {
        "/good": Route(b'{"data": [{"price": "1834.25"}]}'),
        "/slow": Route(b'{"data": [{"price": 1}]}', delay=3),
        "/malformed": Route(b'{"data": [{"price": 1}'),
        "/huge": Route(stream_bytes=50 * 2**20),
        "/error": Route(b'{"error": "down"}', status=500),
        "/text": Route(b'{"data": [{"price": 1}]}', content_type="text/plain"),
        "/deep": Route(b"[" * 100 + b"]" * 100),
        "/missing": Route(b'{"data": []}'),
        "/escapes": Route(b'"' + b'\\"' * 32_000),  # an unclosed string of escapes: no backtracking
        "/exponent": Route(b'{"data": [{"price": 1e999999999}]}'),
    }
    expected = {
        "/slow": "no complete answer within 1 s",
        "/malformed": "the body is not JSON",
        "/huge": "the body is larger than 65536 bytes",
        "/error": "HTTP 500",
        "/text": "content-type text/plain, not application/json",
        "/deep": "nests deeper than 64 levels",
        "/missing": "the document has nothing at $.data[0].price",
        "/escapes": "the body is not JSON",
        "/exponent": "1E+999999999 is out of range",
    }
    async with web_server() as server:
        server.routes.update(routes)
        for job_id, path in enumerate(routes, start=1):
            line = f"v = http {server.url(path)} $.data[0].price decimals 2"
            storage.jobs.put(condition_job(line, when="v > 1800", job_id=job_id))
        triggers = service(storage, rpc, web)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(web.run)
            with trio.fail_after(10):
                while any(state_of(storage, n).error is None for n in range(2, len(routes) + 1)):
                    await rpc.call("anvil_mine", "0x1")
                    await triggers.poll(CHAIN)
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
    [good] = storage.tasks.scan(limit=10).items
    assert good.job_id == 1
    assert ReadingEvidence.decode(good.trigger_detail, program_of(storage.jobs.get(1))).values == (183425,)
    for job_id, path in enumerate(routes, start=1):
        if path in expected:
            assert expected[path] in state_of(storage, job_id).error, path


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "0.0.0.0", "[::ffff:127.0.0.1]", "[::ffff:0:127.0.0.1]", "[64:ff9b::7f00:1]"],
)
async def test_a_public_node_does_not_fetch_private_addresses(host):
    async with web_server() as server, JsonValues() as public:
        server.routes["/good"] = Route(b'{"price": 1}')
        with pytest.raises(WebSourceError, match="is a private or local address"):
            await public.value(server.url("/good").replace("127.0.0.1", host), ("price",))
        assert server.requests == 0


async def test_a_public_name_is_fetched_from_the_address_checked(monkeypatch):
    async def resolved_to_loopback(host: str, port: int) -> str:  # DNS only; the socket is real
        return "127.0.0.1"

    monkeypatch.setattr(fetch, "_public_address", resolved_to_loopback)
    async with web_server() as server, JsonValues() as public:
        server.routes["/eth"] = Route(b'{"price": 7}')
        url = server.url("/eth").replace("127.0.0.1", "prices.example")
        assert str(await public.value(url, ("price",))) == "7"
    assert f"host: prices.example:{server.port}".encode() in server.last_request.lower()


async def test_fetches_ignore_the_environments_proxy(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    async with web_server() as server, JsonValues(WebLimits(allow_private=True, timeout=2)) as values:
        server.routes["/good"] = Route(b'{"price": 1.5}')
        assert str(await values.value(server.url("/good"), ("price",))) == "1.5"


async def test_urls_that_are_not_urls_fail_as_a_sources_error():
    async with JsonValues(WebLimits(allow_private=True, timeout=2)) as values:
        for url, problem in [
            ("http://010.8.8.8/x", "Invalid IPv4 address"),
            ("http://a.b:99999/", "not a URL"),
        ]:
            with pytest.raises(WebSourceError, match=problem):
                await values.value(url, ("a",))


async def test_a_view_that_burns_all_its_gas_fails_alone(rpc, accounts, sender_for, storage, web):
    burner = await deploy(sender_for(accounts[0]), load_artifact("Burner"))
    storage.jobs.put(condition_job(f"x = call {burner.address} burn() returns (uint256)", when="x > 0"))
    storage.jobs.put(
        condition_job(f"y = call {burner.address} answer() returns (uint256)", when="y == 42", job_id=2)
    )
    [task_id] = await service(storage, rpc, web).poll(CHAIN)
    assert storage.tasks.get(task_id).job_id == 2
    assert f"{burner.address}.burn() failed" in state_of(storage).error  # out of gas at the cap


async def test_an_owner_whose_urls_are_slow_delays_only_its_own_values():
    async with (
        web_server() as server,
        JsonValues(WebLimits(allow_private=True, timeout=1, concurrency=3)) as values,
    ):
        server.routes.update({f"/slow{n}": Route(b'{"v": 1}', delay=3) for n in range(6)})
        server.routes["/good"] = Route(b'{"v": 2}')
        poller, finished = WebPoller(values, Metrics()), []
        fetch = poller.fetch

        async def recorded(source):
            await fetch(source)
            finished.append(source.url)

        poller.fetch = recorded
        slow = [parse_source(f"v = http {server.url(f'/slow{n}')} $.v", 0).source for n in range(6)]
        good = parse_source(f"v = http {server.url('/good')} $.v", 0).source
        poller.watch(1, slow, 30, owner="0x" + "66" * 20)  # first in line, six slow URLs
        poller.watch(2, [good], 30, owner="0x" + "77" * 20)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(poller.run)
            with trio.fail_after(30):
                while len(finished) < 7:  # noqa: ASYNC110 - waiting on another task's progress
                    await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
    assert finished[0] == good.url  # not behind the six slow ones
    assert poller.reading(good).raw == 2 * 10**18
