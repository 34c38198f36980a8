"""The faucet of a devnet or testnet: `POST /api/claim-fund` sends `[gateway] faucet_wei` from the
gateway's operator account to an address, once per address per `faucet_period_seconds`.

Off when the amount is 0, and always on a known mainnet (MAINNETS), whatever the config says.
A claim is written to the store before its transfer is sent, so a crash after sending cannot
give an address a second claim; a transfer that is not sent, or reverts, clears it. At most
`max_claims_per_period` claims count in any period, for all addresses together (callers with
many addresses must not drain the account), and at most `claims_per_client` of them come from
one client (gateway.clients: an IPv4 address or an IPv6 /64), so that one client with fresh
addresses cannot take the period's budget from everyone else; a claim is checked against both
and recorded, with its client, in one batch. One transfer is under way at a time: its nonce
comes from the operator account's one TransactionSender, shared with the dispatcher's
transactions, and a stuck transfer is replaced with higher fees while it is awaited, so it
cannot hold up those behind it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec
import trio

from node.chain import ChainError, TransactionSender
from node.chain.errors import NonceConsumedError
from node.store import FAUCET, Index, KeyPart, Store, Table

log = logging.getLogger(__name__)

ZERO_ADDRESS = "0x" + "00" * 20
MAINNETS = frozenset(
    {1, 10, 25, 56, 100, 137, 250, 324, 1101, 1284, 5000, 8453, 34443, 42161, 42170, 43114, 59144, 81457}
    | {534352, 7777777}
)
"""Chains whose coins are worth something (Ethereum, its main rollups and sidechains, and the
large EVM chains): no faucet there, whatever the config says."""


class FaucetClaim(msgspec.Struct, rename="camel", kw_only=True):
    """An address's last claim: when, the transfer's hash once sent, and the client that asked
    (gateway.clients; "" for claims stored before clients were kept)."""

    address: str
    claimed_at: float
    tx_hash: str | None = None
    client: str = ""


@dataclass(frozen=True)
class Payout:
    """A sent transfer: its hash (the mined version's, if it was replaced), the wei it sends,
    and its block (None if it was not mined within the wait)."""

    tx_hash: str
    amount: int
    block_number: int | None


class FaucetRefusedError(Exception):
    """A claim is refused: answered with `status`; `retry_after` seconds, when waiting helps."""

    def __init__(self, status: int, problem: str, field: str | None = None, retry_after: int | None = None):
        super().__init__(problem)
        self.status, self.problem, self.field, self.retry_after = status, problem, field, retry_after


class Faucet:
    """Sends `amount` wei with `sender` to each address that claims, once per `period` seconds.

    Args:
        store: where the claims are kept (the `faucet/` space).
        sender: the gateway operator account's sender (the dispatcher's too: one nonce sequence).
        amount: wei per claim; 0 turns the faucet off.
        period: seconds between two claims of one address.
        max_claims_per_period: claims in any `period`, for all addresses together.
        claims_per_client: claims in any `period` from one client (gateway.clients).
        max_waiting: claims waiting for the one under way, at most (more are a 503).
        wait_seconds: how long a claim waits for the one under way before a 503.
        receipt_timeout: how long a transfer is awaited; after it, the hash is answered unmined.
    """

    def __init__(
        self,
        store: Store,
        sender: TransactionSender,
        amount: int,
        period: float,
        *,
        max_claims_per_period: int = 1000,
        claims_per_client: int = 2,
        max_waiting: int = 16,
        wait_seconds: float = 30.0,
        receipt_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.claims = Table(
            store,
            FaucetClaim,
            FAUCET,
            key=lambda c: c.address,
            indexes=[Index("at", _claimed_ms), Index("client", lambda c: c.client)],
        )
        self.sender, self.amount, self.period = sender, amount, period
        self.max_claims, self.max_waiting = max_claims_per_period, max_waiting
        self.claims_per_client = claims_per_client
        self.wait_seconds, self.receipt_timeout, self.clock = wait_seconds, receipt_timeout, clock
        self._lock = trio.Lock()

    @property
    def closed(self) -> str | None:
        """Why this gateway gives nothing (None: it does)."""
        if self.sender.chain_id in MAINNETS:
            return f"no faucet on chain {self.sender.chain_id}: its coins are worth something"
        return "this network has no faucet" if self.amount == 0 else None

    async def claim(self, address: str, client: str) -> Payout:
        """Send `address` (checksummed) its claim, asked for by `client` (gateway.clients.client_of
        of the request's peer); FaucetRefusedError says why not."""
        if (reason := self.closed) is not None:
            raise FaucetRefusedError(503, reason)
        if address in (ZERO_ADDRESS, self.sender.address):
            raise FaucetRefusedError(400, "not an address the faucet pays", "$.address")
        self._check_claimant(address, client, self.clock())  # before queueing too: a refusal costs no wait
        acquired = False
        if self._lock.statistics().tasks_waiting < self.max_waiting:
            with trio.move_on_after(self.wait_seconds):
                await self._lock.acquire()
                acquired = True
        if not acquired:
            raise FaucetRefusedError(503, "the faucet is busy; try again", retry_after=10)
        try:
            return await self._pay(address, client)
        finally:
            self._lock.release()

    async def _pay(self, address: str, client: str) -> Payout:
        self._record(address, client, self.clock())
        # Shielded: once recorded, the claim is either sent and its hash kept, or cleared;
        # a request cancelled half-way must leave neither a claim without a transfer nor a
        # reserved nonce unsent (it would stall every later transaction of the account).
        with trio.CancelScope(shield=True):
            try:
                pending = await self.sender.send(address, b"", self.amount)
            except Exception as error:  # ChainError mostly; whatever it is, nothing was paid
                self.claims.delete(address)
                log.warning("faucet: a transfer to %s was not sent: %s", address, error)
                raise FaucetRefusedError(503, f"the transfer could not be sent: {error}") from None
            self._sent(address, pending.tx_hash)
        try:
            receipt = await self.sender.wait(pending, timeout=self.receipt_timeout, replace_after=5.0)
        except NonceConsumedError:
            self.claims.delete(address)
            raise FaucetRefusedError(
                503, "another transaction took the transfer's nonce; claim again"
            ) from None
        except ChainError as error:  # not mined in time, or the node stopped answering: it may still be
            log.warning("faucet: transfer %s to %s not seen mined: %s", pending.tx_hash, address, error)
            return Payout(pending.tx_hash, self.amount, None)
        if not receipt.status:
            self.claims.delete(address)
            raise FaucetRefusedError(503, f"the transfer {receipt.tx_hash} reverted")
        if receipt.tx_hash != pending.hashes[0]:
            self._sent(address, receipt.tx_hash)
        return Payout(receipt.tx_hash, self.amount, receipt.block_number)

    def _record(self, address: str, client: str, now: float) -> None:
        """Write `address`'s claim by `client` at `now`, or refuse it (429) while its period,
        the client's quota or the faucet's budget lasts; claims whose period is over are
        dropped in the same batch. Nothing awaits from the checks to the write."""
        self._check_claimant(address, client, now)
        cutoff = int((now - self.period) * 1000)
        expired: list[KeyPart] = []
        live: list[int] = []  # when each claim of the current period was made (ms), oldest first
        for claimed_ms, key in self.claims.index_entries("at"):
            if int(claimed_ms) <= cutoff:
                expired.append(key)
            else:
                live.append(int(claimed_ms))
        if len(live) >= self.max_claims:
            wait = _seconds(live[0] / 1000 + self.period - now)
            raise FaucetRefusedError(
                429,
                f"the faucet gave its {self.max_claims} claims for now; retry in {wait} s",
                retry_after=wait,
            )
        with self.store.batch() as batch:
            for key in expired:
                self.claims.delete(key, batch=batch)
            self.claims.put(FaucetClaim(address=address, claimed_at=now, client=client), batch=batch)

    def _check_claimant(self, address: str, client: str, now: float) -> None:
        """A 429 while `address`'s last claim is within its period, or `client` made its
        `claims_per_client` claims within the period."""
        stored = self.claims.get(address)
        if stored is not None and now < stored.claimed_at + self.period:
            wait = _seconds(stored.claimed_at + self.period - now)
            problem = f"{address} claimed within the last {self.period:g} s; retry in {wait} s"
            raise FaucetRefusedError(429, problem, retry_after=wait)
        made = self._claims_of(client, now)
        if len(made) >= self.claims_per_client:
            wait = _seconds(made[0] + self.period - now)
            problem = (
                f"{len(made)} claims came from your address in the last {self.period:g} s, as many "
                f"as one client may make; retry in {wait} s"
            )
            raise FaucetRefusedError(429, problem, retry_after=wait)

    def _claims_of(self, client: str, now: float) -> list[float]:
        """When `client`'s claims within the period were made, oldest first."""
        made: list[float] = []
        cursor = None
        while True:  # a few pages at most: the client's claims of one period, and some expired
            page = self.claims.by_index("client", client, limit=100, after=cursor)
            made += [c.claimed_at for c in page.items if c.claimed_at > now - self.period]
            if page.cursor is None:
                return sorted(made)
            cursor = page.cursor

    def _sent(self, address: str, tx_hash: str) -> None:
        claim = self.claims.get(address)
        if claim is not None:
            self.claims.put(msgspec.structs.replace(claim, tx_hash=tx_hash))


def _claimed_ms(claim: FaucetClaim) -> int:
    return int(claim.claimed_at * 1000)


def _seconds(span: float) -> int:
    """`span` as whole seconds for Retry-After: rounded up, at least 1."""
    return max(1, math.ceil(span))
