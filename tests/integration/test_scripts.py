"""Scripts by CID: uploaded to the gateway, served as raw blocks, fetched and checked by keepers,
kept in a size-bounded cache; bytes that are not what their CID names are refused everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import trio
from hypercorn.trio import serve

import gateway.storage as storage_module
from gateway import GatewayStorage, ScriptSpec, server_config
from gateway.api import create_app
from node.content import (
    MAX_SCRIPT_BYTES,
    CidError,
    ScriptCache,
    ScriptFetcher,
    ScriptUnavailableError,
    parse_cid,
    script_cid,
)
from node.store import Store

from ..unit.test_job_spec import SPEC, body, parse
from ..web_server import Route, web_server

SCRIPT = b"import json, sys\nprint(json.dumps([1]))\n"


@pytest.fixture
async def gateway(tmp_path) -> AsyncIterator[str]:
    """The gateway API on a real hypercorn server: its base URL."""
    with Store.open(tmp_path / "db") as store:
        app = create_app(GatewayStorage(store))
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, app, server_config("127.0.0.1:0"))
            yield binds[0].replace("0.0.0.0", "127.0.0.1")
            nursery.cancel_scope.cancel()


async def test_upload_fetch_verify_round_trip(gateway, tmp_path):
    async with httpx.AsyncClient() as client:
        uploaded = await client.post(f"{gateway}/api/scripts", content=SCRIPT)
        assert uploaded.status_code == 201
        assert uploaded.json() == {"cid": script_cid(SCRIPT), "size": len(SCRIPT)}
        again = await client.post(f"{gateway}/api/scripts", content=SCRIPT)
        assert again.json()["cid"] == uploaded.json()["cid"]
        block = await client.get(f"{gateway}/ipfs/{script_cid(SCRIPT)}")
        assert (block.content, block.headers["content-type"]) == (SCRIPT, "application/vnd.ipld.raw")
    fetcher = ScriptFetcher([f"{gateway}/ipfs/"], ScriptCache(tmp_path / "cache"))
    assert await fetcher.get("ipfs://" + script_cid(SCRIPT)) == SCRIPT
    fetcher.sources = []  # from the cache now
    assert await fetcher.get(script_cid(SCRIPT)) == SCRIPT
    await fetcher.aclose()


async def test_the_gateway_refuses_what_is_not_a_script_or_not_a_cid(gateway):
    async with httpx.AsyncClient() as client:
        answers = [
            await client.post(f"{gateway}/api/scripts", content=b""),
            await client.post(f"{gateway}/api/scripts", content=b"x" * (MAX_SCRIPT_BYTES + 1)),
            await client.get(f"{gateway}/ipfs/not-a-cid"),
            await client.get(f"{gateway}/ipfs/{script_cid(b'never uploaded')}"),
        ]
    assert [a.status_code for a in answers] == [400, 413, 400, 404]
    assert all("error" in a.json() for a in answers)


async def test_bytes_that_are_not_their_cid_are_refused_and_another_source_is_tried(gateway, tmp_path):
    cid = script_cid(SCRIPT)
    async with web_server() as liar, httpx.AsyncClient() as client:
        liar.routes[f"/ipfs/{cid}"] = Route(
            b"import os; os.system('steal')", content_type="application/vnd.ipld.raw"
        )
        alone = ScriptFetcher([liar.url("/ipfs/")], ScriptCache(tmp_path / "a"))
        with pytest.raises(ScriptUnavailableError, match=f"the bytes served are not {cid}"):
            await alone.get(cid)
        await client.post(f"{gateway}/api/scripts", content=SCRIPT)
        both = ScriptFetcher([liar.url("/ipfs/"), f"{gateway}/ipfs/"], ScriptCache(tmp_path / "b"))
        assert await both.get(cid) == SCRIPT
        await alone.aclose()
        await both.aclose()


def test_the_cache_keeps_the_most_recently_used_within_its_bound(tmp_path):
    scripts = [bytes([n]) * 40 for n in range(3)]
    cache = ScriptCache(tmp_path, max_bytes=100)
    cache.put(script_cid(scripts[0]), scripts[0])
    cache.put(script_cid(scripts[1]), scripts[1])
    assert cache.get(script_cid(scripts[0])) == scripts[0]  # now the most recent
    cache.put(script_cid(scripts[2]), scripts[2])  # 120 bytes: the least recent goes
    assert cache.get(script_cid(scripts[1])) is None
    assert (cache.get(script_cid(scripts[0])), cache.size) == (scripts[0], 80)
    with pytest.raises(ValueError, match="the bytes are not"):
        cache.put(script_cid(scripts[0]), scripts[1])
    (tmp_path / script_cid(scripts[2])).write_bytes(b"changed on disk")
    assert cache.get(script_cid(scripts[2])) is None  # dropped, not served
    assert ScriptCache(tmp_path, max_bytes=100).get(script_cid(scripts[0])) == scripts[0]  # reopened


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "is not a CIDv1 of a raw block"),  # v0
        ("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "is not a CIDv1 of a raw block"),
        ("not-a-cid", "is not a CID"),
        ("b" + "a" * 200, "is not a CID"),
    ],
)
def test_only_raw_sha2_256_cids_name_scripts(text, problem):
    with pytest.raises(CidError, match=problem):
        parse_cid(text)
    assert parse_cid("ipfs://" + script_cid(SCRIPT)) == script_cid(SCRIPT)


def test_uploads_no_job_names_are_few_and_short_lived_and_a_jobs_script_stays(tmp_path, monkeypatch):
    """Anyone may upload, for free: unpinned uploads are bounded in number (the oldest go) and
    in time; a script a job names is pinned and stays."""
    monkeypatch.setattr(storage_module, "MAX_UNPINNED_SCRIPTS", 3)
    sources = [b"print('[%d]')" % n for n in range(6)]
    with Store.open(tmp_path / "db") as store:
        storage = GatewayStorage(store)
        storage.keep_script(script_cid(sources[0]), sources[0], 1_000.0)
        spec = msgspec.structs.replace(SPEC, args=[], script=ScriptSpec(script_cid(sources[0]), "python"))
        storage.create_job(parse(body(spec)), 1_001.0)  # names sources[0]: pinned
        for n, source in enumerate(sources[1:], start=1):
            storage.keep_script(script_cid(source), source, 1_000.0 + n)
        kept = {record.cid for record in storage.scripts.records()}
        assert kept == {script_cid(s) for s in (sources[0], *sources[3:])}  # 1 and 2 pushed out
        # A day later the unpinned ones are gone at the next upload; the pinned one stays.
        storage.keep_script(script_cid(b"later"), b"later", 1_000.0 + 86_400 + 10)
        kept = {record.cid for record in storage.scripts.records()}
        assert kept == {script_cid(sources[0]), script_cid(b"later")}
