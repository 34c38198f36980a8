"""The checks every envelope passes before it is delivered or forwarded, and what a drop counts.

In order, cheapest first so that junk costs little: it decodes (`malformed`), it was signed for
the topic, method or request it arrived on (`misdirected`), its timestamp is within the
freshness window either side of now (`stale`), its signature recovers to its sender
(`bad_signature`), the sender is a known, active operator (`unknown_sender`), and that sender's
envelope was not accepted before (`replay`). A failure is counted in
`mesh_messages_dropped_total{reason}` and never raised: the caller just drops the message.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache

import msgspec
from eth_utils import to_checksum_address

from node.mesh.envelope import NO_REF, Envelope, decode_envelope, domain_separator, recover_signer
from node.mesh.metrics import Metrics

logger = logging.getLogger(__name__)

IsActive = Callable[[str], bool]
"""Whether a checksummed operator address is registered and active (the operator registry's answer)."""


@lru_cache(maxsize=8192)
def checksum(address: bytes) -> str:
    """The EIP-55 form of a 20-byte address (cached: the same few operators sign everything)."""
    return to_checksum_address(address)


class ReplayCache:
    """Digests of accepted envelopes, per sender, kept while their timestamp is still fresh.

    An entry can be forgotten once its envelope would be rejected as stale anyway, so the
    cache holds at most (rate x window) entries per sender; `per_sender` caps it beyond that
    (oldest evicted first), which bounds memory against a sender that floods.
    """

    def __init__(self, window_ms: int, per_sender: int) -> None:
        self._window_ms = window_ms
        self._per_sender = per_sender
        self._seen: dict[bytes, OrderedDict[bytes, int]] = {}

    def add(self, sender: bytes, digest: bytes, timestamp_ms: int, now_ms: int) -> bool:
        """Record `digest`; False if it was already there (a replay)."""
        seen = self._seen.setdefault(sender, OrderedDict())
        # Insertion order is nearly timestamp order; purging from the front is enough.
        while seen and next(iter(seen.values())) < now_ms:
            seen.popitem(last=False)
        if digest in seen:
            return False
        seen[digest] = timestamp_ms + self._window_ms
        if len(seen) > self._per_sender:
            seen.popitem(last=False)
        return True


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

    def check(self, data: bytes, kind: str, ref: bytes = NO_REF) -> Envelope | str:
        """The envelope in `data` if it passes every check for `kind` (and `ref`), else why not.

        A failure is counted under its reason. Never raises: a failure of the checks
        themselves is a drop counted as `validator_error` (and logged), never an exception
        into py-libp2p, where an escaping validator error kills the node (FIELD-NOTES 5).
        """
        try:
            result = self._examine(data, kind, ref)
        except Exception:
            logger.exception("envelope check failed unexpectedly (kind %s)", kind)
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
        digest = envelope.digest(self.separator)
        try:
            signer = recover_signer(digest, envelope.signature)
        except ValueError:
            return "bad_signature"
        if signer != envelope.sender:
            return "bad_signature"
        if not self._is_active(checksum(envelope.sender)):
            return "unknown_sender"
        if not self._replays.add(envelope.sender, digest, envelope.timestamp_ms, now_ms):
            return "replay"
        return envelope
