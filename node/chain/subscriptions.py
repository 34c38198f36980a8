"""`eth_subscribe` over WebSocket that outlives the connection: reconnect, then resubscribe.

    async with subscribe(ws_url, "newHeads") as heads:
        async for head in heads:
            ...

A notification sent while the connection was down is lost: a consumer that must not
miss logs keeps a checkpoint and fills the gap with `eth_getLogs` after `reconnects`
grows (the event scheduler does).
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from node.chain.errors import ChainError, RpcError

# A garbled message is treated like a broken connection: start afresh.
_CONNECTION_ERRORS = (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError, ValueError)


class SubscriptionLostError(ChainError):
    """The node stayed unreachable for longer than the subscription's `give_up_after`."""


class Subscription:
    """An async iterator over the `result` of each notification of one subscription."""

    def __init__(self, receive: trio.MemoryReceiveChannel[Any]) -> None:
        self._receive = receive
        self._connections = 0
        self._connected = trio.Event()

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established and the subscription renewed."""
        return max(self._connections - 1, 0)

    async def wait_connected(self, times: int = 1) -> None:
        """Return once the subscription has been established `times` times in all."""
        while self._connections < times:
            await self._connected.wait()

    def _established(self) -> None:
        self._connections += 1
        self._connected.set()
        self._connected = trio.Event()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
        if isinstance(item, BaseException):
            raise item
        return item


@asynccontextmanager
async def subscribe(
    url: str,
    kind: str,
    params: Mapping[str, Any] | None = None,
    *,
    connect_timeout: float = 5.0,
    idle_ping_after: float = 10.0,
    max_backoff: float = 2.0,
    give_up_after: float = 300.0,
    buffer: int = 1024,
) -> AsyncIterator[Subscription]:
    """Subscribe to `kind` (`newHeads`, `logs`, ...) with optional `params` (a logs filter).

    The connection is checked with a WebSocket ping after `idle_ping_after` quiet seconds.
    Reconnection backs off exponentially up to `max_backoff`; after `give_up_after` seconds
    without a connection the iterator raises `SubscriptionLostError`. A slow consumer slows the
    reader (up to `buffer` notifications wait) rather than losing notifications.
    """
    send, receive = trio.open_memory_channel[Any](buffer)
    subscription = Subscription(receive)
    request = [kind] if params is None else [kind, dict(params)]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            _maintain,
            url,
            request,
            send,
            subscription,
            connect_timeout,
            idle_ping_after,
            max_backoff,
            give_up_after,
        )
        try:
            yield subscription
        finally:
            nursery.cancel_scope.cancel()


async def _maintain(
    url: str,
    request: list[Any],
    send: trio.MemorySendChannel[Any],
    subscription: Subscription,
    connect_timeout: float,
    idle_ping_after: float,
    max_backoff: float,
    give_up_after: float,
) -> None:
    ids = itertools.count(1)
    delay = 0.05
    down_since: float | None = None
    async with send:
        while True:
            try:
                async with open_websocket_url(
                    url, connect_timeout=connect_timeout, disconnect_timeout=1.0
                ) as ws:
                    sub_id = await _subscribe(ws, next(ids), request, connect_timeout)
                    subscription._established()
                    down_since, delay = None, 0.05
                    await _forward(ws, sub_id, send, idle_ping_after)
            except _CONNECTION_ERRORS:
                pass
            except RpcError as error:
                await send.send(error)  # the node refused the subscription: nothing to retry
                return
            now = trio.current_time()
            down_since = now if down_since is None else down_since
            if now - down_since >= give_up_after:
                await send.send(SubscriptionLostError(f"{url}: unreachable for {give_up_after:.0f}s"))
                return
            await trio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, max_backoff)


async def _subscribe(ws: WebSocketConnection, request_id: int, request: list[Any], timeout: float) -> str:
    await ws.send_message(
        json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "eth_subscribe", "params": request})
    )
    with trio.fail_after(timeout):
        while True:
            reply = json.loads(await ws.get_message())
            if reply.get("id") != request_id:
                continue
            if "error" in reply:
                error = reply["error"]
                raise RpcError("eth_subscribe", error.get("code", -1), error.get("message", ""))
            return reply["result"]


async def _forward(
    ws: WebSocketConnection, sub_id: str, send: trio.MemorySendChannel[Any], idle_ping_after: float
) -> None:
    while True:
        with trio.move_on_after(idle_ping_after) as idle:
            message = json.loads(await ws.get_message())
        if idle.cancelled_caught:
            with trio.fail_after(idle_ping_after):
                await ws.ping()
            continue
        params = message.get("params") or {}
        if message.get("method") == "eth_subscription" and params.get("subscription") == sub_id:
            await send.send(params["result"])
