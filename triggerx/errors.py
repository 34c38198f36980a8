"""What can go wrong, as exceptions a program can catch by kind.

Every refusal by the gateway is an `ApiError` carrying the API's own `reason`, the `field` it
names (a JSON path such as `$.job.gasLimit`, a query parameter or a header) and the request's
`trace_id` (quote it to the gateway's operator). Its subclass says which kind of refusal it is.
"""

from __future__ import annotations


class TriggerxError(Exception):
    """The base of every error this package raises."""


class ConfigurationError(TriggerxError):
    """The client lacks what an operation needs (an account to sign with, a chain RPC URL)."""


class TransportError(TriggerxError):
    """The gateway or the chain could not be reached, or answered with something that is not the API."""


class ApiError(TriggerxError):
    """The gateway refused a request: HTTP `status`, its `reason`, the `field` at fault (or
    None) and the request's `trace_id` (or None)."""

    def __init__(
        self, status: int, reason: str, field: str | None = None, trace_id: str | None = None
    ) -> None:
        where = f" ({field})" if field else ""
        super().__init__(f"{status}: {reason}{where}")
        self.status = status
        self.reason = reason
        self.field = field
        self.trace_id = trace_id


class InvalidRequestError(ApiError):
    """400, 413, 415 or 422: the request is malformed or a value is out of bounds; `field` names
    it. A job the SDK cannot sign is refused before it is sent, as the gateway would (400)."""


class UnauthorizedError(ApiError):
    """401: an API key or admin credential is missing or unknown."""


class ForbiddenError(ApiError):
    """403: the credential is revoked or does not allow this."""


class NotFoundError(ApiError):
    """404: no such job, task, user or keeper."""


class ConflictError(ApiError):
    """409: the request clashes with the state (a nonce used twice, a job already cancelled)."""


class RateLimitedError(ApiError):
    """429: too many requests; retry after `retry_after` seconds."""

    def __init__(self, status: int, reason: str, field: str | None, trace_id: str | None, retry_after: float):
        super().__init__(status, reason, field, trace_id)
        self.retry_after = retry_after


class UnavailableError(ApiError):
    """503: the gateway cannot do this now (its chain does not answer, or it offers no such service)."""


class ServerError(ApiError):
    """Any other 5xx: a fault in the gateway; `trace_id` finds it in the gateway's log."""


class ChainError(TriggerxError):
    """A chain transaction failed (reverted or refused) or the chain's answer was unusable."""


class WatchError(TriggerxError):
    """The gateway refused a WebSocket subscription (an ERROR frame): `reason` says why."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason if field is None else f"{reason} ({field})")
        self.reason = reason
        self.field = field


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    415: InvalidRequestError,
    422: InvalidRequestError,
    503: UnavailableError,
}


def api_error(
    status: int, reason: str, field: str | None, trace_id: str | None, retry_after: float
) -> ApiError:
    """The exception for an error answer with `status`."""
    if status == 429:
        return RateLimitedError(status, reason, field, trace_id, retry_after)
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return kind(status, reason, field, trace_id)
