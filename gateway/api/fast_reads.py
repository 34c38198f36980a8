"""The hot reads, answered below Quart: `GET` and `HEAD` of `/api/jobs/id/<id>` and
`/api/tasks/job/<id>` (issue 12's throughput target names them).

Quart's machinery (request context, routing, hooks, a Response object, three ASGI body
messages) cost more than the read itself: these routes answered 420-620 req/s at ~100 % of
one core (bench/gateway.py), where a bare ASGI app on the same hypercorn answers ~1,000-1,300
(wrk with the same settings on the same 2-core machine). `FastReads`, ASGI middleware around
the app, answers exactly these requests itself, byte for byte as Quart would: the same access
rules (gateway.api.guard's `AccessRules.admit`: trace id, API key, rate limit, with the same
headers and refusals), the same view structs and 404s, the same 500 for an unreadable record,
counted in the same request metric. What it does not handle exactly it passes on: any other
method or path, a query string (another page of tasks), a request with a body, an id with a
sign or non-ASCII digits (the router's rules decide those). tests/integration/test_fast_reads.py
asks both paths the same and compares the answers.

Reads run on the event loop: a job, and the first page of a job's tasks (100 tasks: ~0.6 ms
with three attempts each, ~2 ms with seven of 100 signers, ~4 ms with 16 KB event logs).
Encoding a page costs as much again when its tasks carry much trigger evidence (event logs),
so a page with more than BIG_EVIDENCE of it is encoded in a worker thread, under the limiter
of Quart's routes (gateway.api.responses.paged_answer, which reads and encodes every page in
one: that hop costs ~30 % of this route's throughput, hence not for every page).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
import trio
from hypercorn.typing import ASGIFramework, ASGIReceiveCallable, ASGISendCallable, Scope

from gateway import GatewayStorage
from gateway.api.errors import ApiError
from gateway.api.guard import AccessRules, answer_headers, trace_id_of
from gateway.api.jobs import job_view
from gateway.api.responses import PAGE_READERS, existing_id, page_params
from gateway.api.views import ErrorView, JobAnswer, TasksPage, TaskView
from gateway.metrics import GatewayMetrics

log = logging.getLogger("triggerx.gateway.api")

Read = Callable[[str], Awaitable[bytes]]  # a raw id -> the answer's body; ApiError refuses
_JSON = (b"content-type", b"application/json")
BIG_EVIDENCE = 64 * 1024  # bytes of trigger evidence in a page beyond which it is encoded in a thread
# The request headers an answer depends on (ASGI gives names in lower case); the first of each
# counts, as in Quart's request.headers.get.
_READ_HEADERS = frozenset(
    {b"x-trace-id", b"x-api-key", b"authorization", b"content-length", b"transfer-encoding"}
)


class FastReads:
    """ASGI middleware: the hot reads from `storage`, checked by `access` and counted in
    `metrics`; every other request goes to `app`. `served` counts the answers given here."""

    def __init__(
        self, app: ASGIFramework, storage: GatewayStorage, access: AccessRules, metrics: GatewayMetrics
    ) -> None:
        self.app = app
        self.storage = storage
        self.access = access
        self.metrics = metrics
        self.served = 0
        # path prefix -> (the operation's path template, the read that answers it)
        self._routes: dict[str, tuple[str, Read]] = {
            "/api/jobs/id/": ("/api/jobs/id/{id}", self._job),
            "/api/tasks/job/": ("/api/tasks/job/{id}", self._tasks_of_job),
        }

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        headers = self._hot_headers(scope)
        route = None if headers is None else self._route(scope["path"])
        if headers is None or route is None:
            await self.app(scope, receive, send)
            return
        (template, read), raw_id = route
        status, body, extra = await self._answer(scope, headers, read, raw_id)
        self.served += 1
        self.metrics.http_request(template, scope["method"], status)
        response = [_JSON, (b"content-length", str(len(body)).encode()), *extra]
        await send({"type": "http.response.start", "status": status, "headers": response})
        # For HEAD too, as Quart: hypercorn sends none of a HEAD's body.
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _hot_headers(self, scope: Scope) -> dict[bytes, bytes] | None:
        """The request headers the answer depends on, if the request can be a hot read: an
        HTTP GET or HEAD, no query string, no body, no root path (Quart would strip it)."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return None
        if scope["query_string"] or scope.get("root_path", ""):
            return None
        found: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _READ_HEADERS and name not in found:
                found[name] = value
        if found.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in found:
            return None  # a body: BoundedBodies and Quart deal with it
        return found

    def _route(self, path: str) -> tuple[tuple[str, Read], str] | None:
        """The route and raw id of a hot path: a prefix, then ASCII digits only."""
        prefix, _, raw_id = path.rpartition("/")
        route = self._routes.get(prefix + "/")
        if route is None or not (raw_id.isascii() and raw_id.isdigit()):
            return None
        return route, raw_id

    async def _answer(
        self, scope: Scope, headers: dict[bytes, bytes], read: Read, raw_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Status, body and headers (beyond the content's) of the answer, as create_app's hooks
        and error handlers make them."""
        trace_id = trace_id_of(_text(headers.get(b"x-trace-id")))
        allowance = None
        try:
            admission = self.access.admit(
                "public",
                address=(scope.get("client") or ("<local>",))[0],
                key=_text(headers.get(b"x-api-key")),
                authorization=_text(headers.get(b"authorization")),
            )
            allowance = admission.allowance
            if admission.refusal is not None:
                raise admission.refusal
            status, body, extra = 200, await read(raw_id), {}
        except ApiError as refused:
            view = ErrorView(error=refused.reason, field=refused.field)
            status, body, extra = refused.status, msgspec.json.encode(view), refused.headers
        except Exception:
            log.exception("unexpected error serving %s (trace %s)", scope["path"], trace_id)
            view = ErrorView(error="internal error", trace_id=trace_id)
            status, body, extra = 500, msgspec.json.encode(view), {}
        pairs = [*extra.items(), *answer_headers(trace_id, allowance)]
        return status, body, [(name.lower().encode(), value.encode()) for name, value in pairs]

    async def _job(self, raw_id: str) -> bytes:
        """GET /api/jobs/id/{id}, as gateway.api.jobs answers it."""
        record = self.storage.jobs.get(existing_id("job", raw_id, self.storage.jobs.get))
        return msgspec.json.encode(JobAnswer(job=job_view(self.storage, record)))

    async def _tasks_of_job(self, raw_id: str) -> bytes:
        """GET /api/tasks/job/{id} with no query (the first page), as gateway.api.tasks answers it."""
        job_id = existing_id("job", raw_id, self.storage.jobs.get)
        limit, cursor = page_params(None, None)
        page = self.storage.tasks_of_job(job_id, limit=limit, after=cursor)

        def encode() -> bytes:
            tasks = [TaskView.of(task) for task in page.items]
            return msgspec.json.encode(TasksPage(tasks=tasks, cursor=page.cursor))

        if sum(len(task.trigger_detail) for task in page.items) > BIG_EVIDENCE:
            return await trio.to_thread.run_sync(encode, limiter=PAGE_READERS)
        return encode()


def _text(value: bytes | None) -> str | None:
    """A header's value as Quart decodes it."""
    return None if value is None else value.decode("latin-1")
