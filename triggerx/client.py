"""`AsyncClient`: the gateway's API for a program, under trio or asyncio (anyio).

    async with AsyncClient("http://127.0.0.1:8080", account=key, rpc_url=rpc) as client:
        job = await client.create(Job.interval(counter, "increment()", every_seconds=10))
        async with client.watch(job.id) as events:
            async for event in events:
                print(event.type, event.task.status)

Answers are the gateway's own views (gateway.api.views: `JobView`, `TaskView`, ...); refusals
are triggerx.errors' exceptions with the API's reason and field.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import httpx
import msgspec
from eth_account import Account
from eth_account.signers.local import LocalAccount
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, WebSocketNetworkError, aconnect_ws

from gateway.actions import UPDATE_JOB, gateway_domain
from gateway.api.jobs import CreatedJobs
from gateway.api.network import NetworkAnswer
from gateway.api.scripts import UploadAnswer
from gateway.api.views import ErrorView, JobAnswer, JobsPage, JobView, TaskAnswer, TasksPage, TaskView
from gateway.fees import FeeEstimate
from node.chain.eip712 import TypedMessage
from protocol.jobs import cancel_message
from triggerx.chain import GasBalance
from triggerx.errors import ConfigurationError, TransportError, WatchError, api_error
from triggerx.jobs import Job, SignedJob, sign

Answer = TypeVar("Answer")
ACTION_SECONDS = 600  # how long a signed pause or resume may wait to reach the gateway
PING_SECONDS = 20.0  # a watch's PING when nothing came for this long (gateway.api.rooms drops idle clients)


class TaskEvent(msgspec.Struct, frozen=True):
    """A task of a watched job as it changes: `type` is JOB_TASKS_SNAPSHOT (the job's latest
    tasks, sent first), TASK_CREATED, TASK_UPDATED or TASK_STATUS_CHANGED (with the status
    before, `previous_status`)."""

    type: str
    task: TaskView
    previous_status: str | None = None


class AsyncClient:
    """The gateway at `gateway_url`, acting for `account` (a private key or an eth-account
    LocalAccount; None: reads only). `api_key` lifts the anonymous rate limit. `rpc_url` is
    the chain's JSON-RPC, needed only for the gas balance (deposit, withdraw, balance).
    `chain_id` and `hub` pin the network signed for; by default the gateway names them
    (GET /api/network), and a pinned value it contradicts is a ConfigurationError."""

    def __init__(
        self,
        gateway_url: str,
        account: LocalAccount | str | None = None,
        *,
        api_key: str | None = None,
        rpc_url: str | None = None,
        chain_id: int | None = None,
        hub: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.account = Account.from_key(account) if isinstance(account, str) else account
        self.rpc_url = rpc_url
        headers = {"X-Api-Key": api_key} if api_key else {}
        self._http = httpx.AsyncClient(base_url=self.gateway_url, headers=headers, timeout=timeout)
        self._pinned = (chain_id, hub)
        self._network: NetworkAnswer | None = None
        self._last_action_nonce = 0

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    # Jobs

    async def create(self, job: Job) -> JobView:
        """Create `job` for the account: signed, sent, and answered with the stored job."""
        signed = await self._signed(job)
        created = await self._call("POST", "/api/jobs", CreatedJobs, json=signed.body)
        assert created.job is not None  # one job asked, one job answered
        return created.job

    async def create_chain(self, jobs: Sequence[Job]) -> list[JobView]:
        """Create a linked chain of 2 to 8 jobs, all or none: each `Job.after_previous` job in
        it fires after each completed task of the job before it."""
        entries: list[dict[str, Any]] = []
        previous: SignedJob | None = None
        for job in jobs:
            if job.follows_previous:
                if previous is None:
                    raise ValueError("the first job of a chain has no job before it")
                job = job.following(previous.chain_job_id)
            previous = await self._signed(job)
            entries.append(previous.body)
        created = await self._call("POST", "/api/jobs", CreatedJobs, json={"jobs": entries})
        assert created.jobs is not None
        return created.jobs

    async def job(self, job_id: int) -> JobView:
        """Job `job_id`."""
        return (await self._call("GET", f"/api/jobs/id/{job_id}", JobAnswer)).job

    async def jobs(
        self,
        *,
        owner: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobsPage:
        """A page of jobs by id, filtered; pass the page's `cursor` for the next one."""
        params = {"owner": owner, "status": status, "kind": kind, "limit": limit, "cursor": cursor}
        return await self._call("GET", "/api/jobs", JobsPage, params=params)

    async def pause(self, job_id: int) -> JobView:
        """Stop job `job_id` firing until `resume` (tasks under way go on)."""
        return await self._update(job_id, paused=True)

    async def resume(self, job_id: int) -> JobView:
        """Let paused job `job_id` fire again."""
        return await self._update(job_id, paused=False)

    async def cancel(self, job_id: int) -> JobView:
        """Cancel job `job_id` for good (its status becomes `deleted`), signed by the account."""
        account = self._signer()
        network = await self.network()
        job = await self.job(job_id)
        message = cancel_message(int(job.chain_job_id), network.chain_id, network.hub)
        body = {"signature": "0x" + message.sign(account).hex()}
        return (await self._call("DELETE", f"/api/jobs/delete/{job_id}", JobAnswer, json=body)).job

    async def estimate_fee(self, job: Job, tasks: int = 1) -> FeeEstimate:
        """What `tasks` tasks of `job` would cost the account now (static arguments only)."""
        params = {
            "owner": self._signer().address,
            "target": job.target,
            "function": job.function,
            "args": json.dumps(list(job.args)),
            "gasLimit": job.gas_limit,
            "tasks": tasks,
        }
        return await self._call("GET", "/api/jobs/fees", FeeEstimate, params=params)

    async def upload_script(self, source: str | bytes) -> str:
        """Upload a script's source; its CID, to name in `Script(cid, ...)`. Create the job soon
        after: the gateway keeps scripts no job names for a day at most."""
        data = source.encode() if isinstance(source, str) else source
        return (await self._call("POST", "/api/scripts", UploadAnswer, content=data)).cid

    # Tasks

    async def task(self, task_id: int) -> TaskView:
        """Task `task_id`."""
        return (await self._call("GET", f"/api/tasks/id/{task_id}", TaskAnswer)).task

    async def tasks(self, job_id: int, *, limit: int | None = None, cursor: str | None = None) -> TasksPage:
        """A page of job `job_id`'s tasks, oldest first; pass the page's `cursor` for the next one."""
        params = {"limit": limit, "cursor": cursor}
        return await self._call("GET", f"/api/tasks/job/{job_id}", TasksPage, params=params)

    @asynccontextmanager
    async def watch(self, job_id: int) -> AsyncIterator[TaskEvents]:
        """Job `job_id`'s tasks as they change, over the gateway's WebSocket, for as long as
        the context lasts (a context, not a bare iterator: the connection is closed when the
        block ends, in the task that opened it):

            async with client.watch(job.id) as events:
                async for event in events:
                    ...

        First the job's latest tasks (JOB_TASKS_SNAPSHOT), then every change in the order the
        gateway made them. A lost connection is a TransportError."""
        try:
            async with aconnect_ws("/ws/tasks", self._http) as socket:
                await socket.send_text(json.dumps({"type": "SUBSCRIBE", "room": f"job:{job_id}"}))
                yield TaskEvents(socket, self.gateway_url)
        except (WebSocketDisconnect, WebSocketNetworkError, httpx.HTTPError) as error:
            raise TransportError(f"the WebSocket of {self.gateway_url} closed: {error!r}") from None
        except BaseExceptionGroup as group:  # httpx-ws's task group wraps what the block raised
            raise _sole_error(group) from None

    # The owner's gas balance, on chain

    async def balance(self, address: str | None = None) -> int:
        """The gas balance (wei) of `address` (default: the account) in the hub."""
        return await (await self._gas()).of(address or self._signer().address)

    async def deposit(self, wei: int) -> str:
        """Add `wei` to the account's gas balance; the mined transaction's hash."""
        return await (await self._gas()).deposit(self._signer(), wei)

    async def withdraw(self, wei: int, to: str | None = None) -> str:
        """Take `wei` out of the account's gas balance, to `to` (default: the account)."""
        account = self._signer()
        return await (await self._gas()).withdraw(account, wei, to or account.address)

    # The network

    async def network(self) -> NetworkAnswer:
        """The chain id and hub that jobs are signed for (pinned, or as the gateway names them)."""
        if self._network is None:
            named = await self._call("GET", "/api/network", NetworkAnswer)
            theirs_and_names = ((named.chain_id, "chain id"), (named.hub, "hub"))
            for pinned, (theirs, what) in zip(self._pinned, theirs_and_names, strict=True):
                if pinned is not None and str(pinned).lower() != str(theirs).lower():
                    raise ConfigurationError(f"the gateway serves {what} {theirs}, not the pinned {pinned}")
            self._network = named
        return self._network

    # Helpers

    def _signer(self) -> LocalAccount:
        if self.account is None:
            raise ConfigurationError("this client has no account: give one to act for an owner")
        return self.account

    async def _signed(self, job: Job) -> SignedJob:
        account = self._signer()
        network = await self.network()
        max_fee = job.max_fee_per_task
        if max_fee is None:
            if job.script is not None:
                raise ConfigurationError("a job with a script needs max_fee_per_task: its arguments vary")
            max_fee = int((await self.estimate_fee(job)).suggested_max_fee_per_task)
        return sign(job, account, network.chain_id, network.hub, max_fee)

    async def _update(self, job_id: int, *, paused: bool) -> JobView:
        account = self._signer()
        network = await self.network()
        job = await self.job(job_id)
        # Nonces must grow per owner: milliseconds, and never the same twice from this client.
        nonce = max(self._last_action_nonce + 1, int(time.time() * 1000))
        self._last_action_nonce = nonce
        values = {
            "jobId": int(job.chain_job_id),
            "paused": paused,
            "nonce": nonce,
            "deadline": int(time.time()) + ACTION_SECONDS,
        }
        domain = gateway_domain(network.chain_id, network.hub)
        signature = TypedMessage(domain, UPDATE_JOB.name, UPDATE_JOB.fields, values).sign(account)
        body = {
            "paused": paused,
            "nonce": nonce,
            "deadline": values["deadline"],
            "signature": "0x" + signature.hex(),
        }
        return (await self._call("PUT", f"/api/jobs/update/{job_id}", JobAnswer, json=body)).job

    async def _gas(self) -> GasBalance:
        if self.rpc_url is None:
            raise ConfigurationError("the gas balance is on chain: give the client an rpc_url")
        network = await self.network()
        return GasBalance(self._http, self.rpc_url, network.chain_id, network.hub)

    async def _call(self, method: str, path: str, answer: type[Answer], **request: Any) -> Answer:
        """`method` `path`, its answer decoded as `answer`; an ApiError for a refusal."""
        if "params" in request:
            request["params"] = {k: v for k, v in request["params"].items() if v is not None}
        try:
            response = await self._http.request(method, path, **request)
        except httpx.HTTPError as error:
            raise TransportError(f"{method} {self.gateway_url}{path}: {error!r}") from None
        if response.is_success:
            try:
                return msgspec.json.decode(response.content, type=answer)
            except msgspec.ValidationError as error:
                raise TransportError(f"{method} {path}: not the API's answer: {error}") from None
        try:
            view = msgspec.json.decode(response.content, type=ErrorView)
            reason, field, trace_id = view.error, view.field, view.trace_id
        except msgspec.MsgspecError:
            reason, field, trace_id = response.text[:200] or response.reason_phrase, None, None
        retry_after = float(response.headers.get("retry-after", "0") or 0)
        raise api_error(
            response.status_code, reason, field, trace_id or response.headers.get("x-trace-id"), retry_after
        )


_FRAMES = msgspec.json.Decoder(dict[str, Any])


class TaskEvents:
    """The task events of a watch (AsyncClient.watch), as an async iterator."""

    def __init__(self, socket: AsyncWebSocketSession, gateway_url: str) -> None:
        self._socket = socket
        self._gateway_url = gateway_url
        self._ready: list[TaskEvent] = []

    def __aiter__(self) -> TaskEvents:
        return self

    async def __anext__(self) -> TaskEvent:
        while not self._ready:
            try:
                with anyio.move_on_after(PING_SECONDS) as quiet:
                    text = await self._socket.receive_text()
                if quiet.cancelled_caught:  # the gateway drops a client that says nothing
                    await self._socket.send_text('{"type": "PING"}')
                    continue
            except (WebSocketDisconnect, WebSocketNetworkError) as error:
                raise TransportError(f"the WebSocket of {self._gateway_url} closed: {error!r}") from None
            self._ready = _task_events(text)
        return self._ready.pop(0)


def _sole_error(group: BaseExceptionGroup) -> BaseException:
    """The one error inside `group` (nested groups of one), or the group itself."""
    while len(group.exceptions) == 1:
        inner = group.exceptions[0]
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return group


def _task_events(text: str) -> list[TaskEvent]:
    """The task events in one frame of /ws/tasks (none for SUBSCRIBED and PONG); WatchError for ERROR."""
    frame = _FRAMES.decode(text)
    kind = frame.get("type")
    if kind == "ERROR":
        raise WatchError(str(frame.get("error")), frame.get("field"))
    if kind == "JOB_TASKS_SNAPSHOT":
        return [TaskEvent(kind, msgspec.convert(task, TaskView)) for task in frame["tasks"]]
    if kind in ("TASK_CREATED", "TASK_UPDATED", "TASK_STATUS_CHANGED"):
        return [TaskEvent(kind, msgspec.convert(frame["task"], TaskView), frame.get("previousStatus"))]
    return []
