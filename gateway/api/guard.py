"""What every request goes through before its route: a trace id, the caller's credentials and
its rate limit (docs/architecture.md, "The API's access rules").

- **Trace id**: an incoming `X-Trace-ID` of 8 to 40 letters, digits, `.`, `_` or `-` is
  adopted, any other replaced by a new one; it is returned in `X-Trace-ID`, named in the
  gateway's log lines for the request, stored with the jobs it creates and starts the trace
  id of each of their tasks (which every mesh message of the task carries).
- **API key** (`X-Api-Key`): optional unless the gateway requires keys. A key that is not one
  of this gateway's is a 401, a revoked one a 403: a bad key never passes as no key.
- **Admin** operations need `Authorization: Bearer <admin credential>`: none is a 401, a wrong
  one a 403.
- **Rate limit**: per key (its own limit), else per client address; every answer carries
  `X-RateLimit-Limit`, `-Remaining` and `-Reset`, and one over the limit is a 429 with
  `Retry-After`.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import logging
import re
import uuid
from dataclasses import dataclass

from quart import Response, g, request

from gateway.api.errors import ApiError
from gateway.api.operations import Operations
from gateway.api_keys import ApiKeys, KeyRefusedError
from gateway.rate_limits import Allowance, RateLimiter

log = logging.getLogger("triggerx.gateway.api")

_TRACE = re.compile(r"[A-Za-z0-9._-]{8,40}")
current_trace: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")
"""The trace id of the request being served (for the services it calls)."""


@dataclass
class AccessRules:
    """Who may call what, and how often.

    Args:
        keys: the gateway's API keys.
        admin_token: the admin credential (None: no admin operation can be called).
        anonymous_per_minute: requests per window from one client address without a key.
        keys_required: whether /api calls need a key.
    """

    keys: ApiKeys
    admin_token: str | None = None
    anonymous_per_minute: int = 600
    keys_required: bool = False
    limiter: RateLimiter | None = None

    def __post_init__(self) -> None:
        self.limiter = self.limiter or RateLimiter()
        self._admin_hash = None if self.admin_token is None else _digest(self.admin_token)

    async def before(self, operations: Operations) -> None:
        """Check the request about to be served (Quart's before_request); ApiError refuses it."""
        given = request.headers.get("X-Trace-ID", "")
        g.trace_id = given if _TRACE.fullmatch(given) else uuid.uuid4().hex
        current_trace.set(g.trace_id)
        operation = operations.by_endpoint.get(request.endpoint or "")
        if operation is None:  # not an API operation (docs, the document itself, a 404)
            return
        key = request.headers.get("X-Api-Key")
        caller: tuple[str, str]
        if key is not None:
            try:
                record = self.keys.check(key)
            except KeyRefusedError as refused:
                raise ApiError(refused.status, str(refused), "X-Api-Key") from None
            caller, limit = ("key", record.key_id), record.requests_per_minute
        elif self.keys_required and operation.access != "admin":
            raise ApiError(401, "this gateway needs an X-Api-Key on every request", "X-Api-Key")
        else:
            caller, limit = ("address", request.remote_addr or ""), self.anonymous_per_minute
        assert self.limiter is not None
        g.allowance = allowance = self.limiter.take(caller, limit)
        if not allowance.allowed:
            retry = str(allowance.reset_after)
            raise ApiError(
                429, f"over {limit} requests per minute: retry in {retry} s", headers={"Retry-After": retry}
            )
        if operation.access == "admin":
            self._check_admin()

    def _check_admin(self) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401, "admin operations need Authorization: Bearer <admin credential>", "Authorization"
            )
        if self._admin_hash is None or not hmac.compare_digest(self._admin_hash, _digest(token)):
            raise ApiError(403, "not the admin credential", "Authorization")


async def finish(response: Response) -> Response:
    """Add the trace id and the rate limit's headers to `response` (Quart's after_request)."""
    trace_id = g.get("trace_id")
    if trace_id:
        response.headers["X-Trace-ID"] = trace_id
    allowance: Allowance | None = g.get("allowance")
    if allowance is not None:
        response.headers["X-RateLimit-Limit"] = str(allowance.limit)
        response.headers["X-RateLimit-Remaining"] = str(allowance.remaining)
        response.headers["X-RateLimit-Reset"] = str(allowance.reset_after)
    return response


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()
