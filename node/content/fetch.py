"""Fetching a script by CID from HTTP sources that serve raw blocks, checked before use."""

from __future__ import annotations

import httpx
import trio

from node.content.cache import ScriptCache
from node.content.cid import MAX_SCRIPT_BYTES, matches, parse_cid


class ScriptUnavailableError(Exception):
    """No source gave the script (each source's reason is in the message)."""


class ScriptFetcher:
    """Gets scripts from the cache, else from `sources` in order: URLs that a CID is appended
    to (the gateway's `http://host:port/ipfs/`, a public IPFS gateway's `https://…/ipfs/`),
    each asked for the raw block (trustless: the bytes must hash to the CID)."""

    def __init__(self, sources: list[str], cache: ScriptCache, *, timeout: float = 10.0) -> None:
        self.sources, self.cache, self.timeout = sources, cache, timeout
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()

    async def get(self, cid: str) -> bytes:
        """The script `cid` names; ScriptUnavailableError when no source gives its bytes."""
        cid = parse_cid(cid)
        cached = self.cache.get(cid)
        if cached is not None:
            return cached
        problems = []
        for source in self.sources:
            url = source + cid
            try:
                with trio.fail_after(self.timeout):
                    data = await self._fetch(url)
            except (httpx.HTTPError, trio.TooSlowError, ValueError) as error:
                problems.append(f"{url}: {type(error).__name__}: {error}")
                continue
            if not matches(cid, data):
                problems.append(f"{url}: the bytes served are not {cid}")
                continue
            self.cache.put(cid, data)
            return data
        raise ScriptUnavailableError(f"script {cid}: " + ("; ".join(problems) or "no sources"))

    async def _fetch(self, url: str) -> bytes:
        headers = {"accept": "application/vnd.ipld.raw", "accept-encoding": "identity"}
        async with self._http.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > MAX_SCRIPT_BYTES:
                    raise ValueError(f"more than {MAX_SCRIPT_BYTES} bytes")
            return bytes(body)
