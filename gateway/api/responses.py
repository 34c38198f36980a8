"""JSON responses and the id rules every route shares."""

from __future__ import annotations

from typing import Any

import msgspec
from quart import Response
from werkzeug.routing import BaseConverter

from node.store import MAX_INT_KEY, Table

MAX_PAGE = 500
MAX_ID = MAX_INT_KEY  # the store keys ints as signed 64-bit; ids start at 1


class PathId(BaseConverter):
    """An integer in a path, of any size or sign: the handler, not the router, refuses ids
    the store cannot hold, so they get a 404 that names them (they were a 500)."""

    regex = r"-?[0-9]+"


def stored_id(raw: str) -> int | None:
    """The id `raw` names if the store could hold it, else None."""
    if len(raw) > 20:  # also keeps int() away from thousands of digits
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None


def not_found(kind: str, raw: str) -> Response:
    """404 for a missing record; an id out of range says so."""
    if stored_id(raw) is not None:
        return error(404, f"no {kind} {raw}")
    shown = raw if len(raw) <= 40 else f"{raw[:20]}… ({len(raw)} digits)"
    return error(404, f"no {kind} {shown}: {kind} ids are 1 to {MAX_ID}")


def one(kind: str, table: Table[Any], raw_id: str) -> Response:
    """200 with the record `raw_id` names in `table`, or the 404 of `not_found`."""
    record_id = stored_id(raw_id)
    record = None if record_id is None else table.get(record_id)
    return json({kind: record}) if record else not_found(kind, raw_id)


def json(payload: Any, status: int = 200) -> Response:
    """`payload` as JSON (msgspec: records in camelCase)."""
    return Response(msgspec.json.encode(payload), status=status, content_type="application/json")


def error(status: int, reason: str, **extra: Any) -> Response:
    """The API's error shape: `{"error": reason, ...extra}`."""
    return json({"error": reason, **extra}, status)
