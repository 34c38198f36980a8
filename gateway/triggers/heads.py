"""A chain's new heads as a wake-up hint for the pollers that read it (logs and conditions).

The pollers read the chain with their own requests whatever happens here: a notification only
makes the next poll come at once instead of at the end of its interval, so a block is read
as soon as it exists without polling faster. A lost notification (a dropped connection, a
node that sends none) costs at most one poll interval. No log is taken from a subscription:
anvil 1.7.1 delivered 1 of ~24 logs under load.
"""

from __future__ import annotations

import logging

import trio

from node.chain import ChainError, subscribe

log = logging.getLogger("triggerx.gateway")


class HeadSignal:
    """Wakes every waiter when chain `ws_url` announces a new head (never, without a URL)."""

    def __init__(self, ws_url: str | None = None) -> None:
        self.ws_url = ws_url
        self.heads = 0  # notifications received
        self._next = trio.Event()

    async def wait(self, timeout: float) -> None:
        """Return at the next new head, or after `timeout` seconds, whichever comes first."""
        announced = self._next
        with trio.move_on_after(timeout):
            await announced.wait()

    def announce(self) -> None:
        """Wake every waiter (a new head)."""
        self.heads += 1
        self._next.set()
        self._next = trio.Event()

    async def run(self) -> None:
        """Follow the node's `newHeads` until cancelled (nothing to do without a URL)."""
        if self.ws_url is None:
            return
        while True:
            try:
                async with subscribe(self.ws_url, "newHeads") as heads:
                    async for _ in heads:
                        self.announce()
            except ChainError as error:  # the pollers go on at their interval meanwhile
                log.warning("new heads of %s: %s; retrying in 30 s", self.ws_url, error)
                await trio.sleep(30)
