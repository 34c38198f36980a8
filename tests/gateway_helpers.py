"""Gateway records for tests that drive gateway services against a real hub."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway import Dispatcher, GatewayStorage, JobRecord, JobSpec, TaskLedger, TaskRecord
from node.config import load_genesis
from node.devnet import REPO_GENESIS
from protocol import JobTerms, job_id_of

from .conftest import CHAIN_ID


def counter_job(
    owner: str,
    chain_job_id: int,
    terms: JobTerms,
    calldata: bytes,
    created_at: float = 0.0,
    *,
    function: str = "increment()",
) -> JobRecord:
    """Gateway job 1: the owner's `function` job (registered, for tests with a hub) on the
    `terms` target, every 60 s (the interval of tests/hub_helpers.TRIGGER and
    consensus_helpers.test_job)."""
    spec = JobSpec(
        owner=owner,
        nonce="1",
        expiry=2**40,
        target=terms.target,
        function=function,
        schedule_type="interval",
        schedule={"everySeconds": 60},
        max_fee_per_task=str(terms.max_fee_per_task),
    )
    return JobRecord(
        id=1,
        owner=owner,
        chain_job_id=chain_job_id,
        spec=spec,
        calldata=calldata,
        terms=terms,
        consent_signature=b"",
        created_at=created_at,
    )


def watching_job(kind: str, schedule: dict[str, Any]) -> JobRecord:
    """Job 1 of a made-up owner, a `kind` job (event, condition) with trigger `schedule`."""
    owner, calldata = "0x" + "33" * 20, b"\xd0\x9d\xe0\x8a"
    terms = JobTerms.static_call(owner, calldata, 100_000, 10**15, bytes(32))
    job = counter_job(owner, job_id_of(owner, 1), terms, calldata)
    return msgspec.structs.replace(
        job, spec=msgspec.structs.replace(job.spec, schedule_type=kind, schedule=schedule)
    )


class ProcessKilledError(Exception):
    """The process died here."""


class DyingLedger(TaskLedger):
    """A ledger whose process dies before writing its `dies_at`-th task (nothing of it written)."""

    def __init__(self, storage: GatewayStorage, dies_at: int) -> None:
        super().__init__(storage)
        self.left = dies_at - 1

    def create(self, *args: Any, **kwargs: Any) -> TaskRecord:
        if self.left == 0:
            raise ProcessKilledError
        self.left -= 1
        return super().create(*args, **kwargs)


def order_signer(storage: GatewayStorage, ledger: TaskLedger, network: Any) -> Dispatcher:
    """A dispatcher that only builds and signs orders (`order_for`) for the consensus
    `network`'s hub; it sends nothing, so it has no mesh, directory, keepers or intake."""
    return Dispatcher(
        ledger=ledger,
        storage=storage,
        hub=network.hub,
        chain_id=CHAIN_ID,
        sender=network.governor,
        mesh=None,  # type: ignore[arg-type]
        directory=None,  # type: ignore[arg-type]
        keepers=None,  # type: ignore[arg-type]
        intake=None,  # type: ignore[arg-type]
        protocol=load_genesis(REPO_GENESIS).protocol,
    )


class JsonClient:
    """A Quart test client whose requests declare a JSON body (the API refuses others: 415)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def open(
        self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        headers = {"content-type": "application/json", **(headers or {})}
        return await self.client.open(path, method=method, headers=headers, **kw)

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.open(path, method="GET", **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.open(path, method="POST", **kw)

    async def put(self, path: str, **kw: Any) -> Any:
        return await self.open(path, method="PUT", **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.open(path, method="DELETE", **kw)


def at(client: tuple[str, int]) -> dict[str, Any]:
    """Quart test-client keywords for a request from the client address `client` (host, port)."""
    return {"scope_base": {"client": client}}
