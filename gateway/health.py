"""Which keepers are online, judged by their signed heartbeats.

A keeper is online while its latest heartbeat is at most `offline_after` seconds old.
Uptime is the share of time since a keeper was first seen during which it was online: a
gap between two heartbeats longer than `offline_after` counts as downtime, from the
moment the keeper went offline (its last heartbeat + `offline_after`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import msgspec

from node.mesh import HEARTBEATS, MeshNode, peer_id_text
from protocol import Heartbeat, Operator, OperatorDirectory, decode

log = logging.getLogger("triggerx.gateway")

MAX_LISTEN_ADDRS = 8  # addresses kept from a heartbeat
MAX_ADDR_LENGTH = 256


def heartbeat_peer(operator: Operator | None, claimed_peer_id: str) -> str | None:
    """The peer id to trust for a heartbeat signed by `operator`'s account, or None to drop it.

    It is the one the registry holds for an active operator, never the one the heartbeat
    claims: otherwise a keeper could announce another keeper's peer id with its own
    addresses and have that keeper's assignments dialled to itself.
    """
    if operator is None or not operator.active:
        return None
    registered = peer_id_text(operator.peer_id)
    return registered if registered is not None and claimed_peer_id == registered else None


def listen_addrs(announced: list[str]) -> list[str]:
    """The announced addresses worth keeping: a few, of sane length (a heartbeat is unbounded)."""
    return [a for a in announced[:MAX_LISTEN_ADDRS] if len(a) <= MAX_ADDR_LENGTH]


@dataclass
class KeeperHealth:
    """What the gateway knows of one keeper's liveness."""

    address: str
    peer_id: str
    first_seen: float
    last_seen: float
    online_seconds: float = 0.0

    def online(self, now: float, offline_after: float) -> bool:
        """Whether the keeper counts as online at `now`."""
        return now - self.last_seen <= offline_after

    def uptime(self, now: float, offline_after: float) -> float:
        """The fraction of time since first seen that the keeper was online, in [0, 1]."""
        span = now - self.first_seen
        if span <= 0:
            return 1.0
        current = min(now - self.last_seen, offline_after)
        return min(1.0, (self.online_seconds + current) / span)


class KeeperStatus(msgspec.Struct, rename="camel", kw_only=True):
    """A keeper seen by heartbeat: online now or not, when last heard, and its uptime (the
    share of time since first seen that it was online, 0 to 1); its operator id (null: not
    registered now) and the tasks it executed and attested (gateway.points counts them)."""

    address: str
    peer_id: str
    online: bool
    last_seen: float
    uptime: float
    operator_id: int | None = None
    tasks_executed: int = 0
    tasks_attested: int = 0


class HealthTracker:
    """Heartbeats in, the online keepers out."""

    def __init__(self, offline_after: float) -> None:
        self.offline_after = offline_after
        self.keepers: dict[str, KeeperHealth] = {}

    def heartbeat(self, address: str, peer_id: str, at: float) -> bool:
        """Record a heartbeat; True when it brought the keeper (back) online."""
        health = self.keepers.get(address)
        if health is None:
            self.keepers[address] = KeeperHealth(address, peer_id, first_seen=at, last_seen=at)
            return True
        if at <= health.last_seen:
            return False  # late or duplicate: tells nothing new
        came_back = not health.online(at, self.offline_after)
        health.online_seconds += min(at - health.last_seen, self.offline_after)
        health.last_seen = at
        health.peer_id = peer_id
        return came_back

    def online(self, now: float) -> list[KeeperHealth]:
        """The keepers online at `now`, by address."""
        return sorted(
            (h for h in self.keepers.values() if h.online(now, self.offline_after)), key=lambda h: h.address
        )


class KeeperWatch:
    """Follows the keepers' heartbeats on the mesh: who is online, and where to dial them.

    A heartbeat counts only when signed by an active operator and naming the peer id the
    registry holds for it (`heartbeat_peer`).
    """

    def __init__(self, directory: OperatorDirectory, mesh: MeshNode, offline_after: float) -> None:
        self.directory = directory
        self.mesh = mesh
        self.tracker = HealthTracker(offline_after)
        self.addresses: dict[str, list[str]] = {}  # peer id -> multiaddrs, from heartbeats

    async def run(self) -> None:
        """Read heartbeats until cancelled."""
        async with await self.mesh.subscribe(HEARTBEATS) as heartbeats:
            async for delivery in heartbeats:
                try:
                    beat = decode(delivery.payload, Heartbeat)
                except msgspec.MsgspecError:
                    continue
                registered = heartbeat_peer(self.directory.operator(delivery.sender), beat.peer_id)
                if registered is None:
                    continue
                self.addresses[registered] = listen_addrs(beat.listen_addrs)
                if self.tracker.heartbeat(delivery.sender, registered, time.time()):
                    log.info("keeper %s online (%s)", delivery.sender, beat.peer_id)

    def online_accounts(self) -> set[str]:
        """The accounts of the keepers online now."""
        return {h.address for h in self.tracker.online(time.time())}

    def peer_of(self, account: str) -> str | None:
        """The peer id `account`'s heartbeats came from, if any did."""
        health = self.tracker.keepers.get(account)
        return health.peer_id if health else None

    def status(self) -> list[KeeperStatus]:
        """Every keeper seen, for GET /api/keepers."""
        now = time.time()
        after = self.tracker.offline_after
        return [
            KeeperStatus(
                address=h.address,
                peer_id=h.peer_id,
                online=h.online(now, after),
                last_seen=h.last_seen,
                uptime=round(h.uptime(now, after), 4),
                operator_id=None if operator is None else operator.id,
            )
            for h in self.tracker.keepers.values()
            for operator in [self.directory.operator(h.address)]
        ]
