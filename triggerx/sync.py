"""`Client`: the same API as `AsyncClient`, for code that is not async.

Each call runs on an event loop in a thread of the client's own (anyio's blocking portal), so
there is one implementation of every operation. Close the client (or use it in a `with`) to
stop that thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal
from eth_account.signers.local import LocalAccount

from gateway.api.network import NetworkAnswer
from gateway.api.views import JobsPage, JobView, TasksPage, TaskView
from gateway.fees import FeeEstimate
from triggerx.client import AsyncClient, TaskEvent
from triggerx.jobs import Job


class Client:
    """The gateway at `gateway_url`, acting for `account`: see AsyncClient for every argument
    and method; here each method returns its answer."""

    def __init__(self, gateway_url: str, account: LocalAccount | str | None = None, **options: Any) -> None:
        self._portal_context = start_blocking_portal()
        self._portal = self._portal_context.__enter__()
        self.aio = AsyncClient(gateway_url, account, **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the client's thread."""
        self._portal.call(self.aio.aclose)
        self._portal_context.__exit__(None, None, None)

    def create(self, job: Job) -> JobView:
        """AsyncClient.create."""
        return self._portal.call(self.aio.create, job)

    def create_chain(self, jobs: Sequence[Job]) -> list[JobView]:
        """AsyncClient.create_chain."""
        return self._portal.call(self.aio.create_chain, jobs)

    def job(self, job_id: int) -> JobView:
        """AsyncClient.job."""
        return self._portal.call(self.aio.job, job_id)

    def jobs(self, **filters: Any) -> JobsPage:
        """AsyncClient.jobs (owner, status, kind, limit, cursor)."""
        return self._portal.call(lambda: self.aio.jobs(**filters))

    def pause(self, job_id: int) -> JobView:
        """AsyncClient.pause."""
        return self._portal.call(self.aio.pause, job_id)

    def resume(self, job_id: int) -> JobView:
        """AsyncClient.resume."""
        return self._portal.call(self.aio.resume, job_id)

    def cancel(self, job_id: int) -> JobView:
        """AsyncClient.cancel."""
        return self._portal.call(self.aio.cancel, job_id)

    def estimate_fee(self, job: Job, tasks: int = 1) -> FeeEstimate:
        """AsyncClient.estimate_fee."""
        return self._portal.call(self.aio.estimate_fee, job, tasks)

    def upload_script(self, source: str | bytes) -> str:
        """AsyncClient.upload_script."""
        return self._portal.call(self.aio.upload_script, source)

    def task(self, task_id: int) -> TaskView:
        """AsyncClient.task."""
        return self._portal.call(self.aio.task, task_id)

    def tasks(self, job_id: int, **page: Any) -> TasksPage:
        """AsyncClient.tasks (limit, cursor)."""
        return self._portal.call(lambda: self.aio.tasks(job_id, **page))

    def balance(self, address: str | None = None) -> int:
        """AsyncClient.balance."""
        return self._portal.call(self.aio.balance, address)

    def deposit(self, wei: int) -> str:
        """AsyncClient.deposit."""
        return self._portal.call(self.aio.deposit, wei)

    def withdraw(self, wei: int, to: str | None = None) -> str:
        """AsyncClient.withdraw."""
        return self._portal.call(self.aio.withdraw, wei, to)

    def network(self) -> NetworkAnswer:
        """AsyncClient.network."""
        return self._portal.call(self.aio.network)

    def watch(self, job_id: int) -> Iterator[TaskEvent]:
        """AsyncClient.watch, as a generator; closing it (or leaving its loop) ends the watch."""
        send, receive = anyio.create_memory_object_stream[TaskEvent | BaseException](math.inf)

        async def pump() -> None:
            # The whole watch runs in one task of the portal (its WebSocket's scopes must).
            try:
                async with self.aio.watch(job_id) as events:
                    async for event in events:
                        await send.send(event)
            except Exception as error:
                await send.send(error)

        future = self._portal.start_task_soon(pump)
        try:
            while True:
                item = self._portal.call(receive.receive)
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            future.cancel()
