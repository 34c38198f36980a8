"""A script's web through the keeper's proxy, with the real sandbox and a real HTTP server on
127.0.0.1: the answers of allowed hosts, refusals of others, every answer recorded and replayed
for an attester with the server gone, and a performer that alters what it recorded voted down."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from eth_utils import keccak

from node.chain import TransactionSender
from node.content import ScriptCache, ScriptFetcher, script_cid
from node.keeper import ResultChecker, ScriptRunner, TaskExecutor
from node.sandbox import BwrapSandbox
from node.sandbox.proxy import MAX_EXCHANGES, MAX_RECORDED_BYTES, Exchange, exchanges_hash
from node.web import WebFetcher, WebLimits
from protocol import Assignment, AssignmentMessage, JobTerms, encode_calldata
from protocol.scripts import ChainBlock, ScriptCall, ScriptEvidence, run_script, script_input
from protocol.triggers import TriggerFire

from ..conftest import CHAIN_ID
from ..consensus_helpers import FIRE, JOB_FEE, JOB_OWNER
from ..web_server import Route, web_server
from .test_task_pipeline import World, make_world

FUNCTION = "incrementBy(uint256)"
PYTHON = b"""import json, triggerx_http
price = triggerx_http.get_json(PRICE)["usd"]
print(json.dumps([price]))
"""
NODE = b"""const web = require("triggerx_http");
web.getJson(PRICE).then((document) => console.log(JSON.stringify([document.usd])));
"""
OUTSIDE = b"""import json, triggerx_http
status, body = triggerx_http.get("http://elsewhere.example/price")
print(json.dumps({"shouldExecute": False, "reason": f"{status} {body.decode()}"}))
"""
FLOOD = b"""import json, triggerx_http
print(json.dumps({"shouldExecute": False, "reason": str([triggerx_http.get(PRICE)[0] for _ in range(12)])}))
"""


def with_url(source: bytes, url: str) -> bytes:
    return source.replace(b"PRICE", repr(url).encode())


def document(block_time: int = 1_767_225_600) -> bytes:
    call = ScriptCall(script_cid(b"x"), "python", FUNCTION)
    fire = TriggerFire("interval", {"everySeconds": 60}, float(block_time))
    return script_input(7, "0x" + "ab" * 20, call, fire, ChainBlock(CHAIN_ID, 1, block_time))


@pytest.fixture(scope="module")
def sandbox() -> BwrapSandbox:
    return BwrapSandbox()


@pytest.fixture
async def fetcher():
    web = WebFetcher(WebLimits(allow_private=True))  # the test server is on 127.0.0.1
    yield web
    await web.aclose()


@pytest.mark.parametrize(("language", "source"), [("python", PYTHON), ("javascript", NODE)])
async def test_a_script_gets_its_answer_through_the_proxy_and_an_attester_replays_it(
    sandbox, fetcher, language, source
):
    async with web_server() as server:
        server.routes["/price"] = Route(b'{"usd": 3000}')
        host = f"127.0.0.1:{server.port}"
        script = with_url(source, server.url("/price"))
        call = ScriptCall(script_cid(script), language, FUNCTION, (host,))
        recorded = await run_script(sandbox, script, call, document(), web=fetcher)
        assert recorded.status == "ok", recorded.note
        assert recorded.calldata == encode_calldata(FUNCTION, [3000])
        assert recorded.exchanges == (
            Exchange(server.url("/price"), 200, "application/json", b'{"usd": 3000}'),
        )
        assert server.requests == 1
    # The server is gone: the re-run reads the recording, fetches nothing, prints the same.
    replayed = await run_script(sandbox, script, call, document(), replay=recorded.exchanges)
    assert (replayed.output_hash, replayed.calldata) == (recorded.output_hash, recorded.calldata)
    assert replayed.exchanges == recorded.exchanges


async def test_a_host_outside_the_allow_list_is_refused_and_the_refusal_recorded(sandbox, fetcher):
    async with web_server() as server:
        call = ScriptCall(script_cid(OUTSIDE), "python", FUNCTION, (f"127.0.0.1:{server.port}",))
        outcome = await run_script(sandbox, OUTSIDE, call, document(), web=fetcher)
        assert server.requests == 0
    assert outcome.status == "ok", outcome.note
    assert outcome.note == "403 the host is not on the job's allow-list"
    assert [e.status for e in outcome.exchanges] == [403]
    # Without hosts, a script has no proxy at all: no socket, no web.
    without = await run_script(
        sandbox, OUTSIDE, ScriptCall(call.cid, "python", FUNCTION), document(), web=fetcher
    )
    assert without.failed
    assert without.exchanges == ()


async def test_a_run_makes_a_bounded_number_of_requests(sandbox, fetcher):
    async with web_server() as server:
        server.routes["/price"] = Route(b'{"usd": 1}')
        script = with_url(FLOOD, server.url("/price"))
        call = ScriptCall(script_cid(script), "python", FUNCTION, (f"127.0.0.1:{server.port}",))
        outcome = await run_script(sandbox, script, call, document(), web=fetcher)
        assert server.requests == MAX_EXCHANGES
    assert outcome.note == str([200] * MAX_EXCHANGES + [429] * (12 - MAX_EXCHANGES))
    assert len(outcome.exchanges) == MAX_EXCHANGES  # the 429s are not recorded: a replay gives them too


async def test_what_a_site_says_of_its_answer_is_recorded_as_a_media_type_alone(sandbox, fetcher):
    script = b"import json, triggerx_http\nprint(json.dumps([triggerx_http.get(URL)[0]]))"
    async with web_server() as server:
        for path, said, recorded in [
            ("/html", "Text/HTML; charset=utf-8", "text/html"),
            ("/long", "x" * 200, "application/octet-stream"),
        ]:
            server.routes[path] = Route(b"<p>", content_type=said)
            source = script.replace(b"URL", repr(server.url(path)).encode())
            call = ScriptCall(script_cid(source), "python", FUNCTION, (f"127.0.0.1:{server.port}",))
            outcome = await run_script(sandbox, source, call, document(), web=fetcher)
            assert [e.content_type for e in outcome.exchanges] == [recorded], outcome.note


@pytest.fixture
async def world(accounts, sender_for) -> World:
    return await make_world(accounts, sender_for)


async def test_a_performer_that_alters_a_recorded_answer_is_voted_down(world, accounts, sender_for, tmp_path):
    """The attesters replay the performer's recording: an answer altered after the run (to
    hide what the script read, say) makes the re-run print other arguments than those sent."""
    async with web_server() as server:
        server.routes["/price"] = Route(b'{"usd": 3000}')
        script = with_url(PYTHON, server.url("/price"))
        cache = ScriptCache(tmp_path / "scripts")
        cache.put(script_cid(script), script)
        web = WebFetcher(WebLimits(allow_private=True))
        runner = ScriptRunner(ScriptFetcher([], cache), BwrapSandbox(), web)
        call = ScriptCall(script_cid(script), "python", FUNCTION, (f"127.0.0.1:{server.port}",))
        network = world.network
        terms = JobTerms.dynamic_call(network.terms.target, FUNCTION, call.args_hash, 100_000, JOB_FEE,
                                      network.terms.trigger)  # fmt: skip
        await world.hub.transact(TransactionSender(world.hub.rpc, JOB_OWNER, CHAIN_ID), "registerJob", 41,
                                 terms.as_struct())  # fmt: skip
        latest = await world.hub.rpc.call("eth_getBlockByNumber", "latest", False)
        job_id = await world.hub.call("jobIdOf", JOB_OWNER.address, 41)
        assignment = Assignment(41, job_id, 1, accounts[2].address, int(latest["timestamp"], 16) + 300,
                                terms.hash(), keccak(b"interval tick"))  # fmt: skip
        signature = assignment.sign(accounts[0], CHAIN_ID, world.hub.address)
        order = AssignmentMessage(assignment, terms, signature, terms.selector, FIRE, script=call)
        executor = TaskExecutor(world.hub, sender_for(accounts[2]), dispatcher=accounts[0].address,
                                operator_id=0, chain_id=CHAIN_ID, scripts=runner)  # fmt: skip
        result, evidence = await executor.perform(order)
        await web.aclose()
    assert await world.counter.call("count") == 3000
    assert result.script_exchanges_hash == exchanges_hash(evidence.exchanges) != bytes(32)
    checker = ResultChecker(world.hub, scripts=runner)  # the server is gone: replay only
    assert (await checker.check(order, result, evidence)).approve
    [answer] = evidence.exchanges
    altered = (msgspec.structs.replace(answer, body=b'{"usd": 2999}'),)
    # Altered after the result was signed: not the recording the result names.
    verdict = await checker.check(order, result, ScriptEvidence(evidence.input, altered))
    assert verdict.reason == "the web answers that came with the result are not the ones it names"
    # Altered and named, with the output the script prints on it: the call sent (3000) is not
    # what that output gives (2999). Voted down.
    replayed = await runner.run(call, evidence.input, replay=altered)
    lie = dataclasses.replace(
        result, script_exchanges_hash=exchanges_hash(altered), script_output_hash=replayed.output_hash
    )
    verdict = await checker.check(order, lie, ScriptEvidence(evidence.input, altered))
    assert (verdict.approve, verdict.abstain) == (False, False)
    assert verdict.reason == "the call arguments differ from what the job's script gives"
    # Altered and named, with the honest output: the re-run prints otherwise, which proves
    # nothing (a script can tell runs apart): no vote, and nobody is paid.
    verdict = await checker.check(
        order,
        dataclasses.replace(lie, script_output_hash=result.script_output_hash),
        ScriptEvidence(evidence.input, altered),
    )
    assert (verdict.approve, verdict.abstain) == (False, True)


def test_a_recording_is_bounded_and_its_media_type_cannot_carry_headers():
    """A recording comes from the performer and goes back into the attesters' proxy responses."""
    good = Exchange("http://a/x", 200, "application/json", b"{}")
    decoder = msgspec.json.Decoder(Exchange)
    assert decoder.decode(msgspec.json.encode(good)) == good
    for bad in (
        msgspec.structs.replace(good, content_type="text/plain\r\nset-cookie: x=1"),
        msgspec.structs.replace(good, content_type="x" * 200),
        msgspec.structs.replace(good, status=100),  # no final answer: h11 would refuse to send it
        msgspec.structs.replace(good, body=b"x" * (MAX_RECORDED_BYTES + 1)),
    ):
        with pytest.raises(msgspec.ValidationError):
            decoder.decode(msgspec.json.encode(bad))
