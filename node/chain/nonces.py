"""Nonces for one account, handed out to concurrent senders with no gap and no collision."""

from __future__ import annotations

import trio

from node.chain.rpc import RpcClient


class NonceManager:
    """Reserves nonces for `address`.

    The first reservation reads the node's pending transaction count; later ones count
    up locally, so concurrent senders never wait on the node for a nonce. A sender whose
    transaction never reached the node gives its nonce back with `release`, and the next
    reservation reuses it, so one failed send cannot leave a gap that stalls every later
    transaction. When the node says a nonce is already used (another wallet shares the
    key), `resync` moves past it.
    """

    def __init__(self, rpc: RpcClient, address: str) -> None:
        self.rpc = rpc
        self.address = address
        self._next: int | None = None
        self._released: set[int] = set()
        self._lock = trio.Lock()

    async def reserve(self) -> int:
        """The lowest nonce that is neither pending on the node nor reserved here."""
        async with self._lock:
            if self._next is None:
                self._next = await self._pending_count()
            if self._released:
                nonce = min(self._released)
                self._released.remove(nonce)
                return nonce
            nonce = self._next
            self._next += 1
            return nonce

    def release(self, nonce: int) -> None:
        """Give back `nonce`: its transaction did not reach the node."""
        if self._next is None or nonce >= self._next:
            return
        self._released.add(nonce)
        while self._next - 1 in self._released:
            self._next -= 1
            self._released.remove(self._next)

    async def resync(self) -> None:
        """Skip nonces the node already counts as used (sent by someone else)."""
        async with self._lock:
            pending = await self._pending_count()
            self._next = pending if self._next is None else max(self._next, pending)
            self._released = {n for n in self._released if n >= pending}

    async def _pending_count(self) -> int:
        return int(await self.rpc.call("eth_getTransactionCount", self.address, "pending"), 16)
