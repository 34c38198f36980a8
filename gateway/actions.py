"""Signed actions: what a caller signs to act for an address at this gateway (set the address's
email, pause a job), and the nonces that make each signature count once (gateway/api/guide.md,
"Acting for an address").

Actions are EIP-712 typed data in the **gateway domain**: name `TriggerX Gateway`, version `1`,
the network's chain id and, as verifying contract, the TaskExecutionHub's address, so a
signature is good at the gateways of one deployment and nowhere on chain. Every action type
ends with `uint64 nonce, uint64 deadline`:

- the deadline (unix seconds) must be in the future and at most MAX_DEADLINE_AHEAD away, so a
  leaked signature soon stops working;
- the nonce must be larger than the last nonce the address used in this domain, whatever the
  action type. The last nonce (table `sched/nonce`) is written in the batch that applies the
  action, so a signature is applied once, across concurrent requests and restarts.

    verified = await actions.verify(actions.message(SET_EMAIL, values), signature, address, now)
    with store.batch() as batch:
        actions.consume(verified, batch)  # 409 if another request used the nonce meanwhile
        ...  # the action's own writes
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import trio

from node.chain import Domain, Fields, TypedMessage, checksum_address
from node.store import SCHEDULES, Batch, Store, Table

GATEWAY_DOMAIN_NAME = "TriggerX Gateway"
GATEWAY_DOMAIN_VERSION = "1"
MAX_DEADLINE_AHEAD = 3600  # seconds: how far ahead a deadline may be
MAX_NONCE = 2**63 - 1
"""The largest nonce the gateway takes (signed as uint64; request schemas cannot bound an integer
beyond int64, and nonces counted in unix milliseconds stay far below)."""
_NONCE_AND_DEADLINE: Fields = [{"name": "nonce", "type": "uint64"}, {"name": "deadline", "type": "uint64"}]


def gateway_domain(chain_id: int, hub: str) -> Domain:
    """The gateway's EIP-712 domain on chain `chain_id`, whose TaskExecutionHub is at `hub`."""
    return Domain(GATEWAY_DOMAIN_NAME, GATEWAY_DOMAIN_VERSION, chain_id, hub)


@dataclass(frozen=True)
class ActionType:
    """An EIP-712 action type: its name and its own fields, which `nonce` and `deadline` follow."""

    name: str
    own_fields: Fields

    @property
    def fields(self) -> Fields:
        """Every field, as signed."""
        return [*self.own_fields, *_NONCE_AND_DEADLINE]


SET_EMAIL = ActionType(
    "SetEmail", [{"name": "user", "type": "address"}, {"name": "emailHash", "type": "bytes32"}]
)
"""`SetEmail(address user, bytes32 emailHash, uint64 nonce, uint64 deadline)`."""
UPDATE_JOB = ActionType(
    "UpdateJob", [{"name": "jobId", "type": "uint256"}, {"name": "paused", "type": "bool"}]
)
"""`UpdateJob(uint256 jobId, bool paused, uint64 nonce, uint64 deadline)`."""


class ActionRefusedError(Exception):
    """A signed action is refused: `status` 400 (a bad field, `field` names it) or 409 (replayed)."""

    def __init__(self, status: int, reason: str, field: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


@dataclass(frozen=True)
class VerifiedAction:
    """An action whose signature, deadline and nonce checked out: `signer` may use `nonce`."""

    signer: str
    nonce: int


class LastNonce(msgspec.Struct, rename="camel", kw_only=True):
    """The largest nonce `address` has used in the gateway domain."""

    address: str
    nonce: int


class SignedActions:
    """Checks actions signed in the gateway domain of (`chain_id`, `hub`), and keeps each
    address's last nonce in `store`. Signer recovery (~1 ms) runs in worker threads, a few at a
    time, never on the event loop."""

    def __init__(self, store: Store, chain_id: int, hub: str) -> None:
        self.store = store
        self.domain = gateway_domain(chain_id, checksum_address(hub))
        self.nonces = Table(store, LastNonce, SCHEDULES.child("nonce"), key=lambda n: n.address)
        self._workers = trio.CapacityLimiter(4)

    def message(self, action: ActionType, values: dict[str, Any]) -> TypedMessage:
        """The typed message of `action` with `values` (every field, `nonce` and `deadline` too)."""
        return TypedMessage(self.domain, action.name, action.fields, values)

    def smallest_nonce(self, address: str) -> int:
        """The smallest nonce `address` may sign next."""
        last = self.nonces.get(address)
        return 0 if last is None else last.nonce + 1

    async def verify(
        self, message: TypedMessage, signature: bytes, signer_expected: str, now: float
    ) -> VerifiedAction:
        """Check that `signer_expected` (checksummed) signed `message` with a deadline after
        `now` and a nonce not used yet; its `nonce` and `deadline` are read from the message,
        so they cannot differ from what was signed. ActionRefusedError otherwise."""
        nonce, deadline = message.message["nonce"], message.message["deadline"]
        if deadline <= now:
            raise ActionRefusedError(400, f"deadline {deadline} has passed (now {int(now)})", "$.deadline")
        if deadline > now + MAX_DEADLINE_AHEAD:
            limit = int(now) + MAX_DEADLINE_AHEAD
            raise ActionRefusedError(
                400,
                f"deadline {deadline} is more than {MAX_DEADLINE_AHEAD} s ahead (at most {limit})",
                "$.deadline",
            )
        self._check_nonce(signer_expected, nonce)  # before the recovery: a replay costs no CPU
        try:
            signer = await trio.to_thread.run_sync(message.signer, signature, limiter=self._workers)
        except ValueError:
            raise ActionRefusedError(
                400, "not a valid signature (65 bytes r ‖ s ‖ v)", "$.signature"
            ) from None
        if checksum_address(signer) != signer_expected:
            raise ActionRefusedError(
                400,
                f"this {message.primary_type} is signed by {signer}, not by {signer_expected}",
                "$.signature",
            )
        return VerifiedAction(signer_expected, nonce)

    def consume(self, verified: VerifiedAction, batch: Batch) -> None:
        """Use up `verified`'s nonce in `batch` (which applies the action); ActionRefusedError
        409 if a request that was verified meanwhile used it or a larger one. Call it with no
        `await` between it and the batch's commit."""
        self._check_nonce(verified.signer, verified.nonce)
        self.nonces.put(LastNonce(address=verified.signer, nonce=verified.nonce), batch=batch)

    def _check_nonce(self, address: str, nonce: int) -> None:
        smallest = self.smallest_nonce(address)
        if nonce < smallest:
            raise ActionRefusedError(
                409,
                f"nonce {nonce} is used up: the smallest nonce {address} may sign now is {smallest}",
                "$.nonce",
            )
