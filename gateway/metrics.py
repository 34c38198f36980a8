"""The gateway's Prometheus metrics (node.metrics: its own registry, Prometheus' naming), served
at `GET /metrics` on the gateway's HTTP port (gateway.api.metrics).

Labels take a few fixed values only: an HTTP request is counted by its operation's path
template (`/api/jobs/id/{id}`, never the path asked for), its method and its status class;
jobs and tasks by trigger kind (the registered kinds). The mesh's counters are exported
beside these by the role (`node.export_counts(mesh.metrics, MESH_DROPS)`).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

import trio

from gateway.ledger import TaskEvent, TaskLedger
from gateway.records import JobRecord
from gateway.storage import GatewayStorage
from node.metrics import NodeMetrics
from protocol.triggers import kind_names

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
FINISHED = ("completed", "failed")
_MAX_KNOWN_JOBS = 10_000  # job kinds remembered for counting tasks; more and the memo starts over


class GatewayMetrics:
    """What the gateway counts; `keepers_online`, if given, is read at each scrape."""

    def __init__(
        self, node: NodeMetrics | None = None, keepers_online: Callable[[], int] | None = None
    ) -> None:
        self.node = node or NodeMetrics()
        self.kinds = frozenset(kind_names())
        by_kind = [(kind,) for kind in sorted(self.kinds)]
        self.http_requests = self.node.counter(
            "triggerx_gateway_http_requests_total",
            "HTTP requests answered, by route (the operation's path template; `unmatched` when no "
            "route matched), method (`other` for an unusual one) and status class (2xx, 4xx, ...)",
            ["route", "method", "status"],
        )
        self.jobs_created = self.node.counter(
            "triggerx_gateway_jobs_created_total", "jobs created, by trigger kind", ["kind"], by_kind
        )
        self.tasks_created = self.node.counter(
            "triggerx_gateway_tasks_created_total",
            "tasks created (a trigger fired), by trigger kind",
            ["kind"],
            by_kind,
        )
        self.tasks_finished = self.node.counter(
            "triggerx_gateway_tasks_finished_total",
            "tasks that became completed or failed, by trigger kind and status (a failed task "
            "approved late is counted under both)",
            ["kind", "status"],
            product(sorted(self.kinds), FINISHED),
        )
        self.task_streams_dropped = self.node.counter(
            "triggerx_gateway_task_event_streams_dropped_total",
            "times the task counters fell too far behind the task ledger and missed events",
        )
        if keepers_online is not None:
            gauge = self.node.gauge("triggerx_gateway_keepers_online", "keepers online by heartbeat")
            gauge.set_function(keepers_online)
        self._kind_of_job: dict[int, str] = {}

    def http_request(self, route: str, method: str, status: int) -> None:
        """Count one answered request to `route` (a path template)."""
        self.http_requests.labels(route, method if method in METHODS else "other", f"{status // 100}xx").inc()

    def job_created(self, job: JobRecord) -> None:
        """Count a new job (JobIntake's on_created)."""
        self.jobs_created.labels(self._kind(job.spec.schedule_type)).inc()

    async def count_tasks(
        self,
        ledger: TaskLedger,
        storage: GatewayStorage,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Count `ledger`'s task events until cancelled; started once subscribed (start it
        with `nursery.start` before tasks can be created, so none is missed)."""
        events = ledger.subscribe(4096)
        task_status.started()
        while True:
            async with events:
                async for event in events:
                    self._count(event, storage)
            # The ledger dropped this reader (it fell 4,096 events behind): go on counting.
            self.task_streams_dropped.inc()
            events = ledger.subscribe(4096)

    def _count(self, event: TaskEvent, storage: GatewayStorage) -> None:
        if event.kind == "TASK_CREATED":
            self.tasks_created.labels(self._job_kind(event.task.job_id, storage)).inc()
        elif event.kind == "TASK_STATUS_CHANGED" and event.task.status in FINISHED:
            self.tasks_finished.labels(self._job_kind(event.task.job_id, storage), event.task.status).inc()

    def _job_kind(self, job_id: int, storage: GatewayStorage) -> str:
        kind = self._kind_of_job.get(job_id)
        if kind is None:
            job = storage.jobs.get(job_id)
            kind = self._kind("" if job is None else job.spec.schedule_type)
            if len(self._kind_of_job) >= _MAX_KNOWN_JOBS:
                self._kind_of_job.clear()
            self._kind_of_job[job_id] = kind
        return kind

    def _kind(self, name: str) -> str:
        return name if name in self.kinds else "other"
