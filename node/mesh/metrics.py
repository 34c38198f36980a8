"""The mesh's counters: a small in-process registry, read as one snapshot.

Samples are named the way Prometheus prints them (`name{label="value"}`), so the `/metrics`
endpoint that comes later only has to print a snapshot. Counters only ever go up; the trio
loop is single-threaded, so no lock is needed.
"""

from __future__ import annotations

import re
from collections import Counter

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

DROP_REASONS = (
    "malformed",
    "misdirected",
    "stale",
    "bad_signature",
    "unknown_sender",
    "replay",
    "flood",
    "validator_error",
    "slow_consumer",
)
"""Why a message was dropped (`mesh_messages_dropped_total{reason=...}`):

- malformed: not a decodable envelope;
- misdirected: validly shaped but signed for another topic, method or request;
- stale: timestamp outside the freshness window (either side of now);
- bad_signature: the signature does not recover to the claimed sender;
- unknown_sender: the sender is not a known, active operator;
- replay: an envelope already accepted from that sender (and still fresh);
- flood: the sender already has as many fresh envelopes accepted as its replay cache holds;
- validator_error: the checks themselves failed (a bug, or the registry callable raised);
- slow_consumer: a local subscriber's buffer was full.
"""


def sample_name(name: str, labels: dict[str, str]) -> str:
    """`name{k="v",...}` with labels sorted by key (just `name` without labels)."""
    if not labels:
        return name
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Named counters with labels; `snapshot()` is what an exporter reads."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def inc(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add `amount` (>= 0) to the counter `name` with `labels`."""
        if amount < 0:
            raise ValueError(f"counter {name} cannot go down (amount {amount})")
        if not _NAME.match(name) or not all(_LABEL.match(key) for key in labels):
            raise ValueError(f"not a valid metric sample: {name} {sorted(labels)}")
        self._counts[sample_name(name, labels)] += amount

    def get(self, name: str, **labels: str) -> int:
        """The current value of counter `name` with exactly `labels` (0 if never incremented)."""
        return self._counts[sample_name(name, labels)]

    def dropped(self, reason: str) -> int:
        """`mesh_messages_dropped_total{reason=...}`; ValueError for a reason not in DROP_REASONS."""
        if reason not in DROP_REASONS:
            raise ValueError(f"no such drop reason: {reason!r} (one of {', '.join(DROP_REASONS)})")
        return self.get("mesh_messages_dropped_total", reason=reason)

    def snapshot(self) -> dict[str, int]:
        """Every counter, by sample name, sorted."""
        return dict(sorted(self._counts.items()))
