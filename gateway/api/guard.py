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
from gateway.api.operations import Access, Operations
from gateway.api_keys import ApiKeys, KeyRefusedError
from gateway.clients import client_of
from gateway.rate_limits import Allowance, RateLimiter

log = logging.getLogger("triggerx.gateway.api")

_TRACE = re.compile(r"[A-Za-z0-9._-]{8,40}")
current_trace: contextvars.ContextVar[str] = contextvars.ContextVar("trace_id", default="")
"""The trace id of the request being served (for the services it calls)."""


def trace_id_of(given: str | None) -> str:
    """The trace id of a request whose X-Trace-ID is `given`: adopted if well-formed, else a new one."""
    return given if given is not None and _TRACE.fullmatch(given) else uuid.uuid4().hex


@dataclass(frozen=True)
class Admission:
    """What the access rules made of one request: the caller's `allowance` (None: no limit was
    counted) and, if the request is refused, the `refusal` to answer with."""

    allowance: Allowance | None = None
    refusal: ApiError | None = None


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

    def admit(self, access: Access, *, address: str, key: str | None, authorization: str | None) -> Admission:
        """Check a request for an operation open to `access`, from client `address`, with the
        X-Api-Key `key` and the Authorization header `authorization` (None: not sent).

        Framework-free: Quart's before_request (`before`) and the hot reads served below Quart
        (gateway.api.fast_reads) both decide through it, so they cannot differ."""
        caller: tuple[str, str]
        if key is not None:
            try:
                record = self.keys.check(key)
            except KeyRefusedError as refused:  # counted as the address's: guessing is not free
                allowance = self.anonymous(address)
                if not allowance.allowed:
                    return Admission(allowance, self._over(allowance))
                return Admission(allowance, ApiError(refused.status, str(refused), "X-Api-Key"))
            caller, limit = ("key", record.key_id), record.requests_per_minute
        elif self.keys_required and access != "admin":
            refusal = ApiError(401, "this gateway needs an X-Api-Key on every request", "X-Api-Key")
            return Admission(refusal=refusal)
        else:
            caller, limit = ("address", client_of(address)), self.anonymous_per_minute
        assert self.limiter is not None
        allowance = self.limiter.take(caller, limit)
        if not allowance.allowed:
            return Admission(allowance, self._over(allowance))
        return Admission(allowance, self._check_admin(authorization) if access == "admin" else None)

    def anonymous(self, address: str) -> Allowance:
        """Count one request against client `address`'s own limit (IPv6 by /64: gateway.clients)."""
        assert self.limiter is not None
        return self.limiter.take(("address", client_of(address)), self.anonymous_per_minute)

    @staticmethod
    def _over(allowance: Allowance) -> ApiError:
        retry = str(allowance.reset_after)
        reason = f"over {allowance.limit} requests per minute: retry in {retry} s"
        return ApiError(429, reason, headers={"Retry-After": retry})

    async def before(self, operations: Operations) -> None:
        """Check the request about to be served (Quart's before_request); ApiError refuses it."""
        g.trace_id = trace_id_of(request.headers.get("X-Trace-ID"))
        current_trace.set(g.trace_id)
        operation = operations.by_endpoint.get(request.endpoint or "")
        if operation is None:  # docs, the document itself, a 404: public, but counted too
            g.allowance = allowance = self.anonymous(request.remote_addr or "")
            if not allowance.allowed:
                raise self._over(allowance)
            return
        headers = request.headers
        admission = self.admit(
            operation.access,
            address=request.remote_addr or "",
            key=headers.get("X-Api-Key"),
            authorization=headers.get("Authorization"),
        )
        g.allowance = admission.allowance
        if admission.refusal is not None:
            raise admission.refusal

    def _check_admin(self, authorization: str | None) -> ApiError | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return ApiError(
                401, "admin operations need Authorization: Bearer <admin credential>", "Authorization"
            )
        if self._admin_hash is None or not hmac.compare_digest(self._admin_hash, _digest(token)):
            return ApiError(403, "not the admin credential", "Authorization")
        return None


def answer_headers(trace_id: str, allowance: Allowance | None) -> list[tuple[str, str]]:
    """The headers every answer carries: its trace id and the caller's rate limit (if counted)."""
    headers = [("X-Trace-ID", trace_id)] if trace_id else []
    if allowance is not None:
        headers += [
            ("X-RateLimit-Limit", str(allowance.limit)),
            ("X-RateLimit-Remaining", str(allowance.remaining)),
            ("X-RateLimit-Reset", str(allowance.reset_after)),
        ]
    return headers


async def finish(response: Response) -> Response:
    """Add the trace id and the rate limit's headers to `response` (Quart's after_request;
    async, as Quart runs a sync hook in a worker thread)."""
    for name, value in answer_headers(g.get("trace_id", ""), g.get("allowance")):
        response.headers[name] = value
    return response


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()
