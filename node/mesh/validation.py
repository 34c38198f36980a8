"""The checks every envelope passes before it is delivered or forwarded, and what a drop counts.

In order, cheapest first so that junk costs little: it decodes (`malformed`), it was signed for
the topic, method or request it arrived on (`misdirected`), its timestamp is within the
freshness window either side of now (`stale`), its claimed sender is a known, active operator
(`unknown_sender`), that sender's envelope was not accepted before (`replay`), the sender has
room left in its replay cache (`flood`), and only then its signature recovers to its sender
(`bad_signature`). Recovering a signature (~50 us of libsecp256k1) is the one expensive step,
so everything that can reject an envelope without it comes first: junk from senders that are
not registered costs a dictionary lookup, not an ecrecover (security review, finding 8).
Recoveries are counted in `mesh_signature_recoveries_total`. A failure is counted in
`mesh_messages_dropped_total{reason}` and never raised: the caller just drops the message.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from functools import lru_cache

import msgspec
from eth_utils import to_checksum_address

from node.mesh.envelope import NO_REF, Envelope, decode_envelope, domain_separator, recover_signer
from node.mesh.logdedup import LogDedup
from node.mesh.metrics import Metrics

logger = logging.getLogger(__name__)

IsActive = Callable[[str], bool]
"""Whether a checksummed operator address is registered and active (the operator registry's answer)."""


@lru_cache(maxsize=8192)
def checksum(address: bytes) -> str:
    """The EIP-55 form of a 20-byte address (cached: the same few operators sign everything)."""
    return to_checksum_address(address)


class ReplayCache:
    """Digests of accepted envelopes, per sender, each kept until its envelope is no longer fresh.

    An envelope signed at `t` is accepted until `t + window`, so its digest is kept exactly that
    long: forgetting it earlier would let it be replayed (security review, finding 2, low). A
    sender with `per_sender` fresh digests already is refused new envelopes (`full`) rather than
    have its fresh ones forgotten, which bounds memory per sender. Senders are registered
    operators only (the sender is checked first), so the number of senders is bounded too.
    """

    def __init__(self, window_ms: int, per_sender: int) -> None:
        self._window_ms = window_ms
        self._per_sender = per_sender
        self._seen: dict[bytes, dict[bytes, int]] = {}
        """sender -> digest -> expiry (unix ms)."""
        self._expiries: dict[bytes, list[tuple[int, bytes]]] = {}
        """sender -> min-heap of (expiry, digest): timestamps arrive in any order within the window."""

    def seen(self, sender: bytes, digest: bytes, now_ms: int) -> bool:
        """Whether `digest` from `sender` was accepted and is still fresh."""
        self._purge(sender, now_ms)
        return digest in self._seen.get(sender, ())

    def full(self, sender: bytes, now_ms: int) -> bool:
        """Whether `sender` has `per_sender` fresh digests already (its next envelope is refused)."""
        self._purge(sender, now_ms)
        return len(self._seen.get(sender, ())) >= self._per_sender

    def add(self, sender: bytes, digest: bytes, timestamp_ms: int) -> None:
        """Remember `digest` until `timestamp_ms + window` (call after `seen` and `full` said no)."""
        expiry = timestamp_ms + self._window_ms
        self._seen.setdefault(sender, {})[digest] = expiry
        heapq.heappush(self._expiries.setdefault(sender, []), (expiry, digest))

    def size(self, sender: bytes) -> int:
        """Digests held for `sender` (expired ones included until the next check purges them)."""
        return len(self._seen.get(sender, ()))

    def _purge(self, sender: bytes, now_ms: int) -> None:
        heap = self._expiries.get(sender)
        if not heap:
            return
        seen = self._seen[sender]
        # Strictly before now: at exactly `t + window` the envelope is still fresh (see `_examine`).
        while heap and heap[0][0] < now_ms:
            _, digest = heapq.heappop(heap)
            seen.pop(digest, None)


class EnvelopeChecker:
    """Validates envelopes for one node: decode, context, freshness, signature, sender, replay."""

    def __init__(
        self,
        chain_id: int,
        is_active: IsActive,
        metrics: Metrics,
        *,
        freshness_window_s: float,
        replay_cache_per_sender: int,
    ) -> None:
        self.separator = domain_separator(chain_id)
        self._is_active = is_active
        self._metrics = metrics
        self._window_ms = int(freshness_window_s * 1000)
        self._replays = ReplayCache(self._window_ms, replay_cache_per_sender)
        self._error_log = LogDedup(logger)
        self._flood_log = LogDedup(logger)

    def check(self, data: bytes, kind: str, ref: bytes = NO_REF) -> Envelope | str:
        """The envelope in `data` if it passes every check for `kind` (and `ref`), else why not.

        A failure is counted under its reason. Never raises: a failure of the checks
        themselves is a drop counted as `validator_error` (and logged), never an exception
        into py-libp2p, where an escaping validator error kills the node (py-libp2p 5).
        """
        try:
            result = self._examine(data, kind, ref)
        except Exception:
            # Once a minute at most: a registry callable that raises would otherwise log per message.
            self._error_log.log(
                logging.ERROR, kind, "envelope check failed unexpectedly (kind %s)", kind, exc_info=True
            )
            result = "validator_error"
        if isinstance(result, str):
            self._metrics.inc("mesh_messages_dropped_total", reason=result)
        return result

    def _examine(self, data: bytes, kind: str, ref: bytes) -> Envelope | str:
        try:
            envelope = decode_envelope(data)
        except msgspec.DecodeError:
            return "malformed"
        if envelope.kind != kind or envelope.ref != ref:
            return "misdirected"
        now_ms = time.time_ns() // 1_000_000
        if abs(now_ms - envelope.timestamp_ms) > self._window_ms:
            return "stale"
        if not self._is_active(checksum(envelope.sender)):
            return "unknown_sender"
        digest = envelope.digest(self.separator)
        if self._replays.seen(envelope.sender, digest, now_ms):
            return "replay"
        if self._replays.full(envelope.sender, now_ms):
            self._flood_log.log(
                logging.WARNING,
                envelope.sender,
                "sender %s exceeds its replay cache (%d fresh envelopes): refusing its new envelopes",
                checksum(envelope.sender),
                self._replays.size(envelope.sender),
            )
            return "flood"
        self._metrics.inc("mesh_signature_recoveries_total")
        try:
            signer = recover_signer(digest, envelope.signature)
        except ValueError:
            return "bad_signature"
        if signer != envelope.sender:
            return "bad_signature"
        self._replays.add(envelope.sender, digest, envelope.timestamp_ms)
        return envelope
