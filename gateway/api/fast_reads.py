"""The hot reads, answered without Quart: `GET` and `HEAD` of `/api/jobs/id/<id>` and
`/api/tasks/job/<id>` (issue 12's throughput target names them).

Quart and hypercorn together cost far more than the read itself: these routes answered
420-620 req/s through Quart at ~100 % of one core, ~1,000-1,300 req/s as a bare ASGI app on
hypercorn (bench/gateway.py; wrk on the same 2-core machine). gateway.api.fast_lane parses the
requests it can answer exactly and asks `FastReads`, which answers byte for byte as Quart
would: the same access rules (gateway.api.guard's `AccessRules.admit`: trace id, API key, rate
limit, with the same headers and refusals), the same view structs and 404s, the same 500 for an
unreadable record, counted in the same request metric. tests/integration/test_fast_reads.py
asks both the same and compares the answers.

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
from dataclasses import dataclass

import msgspec
import trio

from gateway import GatewayStorage
from gateway.api.errors import ApiError
from gateway.api.guard import AccessRules, answer_headers, trace_id_of
from gateway.api.jobs import job_view
from gateway.api.responses import PAGE_READERS, existing_id, page_params
from gateway.api.views import ErrorView, JobAnswer, TasksPage, TaskView
from gateway.metrics import GatewayMetrics

log = logging.getLogger("triggerx.gateway.api")

Read = Callable[[str], Awaitable[bytes]]  # a raw id -> the answer's body; ApiError refuses
BIG_EVIDENCE = 64 * 1024  # bytes of trigger evidence in a page beyond which it is encoded in a thread
# The request headers an answer depends on, by their lower-case names.
READ_HEADERS = frozenset({b"x-trace-id", b"x-api-key", b"authorization"})


@dataclass(frozen=True, slots=True)
class HotRoute:
    """A hot path, matched: the path, its operation's template, the read that answers it, and
    the raw id in it."""

    path: str
    template: str
    read: Read
    raw_id: str


@dataclass(frozen=True, slots=True)
class FastAnswer:
    """A hot read's answer: its status, body and headers (in order, the content's first)."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


class FastReads:
    """The hot reads from `storage`, checked by `access` and counted in `metrics`.
    `served` counts the answers given."""

    def __init__(self, storage: GatewayStorage, access: AccessRules, metrics: GatewayMetrics) -> None:
        self.storage = storage
        self.access = access
        self.metrics = metrics
        self.served = 0
        # path prefix -> (the operation's path template, the read that answers it)
        self._routes: dict[str, tuple[str, Read]] = {
            "/api/jobs/id/": ("/api/jobs/id/{id}", self._job),
            "/api/tasks/job/": ("/api/tasks/job/{id}", self._tasks_of_job),
        }

    def route(self, path: str) -> HotRoute | None:
        """The route and raw id of a hot path: a prefix, then ASCII digits only (Quart's router
        decides every other form, such as a sign or other digits)."""
        prefix, _, raw_id = path.rpartition("/")
        route = self._routes.get(prefix + "/")
        if route is None or not (raw_id.isascii() and raw_id.isdigit()):
            return None
        template, read = route
        return HotRoute(path, template, read, raw_id)

    async def answer(
        self, method: str, route: HotRoute, headers: dict[bytes, bytes], client: str
    ) -> FastAnswer:
        """The answer to `method` ("GET" or "HEAD") of `route` from `client` (its address),
        with `headers` (the first of each of READ_HEADERS sent), as create_app's hooks and error
        handlers make it."""
        trace_id = trace_id_of(_text(headers.get(b"x-trace-id")))
        allowance = None
        try:
            admission = self.access.admit(
                "public",
                address=client,
                key=_text(headers.get(b"x-api-key")),
                authorization=_text(headers.get(b"authorization")),
            )
            allowance = admission.allowance
            if admission.refusal is not None:
                raise admission.refusal
            status, body, extra = 200, await route.read(route.raw_id), {}
        except ApiError as refused:
            view = ErrorView(error=refused.reason, field=refused.field)
            status, body, extra = refused.status, msgspec.json.encode(view), refused.headers
        except Exception:
            log.exception("unexpected error serving %s (trace %s)", route.path, trace_id)
            view = ErrorView(error="internal error", trace_id=trace_id)
            status, body, extra = 500, msgspec.json.encode(view), {}
        self.served += 1
        self.metrics.http_request(route.template, method, status)
        pairs = [*extra.items(), *answer_headers(trace_id, allowance)]
        return FastAnswer(
            status,
            body,
            [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((name.lower().encode(), value.encode()) for name, value in pairs),
            ],
        )

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
