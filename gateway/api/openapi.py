"""The OpenAPI 3.1 document of the API, made from its operations (gateway.api.operations) and
the msgspec types they declare, whose JSON Schemas (2020-12, as OpenAPI 3.1 takes them) are
what requests are decoded with and answers encoded from."""

from __future__ import annotations

from importlib import resources
from typing import Any

import msgspec

from gateway.api.operations import Operation, Operations
from gateway.api.views import ErrorView

COMMON_ERRORS: dict[int, str] = {
    401: "an X-Api-Key that is not a key of this gateway (or, with keys required, none)",
    403: "a revoked API key",
    429: "over the rate limit: see Retry-After",
    500: "an unexpected failure; its traceId finds it in the gateway's log",
}
BODY_ERRORS: dict[int, str] = {
    400: "a field is missing or invalid: `field` names it",
    408: "the body did not arrive in time",
    413: "the body is over the size limit",
    415: "the body is not application/json",
}
ERROR_MEANINGS: dict[int, str] = {
    400: "invalid input: `field` names it",
    404: "no such record (the reason names it)",
    409: "conflicts with what exists (the reason says what)",
    422: "well formed, but cannot be done as asked (the reason says why)",
    503: "this gateway does not offer it",
    **COMMON_ERRORS,
    **BODY_ERRORS,
}
RATE_HEADERS: dict[str, str] = {
    "X-RateLimit-Limit": "requests allowed per window (60 s) to this key, or this address without one",
    "X-RateLimit-Remaining": "requests left in the current window",
    "X-RateLimit-Reset": "seconds until the window starts again",
}


def openapi_document(operations: Operations, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `operations`."""
    ops = sorted(operations, key=lambda op: (op.path, op.method))
    types = [ErrorView] + [t for op in ops for t in (op.answer, op.body) if t is not None]
    refs, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    schema_of = dict(zip([id(t) for t in types], refs, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {"title": "TriggerX gateway API", "version": version, "description": _guide()},
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in sorted({op.tag for op in ops})],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "admin": {"type": "http", "scheme": "bearer", "description": "the admin credential"},
            },
            "headers": {
                name: {"description": meaning, "schema": {"type": "integer", "minimum": 0}}
                for name, meaning in RATE_HEADERS.items()
            }
            | {"X-Trace-ID": {"description": "the request's trace id", "schema": {"type": "string"}}},
        },
    }


def _operation(op: Operation, schema_of: dict[int, dict[str, Any]]) -> dict[str, Any]:
    headers = {name: {"$ref": f"#/components/headers/{name}"} for name in [*RATE_HEADERS, "X-Trace-ID"]}
    if op.answer is None:
        success: dict[str, Any] = {"description": op.summary, "headers": headers}
    else:
        schema = schema_of[id(op.answer)] if op.media == "application/json" else {"type": "string"}
        success = {"description": op.summary, "headers": headers, "content": {op.media: {"schema": schema}}}
    if op.links:
        success["links"] = {
            link.name: {"operationId": link.operation_id, "parameters": link.parameters} for link in op.links
        }
    errors = dict.fromkeys(op.errors) | dict.fromkeys(COMMON_ERRORS)
    if op.body is not None:
        errors |= dict.fromkeys(BODY_ERRORS)
    if any(p.where != "path" or p.kind != "id" for p in op.params):  # checked against its schema
        errors[400] = None
    error_content = {"application/json": {"schema": schema_of[id(ErrorView)]}}
    responses: dict[str, Any] = {str(op.status): success}
    for status in sorted(errors):
        answer: dict[str, Any] = {"description": ERROR_MEANINGS[status], "content": error_content}
        if status == 429:
            answer["headers"] = headers | {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}}
        responses[str(status)] = answer
    for status, meaning in op.same_answer:
        responses[str(status)] = success | {"description": meaning}
    document: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": [_parameter(p) for p in op.params],
        "responses": responses,
        "security": [{"admin": []}] if op.access == "admin" else [{"apiKey": []}, {}],
    }
    if op.description:
        document["description"] = op.description
    if op.body is bytes:
        raw = {"schema": {"type": "string", "format": "binary", "minLength": 1}}
        document["requestBody"] = {"content": {"application/octet-stream": raw}, "required": True}
    elif op.body is not None:
        body = {"content": {"application/json": {"schema": schema_of[id(op.body)]}}, "required": True}
        document["requestBody"] = body
    return document


def _parameter(param: Any) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.where,
        "description": param.description,
        "required": param.required or param.where == "path",
        "schema": param.schema,
    }


def _guide() -> str:
    """The document's description: how to call the API, and how to sign (gateway/api/guide.md)."""
    return resources.files("gateway.api").joinpath("guide.md").read_text(encoding="utf-8")
