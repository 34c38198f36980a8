"""Receipt lookups shared by every waiter of a client: one batched request in flight at a time.

A thousand transactions waiting for receipts must not mean a thousand polls: each poll
is an HTTP round trip that costs the node and our own event loop. Waiters register the
hashes they want; whoever polls first asks for all of them in one batch, and everyone
who arrives while that poll is in flight takes their answer from it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import trio

from node.chain.rpc import RpcClient


@dataclass
class _Round:
    hashes: frozenset[str]
    done: trio.Event = field(default_factory=trio.Event)
    receipts: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


class ReceiptPoller:
    """Looks up transaction receipts for many concurrent waiters with coalesced batch requests.

    Args:
        rpc: the node client.
        batch_limit: most lookups in one JSON-RPC batch (public nodes cap batch sizes).
    """

    def __init__(self, rpc: RpcClient, *, batch_limit: int = 100) -> None:
        self.rpc = rpc
        self.batch_limit = batch_limit
        self._wanted: Counter[str] = Counter()
        self._round: _Round | None = None

    def watch(self, tx_hash: str) -> None:
        """Include `tx_hash` in every poll until `forget`."""
        self._wanted[tx_hash] += 1

    def forget(self, tx_hash: str) -> None:
        """Stop asking for `tx_hash` on behalf of one watcher."""
        self._wanted[tx_hash] -= 1
        if self._wanted[tx_hash] <= 0:
            del self._wanted[tx_hash]

    async def lookup(self, hashes: list[str]) -> dict[str, Any] | None:
        """The raw receipt of the first of `hashes` that is mined, or None if none is yet.

        Every hash must be watched. Joins the poll in flight when it covers all of
        `hashes`; otherwise waits for it and leads the next one.
        """
        while self._round is not None:
            current = self._round
            await current.done.wait()
            if current.hashes.issuperset(hashes):
                return self._first(current, hashes)
        current = _Round(frozenset(self._wanted))
        self._round = current
        try:
            ordered = sorted(current.hashes)
            for start in range(0, len(ordered), self.batch_limit):
                chunk = ordered[start : start + self.batch_limit]
                found = await self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in chunk])
                current.receipts.update((h, r) for h, r in zip(chunk, found, strict=True) if r is not None)
        except BaseException as error:
            current.error = error
            raise
        finally:
            self._round = None
            current.done.set()
        return self._first(current, hashes)

    @staticmethod
    def _first(current: _Round, hashes: list[str]) -> dict[str, Any] | None:
        if current.error is not None:
            raise current.error
        return next((current.receipts[h] for h in hashes if h in current.receipts), None)
