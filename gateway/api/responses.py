"""JSON answers, and the path rules every route shares: ids the store can hold, addresses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import trio
from eth_utils import is_address, is_checksum_address, to_checksum_address
from quart import Response, request
from werkzeug.routing import BaseConverter

from gateway.api.errors import ApiError
from gateway.api.operations import ID_SCHEMA, Param
from node.store import MAX_INT_KEY, Page

R = TypeVar("R")

MAX_PAGE = 500
MAX_ID = MAX_INT_KEY  # the store keys ints as signed 64-bit; ids start at 1


class PathId(BaseConverter):
    """An integer in a path, of any size or sign (ASCII digits only): the handler, not the
    router, refuses ids the store cannot hold, so they get a 404 that names them."""

    regex = r"-?[0-9]+"


def stored_id(raw: str) -> int | None:
    """The id `raw` names if the store could hold it, else None."""
    if len(raw) > 20 or not raw.lstrip("-").isascii():  # keeps int() off thousands of digits
        return None
    if raw.startswith(("0", "-0")):  # one name per record: "01" is not job 1
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None


def existing_id(kind: str, raw: str, exists: Any) -> int:
    """The id `raw` names if `exists(id)`; otherwise a 404 that says why."""
    record_id = stored_id(raw)
    if record_id is not None and exists(record_id):
        return record_id
    if record_id is not None:
        raise ApiError(404, f"no {kind} {raw}")
    shown = raw if len(raw) <= 40 else f"{raw[:20]}… ({len(raw)} digits)"
    raise ApiError(404, f"no {kind} {shown}: {kind} ids are 1 to {MAX_ID}")


def path_address(raw: str, field: str = "address") -> str:
    """The checksummed address `raw` names: 0x and 40 hex digits, all lower case, all upper
    case or checksummed (EIP-55); a 400 naming `field` otherwise."""
    if len(raw) != 42 or not raw.startswith("0x") or not is_address(raw):
        raise ApiError(400, f"{raw[:50]!r} is not a 0x address (checksummed, or all one case)", field)
    # eth_utils' is_address takes any mix of cases: a mixed-case address must be checksummed.
    if raw[2:] not in (raw[2:].lower(), raw[2:].upper()) and not is_checksum_address(raw):
        raise ApiError(400, f"{raw} has a wrong EIP-55 checksum (a typo?)", field)
    return to_checksum_address(raw)


def page_params(limit: str | None, cursor: str | None) -> tuple[int, str | None]:
    """The `limit` (default 100) and `cursor` of a paged query; the operation checked them
    against PAGE_PARAMS' schemas before its handler ran (gateway.api.operations)."""
    return (100 if limit is None else int(limit)), cursor


PAGE_READERS = trio.CapacityLimiter(4)
"""Pages read (and encoded) at once: each is up to MAX_PAGE records, off the event loop."""


async def paged_answer(
    page_of: Callable[[int, str | None], Page[R]], answer: Callable[[Page[R]], Any]
) -> Response:
    """200 with `answer(page)` of the page `page_of(limit, cursor)` for the request's `limit`
    and `cursor` (400 naming a bad one), read and encoded in a worker thread: a page of
    MAX_PAGE records costs tens of milliseconds, which the event loop must not wait."""
    limit, cursor = page_params(request.args.get("limit"), request.args.get("cursor"))

    def build() -> bytes:
        try:
            page = page_of(limit, cursor)
        except ValueError:
            raise ApiError(400, "not a cursor this query gave out", "cursor") from None
        return msgspec.json.encode(answer(page))

    body = await trio.to_thread.run_sync(build, limiter=PAGE_READERS)
    return Response(body, content_type="application/json")


def json(payload: Any, status: int = 200) -> Response:
    """`payload` as JSON (msgspec: structs in camelCase)."""
    return Response(msgspec.json.encode(payload), status=status, content_type="application/json")


def error(status: int, reason: str, **extra: Any) -> Response:
    """The API's error shape: `{"error": reason, ...extra}` (None values left out)."""
    return json({"error": reason} | {k: v for k, v in extra.items() if v is not None}, status)


def id_param(kind: str) -> Param:
    """The `{id}` path parameter of a `kind` record."""
    return Param("id", "path", f"the {kind}'s id", ID_SCHEMA, required=True, kind="id")


PAGE_PARAMS = (
    Param(
        "limit",
        "query",
        f"most items in the page (1 to {MAX_PAGE}; default 100)",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    ),
    Param("cursor", "query", "the `cursor` of the previous page", {"type": "string", "maxLength": 200}),
)
