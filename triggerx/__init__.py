"""The TriggerX Python SDK: create and follow keeper jobs through a gateway.

    from triggerx import Client, Job

    with Client("http://127.0.0.1:8080", account="0x<owner key>") as client:
        job = client.create(Job.interval("0x<contract>", "increment()", every_seconds=10))
        for event in client.watch(job.id):
            print(event.type, event.task.id, event.task.status)

`Client` is synchronous; `AsyncClient` has the same methods for trio and asyncio. Jobs are
built with `Job`'s constructors (interval, cron, at, on_event, when, after, after_previous);
errors are the exceptions in `triggerx.errors`.
"""

from triggerx.client import AsyncClient, TaskEvent
from triggerx.errors import (
    ApiError,
    ChainError,
    ConfigurationError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    TriggerxError,
    UnauthorizedError,
    UnavailableError,
    WatchError,
)
from triggerx.jobs import Job, Script
from triggerx.sync import Client

__all__ = [
    "ApiError",
    "AsyncClient",
    "ChainError",
    "Client",
    "ConfigurationError",
    "ConflictError",
    "ForbiddenError",
    "InvalidRequestError",
    "Job",
    "NotFoundError",
    "RateLimitedError",
    "Script",
    "ServerError",
    "TaskEvent",
    "TransportError",
    "TriggerxError",
    "UnauthorizedError",
    "UnavailableError",
    "WatchError",
]
