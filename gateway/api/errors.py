"""How a route refuses a request (ApiError, answered as JSON by create_app's handler), and how it
reads a JSON body: only as application/json, within the nesting limit, decoded straight into
its msgspec type, every problem naming its field."""

from __future__ import annotations

from typing import TypeVar

import msgspec
import trio
from quart import request

from node.web import json_nesting

T = TypeVar("T")
MAX_NESTING = 32  # deeper JSON could run the decoder into the C stack (gateway.jobs)


class ApiError(Exception):
    """The request cannot be served: answered with `status` and `{"error": reason, "field": field}`."""

    def __init__(
        self, status: int, reason: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.headers = headers or {}


async def json_bytes() -> bytes:
    """The request's body, which must be declared application/json (415 otherwise) and nest at
    most MAX_NESTING deep (400)."""
    if request.mimetype != "application/json":
        declared = request.mimetype or "no Content-Type"
        raise ApiError(415, f"the body must be application/json, not {declared}", "Content-Type")
    data = await request.get_data()
    # Counting brackets runs in C; only a body with many of them is measured, off the event
    # loop (a 64 KiB body of brackets takes tens of milliseconds to scan).
    many = data.count(b"[") + data.count(b"{") > MAX_NESTING
    if many and await trio.to_thread.run_sync(json_nesting, data) > MAX_NESTING:
        raise ApiError(400, f"nested deeper than {MAX_NESTING} levels", "body")
    return data


async def json_body(kind: type[T]) -> T:
    """The request's JSON body decoded as `kind`; ApiError names the first bad field."""
    data = await json_bytes()
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as error:
        field, problem = validation_field(error)
        raise ApiError(400, problem, field) from None
    except msgspec.DecodeError as error:
        raise ApiError(400, f"not JSON: {error}", "body") from None


def validation_field(error: msgspec.ValidationError) -> tuple[str, str]:
    """The (field, problem) a msgspec validation error names."""
    problem, _, path = str(error).partition(" - at `")
    return path.rstrip("`") or "$", problem
