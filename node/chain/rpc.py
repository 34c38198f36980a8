"""JSON-RPC over HTTP with httpx under trio: single calls, batches, bounded retries.

Only transport failures are retried (connection refused or reset, timeouts, HTTP 429/5xx):
a JSON-RPC error is an answer, and retrying it would only repeat it. Resending a signed
transaction is safe, because a node answers a duplicate with "already known".
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from typing import Any

import httpx
import trio

from node.chain.abi import RevertDecoder
from node.chain.errors import ChainError, RpcError, TransportError

Call = tuple[str, Sequence[Any]]

_RETRIABLE_STATUS = {429, 500, 502, 503, 504}


class RpcClient:
    """A JSON-RPC client for one node URL.

    Args:
        url: the node's HTTP endpoint.
        timeout: seconds allowed for each HTTP attempt.
        retries: how many times a transport failure is retried before `TransportError`.
        backoff: the first retry delay in seconds; it doubles (with jitter) up to `max_backoff`.
        revert_decoder: turns revert data into readable `RevertError`s; by default it knows
            `Error(string)` and `Panic(uint256)` only.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        revert_decoder: RevertDecoder | None = None,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.revert_decoder = revert_decoder or RevertDecoder()
        self._ids = itertools.count(1)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self._http = httpx.AsyncClient(timeout=timeout, limits=limits)

    async def __aenter__(self) -> RpcClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled HTTP connections."""
        await self._http.aclose()

    async def call(self, method: str, *params: Any) -> Any:
        """Call `method` and return its `result`; raise `RpcError`, `RevertError` or `TransportError`."""
        request_id = next(self._ids)
        reply = await self._post({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        if not isinstance(reply, dict):
            raise TransportError(self.url, f"{method}: expected a JSON object, got {reply!r:.200}", 1)
        return self._result(method, reply)

    async def batch(self, calls: Sequence[Call], *, return_exceptions: bool = False) -> list[Any]:
        """Send `calls` in one HTTP request; results come back in the order of `calls`.

        A failed call raises its error, unless `return_exceptions` is set, in which case
        the error takes that call's place in the list.
        """
        if not calls:
            return []
        first_id = next(self._ids)
        ids = [first_id, *(next(self._ids) for _ in calls[1:])]
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        replies = await self._post(payload)
        if not isinstance(replies, list):
            # Some nodes answer a whole batch with one error object.
            if isinstance(replies, dict) and "error" in replies:
                raise self._error("batch", replies["error"])
            raise TransportError(self.url, f"batch: expected a JSON array, got {replies!r:.200}", 1)
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        results: list[Any] = []
        for request_id, (method, _) in zip(ids, calls, strict=True):
            reply = by_id.get(request_id)
            try:
                if reply is None:
                    raise TransportError(self.url, f"batch: no answer for {method} (id {request_id})", 1)
                results.append(self._result(method, reply))
            except ChainError as error:
                if not return_exceptions:
                    raise
                results.append(error)
        return results

    def _result(self, method: str, reply: dict[str, Any]) -> Any:
        if "error" in reply:
            raise self._error(method, reply["error"])
        if "result" not in reply:
            raise TransportError(self.url, f"{method}: answer has neither result nor error", 1)
        return reply["result"]

    def _error(self, method: str, error: Any) -> ChainError:
        if not isinstance(error, dict):
            return RpcError(method, -1, str(error))
        code, message, data = error.get("code", -1), str(error.get("message", "")), error.get("data")
        if isinstance(data, dict):  # some nodes nest it: {"data": {"data": "0x..."}}
            data = data.get("data")
        reverted = code == 3 or "revert" in message.lower()
        if reverted and (data is None or (isinstance(data, str) and data.startswith("0x"))):
            return self.revert_decoder.decode(bytes.fromhex((data or "0x")[2:]))
        return RpcError(method, code, message, data)

    async def _post(self, payload: dict[str, Any] | list[dict[str, Any]]) -> Any:
        body = json.dumps(payload, separators=(",", ":"))
        headers = {"content-type": "application/json"}
        delay = self.backoff
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.post(self.url, content=body, headers=headers)
                if response.status_code in _RETRIABLE_STATUS:
                    problem = f"HTTP {response.status_code}"
                else:
                    if response.status_code >= 400 and not response.content.startswith((b"{", b"[")):
                        raise TransportError(self.url, f"HTTP {response.status_code}", attempt)
                    return response.json()
            except httpx.TransportError as error:
                problem = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            except json.JSONDecodeError:
                problem = "the answer is not JSON"
            if attempt > self.retries:
                raise TransportError(self.url, problem, attempt)
            await trio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.max_backoff)
