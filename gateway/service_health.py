"""The gateway's own health, for `GET /api/health` and the `/ws/health` push: its services, its
store, its chain connection and how many keepers are online.

The chain is read by one task (`ChainProbe.run`), at most every `interval` seconds for all
callers, each read bounded by `timeout`: a health request never waits on the chain, and any
number of them cost the chain node nothing more. A reading older than a few intervals counts
as a failure (the probe has stopped).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio

from gateway.health import KeeperStatus
from gateway.storage import DECISIONS_CHECKPOINT, GatewayStorage
from node.chain import RpcClient


class ServiceHealth(msgspec.Struct, kw_only=True):
    """One service: whether it works, and what is known about it."""

    ok: bool
    detail: str = ""


class ChainHealth(msgspec.Struct, rename="camel", kw_only=True):
    """The chain connection: its chain id, its latest block (`head`) and how old that block
    is (`lagSeconds`), as last read; null before a first read."""

    ok: bool
    chain_id: int
    head: int | None = None
    lag_seconds: float | None = None
    detail: str = ""


class HealthAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """The gateway's health: `ok` when every service, the store and the chain are."""

    ok: bool
    services: dict[str, ServiceHealth]
    chain: ChainHealth
    keepers_online: int
    uptime_seconds: float


class ChainProbe:
    """Reads the chain's id and latest block every `interval` seconds (each read within
    `timeout`); `max_lag`: a latest block older than this many seconds is a failure (None:
    any age will do, as on a chain that mines only on transactions)."""

    def __init__(
        self,
        rpc: RpcClient,
        chain_id: int,
        *,
        interval: float = 2.0,
        timeout: float = 2.0,
        max_lag: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rpc, self.chain_id, self.interval, self.timeout = rpc, chain_id, interval, timeout
        self.max_lag, self.clock = max_lag, clock
        self.latest = ChainHealth(ok=False, chain_id=chain_id, detail="not read yet")
        self.read_at: float | None = None  # trio time of the latest reading

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read forever; started once the first reading is in."""
        await self.read()
        task_status.started()
        while True:
            await trio.sleep(self.interval)
            await self.read()

    async def read(self) -> ChainHealth:
        """Read the chain now (within `timeout`), and keep the reading as `latest`."""
        self.latest = await self._reading()
        self.read_at = trio.current_time()
        return self.latest

    def current(self) -> ChainHealth:
        """The latest reading, or a failure if there has been none for a few intervals."""
        stale_after = 3 * self.interval + self.timeout
        if self.read_at is not None and trio.current_time() - self.read_at > stale_after:
            age = trio.current_time() - self.read_at
            return msgspec.structs.replace(self.latest, ok=False, detail=f"no reading for {age:.0f} s")
        return self.latest

    async def _reading(self) -> ChainHealth:
        calls: list[tuple[str, list[Any]]] = [
            ("eth_chainId", []),
            ("eth_getBlockByNumber", ["latest", False]),
        ]
        failed = ChainHealth(ok=False, chain_id=self.chain_id, detail=f"no answer within {self.timeout:g} s")
        with trio.move_on_after(self.timeout):
            try:
                chain_id, block = await self.rpc.batch(calls)
                served, head, stamp = int(chain_id, 16), int(block["number"], 16), int(block["timestamp"], 16)
            except Exception as error:  # the node down, or answering nonsense: not healthy, never a crash
                return msgspec.structs.replace(failed, detail=f"{type(error).__name__}: {error}"[:300])
            lag = round(max(0.0, self.clock() - stamp), 3)
            reading = ChainHealth(ok=True, chain_id=self.chain_id, head=head, lag_seconds=lag)
            if served != self.chain_id:
                return msgspec.structs.replace(reading, ok=False, detail=f"the node serves chain {served}")
            if self.max_lag is not None and lag > self.max_lag:
                return msgspec.structs.replace(reading, ok=False, detail=f"no block for {lag:.0f} s")
            return reading
        return failed


class Services:
    """Which of the role's long-running services are running: `run` runs one and marks it."""

    def __init__(self) -> None:
        self._state: dict[str, ServiceHealth] = {}

    async def run(self, name: str, service: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run `service(*args)`, marked as running until it returns or raises (which it passes on)."""
        self._state[name] = ServiceHealth(ok=True, detail="running")
        try:
            await service(*args)
        except BaseException as error:
            self._state[name] = ServiceHealth(ok=False, detail=f"stopped: {type(error).__name__}")
            raise
        self._state[name] = ServiceHealth(ok=False, detail="stopped")

    def __call__(self) -> dict[str, ServiceHealth]:
        """Each service's health, by name."""
        return dict(self._state)


class GatewayHealth:
    """The gateway's health (`snapshot`, also the callable /ws/health pushes).

    Args:
        storage: the store, read once per snapshot (a single key).
        chain: the chain probe (run `chain.run` in the role's nursery).
        services: the health of the role's services, by name (e.g. a `Services`).
        keepers: the keepers seen by heartbeat.
    """

    def __init__(
        self,
        storage: GatewayStorage,
        chain: ChainProbe,
        services: Callable[[], dict[str, ServiceHealth]] = dict,
        keepers: Callable[[], list[KeeperStatus]] = list,
    ) -> None:
        self.storage, self.chain, self.services, self.keepers = storage, chain, services, keepers
        self.started = trio.current_time()

    def snapshot(self) -> HealthAnswer:
        """The health now: computed from memory and one read of the store, never waiting."""
        services = self.services() | {"store": self._store()}
        chain = self.chain.current()
        return HealthAnswer(
            ok=chain.ok and all(service.ok for service in services.values()),
            services=services,
            chain=chain,
            keepers_online=sum(1 for keeper in self.keepers() if keeper.online),
            uptime_seconds=round(trio.current_time() - self.started, 3),
        )

    def _store(self) -> ServiceHealth:
        try:
            self.storage.checkpoints.get(DECISIONS_CHECKPOINT)
        except Exception as error:  # closed or corrupt: report it, the health answer must not fail
            return ServiceHealth(ok=False, detail=f"{type(error).__name__}: {error}"[:300])
        return ServiceHealth(ok=True)
