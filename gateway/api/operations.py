"""The API's operations, each declared once: its method, path, parameters, body, answer, errors
and who may call it. Quart's routing and the OpenAPI 3.1 document (gateway.api.openapi) are
both made from these declarations, so the document cannot drift from the code.

    ops = Operations()
    @ops.route(blueprint, Operation("GET", "/api/jobs/id/{id}", "One job", "jobs", JobAnswer,
                                    params=(JOB_ID,), errors=(404,)))
    async def get_job(id: int) -> Response: ...

Path parameters are converted before the handler runs: an `id` parameter is an ASCII-digit
integer the store can hold (anything else is a 404 naming the id), an `address` parameter a
0x-prefixed 20-byte hex address (anything else is a 400 naming the parameter).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from quart import Blueprint, Response, request

from gateway.api.errors import ApiError

Access = Literal["public", "admin"]
"""`public`: anyone (an API key, if given, must be valid and lifts the rate limit); `admin`:
the admin credential only. Acting for an address is public with that address's signature in
the body."""
ParamKind = Literal["id", "address", "text"]
Handler = Callable[..., Awaitable[Response]]

ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
ADDRESS_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
MAX_TEXT = 4096  # the longest text parameter, unless its schema says less
_CONVERTERS: dict[ParamKind, str] = {"id": "id", "address": "string", "text": "string"}


@dataclass(frozen=True)
class Param:
    """A path or query parameter: its name, where it is, what it means, and its JSON Schema."""

    name: str
    where: Literal["path", "query", "header"]
    description: str
    schema: dict[str, Any]
    required: bool = False
    kind: ParamKind = "text"

    def check(self, raw: str | None) -> None:
        """ApiError (400 naming the parameter) unless `raw` is what the schema says: the
        route's handler reads only values its document promised (schemathesis holds it to that)."""
        if raw is None:
            if self.required:
                raise ApiError(400, "missing", self.name)
            return
        schema = self.schema
        if schema.get("type") == "integer":
            digits = raw.removeprefix("-")
            if not (digits.isascii() and digits.isdigit() and len(digits) <= 19):
                raise ApiError(400, "expected an integer", self.name)
            low, high = schema.get("minimum"), schema.get("maximum")
            if (low is not None and int(raw) < low) or (high is not None and int(raw) > high):
                raise ApiError(400, f"expected an integer from {low} to {high}", self.name)
            return
        if len(raw) > schema.get("maxLength", MAX_TEXT) or len(raw) < schema.get("minLength", 0):
            raise ApiError(400, f"expected at most {schema.get('maxLength', MAX_TEXT)} characters", self.name)
        if "enum" in schema and raw not in schema["enum"]:
            raise ApiError(400, f"expected one of {', '.join(schema['enum'])}", self.name)
        if "pattern" in schema and not re.search(schema["pattern"], raw):
            raise ApiError(400, f"expected a value matching {schema['pattern']}", self.name)


@dataclass(frozen=True)
class Link:
    """An OpenAPI link from an answer to another operation: `parameters` maps that operation's
    parameters to runtime expressions on this answer, e.g. {"id": "$response.body#/job/id"}."""

    name: str
    operation_id: str
    parameters: dict[str, str]


@dataclass(frozen=True)
class Operation:
    """One route of the API.

    `answer` is the msgspec type of the success body (sent as `status`); `body` the type of
    the JSON request body, if any; `errors` the 4xx/5xx statuses it may answer besides the
    ones every operation may (gateway.api.openapi.COMMON_ERRORS); `same_answer` other statuses
    answered with `answer` itself, and what each means (health's 503); `media` the answer's
    media type when it is not JSON (its schema is then a string).
    """

    method: str
    path: str
    summary: str
    tag: str
    answer: Any
    status: int = 200
    body: Any = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    same_answer: tuple[tuple[int, str], ...] = ()
    access: Access = "public"
    description: str = ""
    media: str = "application/json"
    links: tuple[Link, ...] = ()

    @property
    def operation_id(self) -> str:
        """A stable, unique name: the method and the path's words, a parameter's name standing
        for it unless the word before says it (`/api/jobs/id/{id}`: `get_api_jobs_id`)."""
        words: list[str] = []
        for part in filter(None, self.path.split("/")):
            word = part.strip("{}")
            if not (part.startswith("{") and words and words[-1] == word):
                words.append(word)
        return "_".join([self.method.lower(), *words]).replace("-", "_")

    @property
    def rule(self) -> str:
        """The Quart (werkzeug) rule of the path: `{id}` becomes `<id:id>`."""
        rule = self.path
        for param in self.params:
            if param.where == "path":
                rule = rule.replace("{" + param.name + "}", f"<{_CONVERTERS[param.kind]}:{param.name}>")
        return rule


@dataclass
class Operations:
    """Every operation the API serves, by Quart endpoint name."""

    by_endpoint: dict[str, Operation] = field(default_factory=dict)

    def route(self, blueprint: Blueprint, operation: Operation) -> Callable[[Handler], Handler]:
        """Serve `operation` on `blueprint` with the decorated handler."""

        # Ids and addresses in a path say what is wrong themselves (404, 400); text is checked here.
        queries = [param for param in operation.params if param.where == "query"]
        texts = [param for param in operation.params if param.where == "path" and param.kind == "text"]

        def register(handler: Handler) -> Handler:
            @functools.wraps(handler)
            async def checked(**path: str) -> Response:
                for param in queries:
                    param.check(request.args.get(param.name))
                for param in texts:
                    param.check(path[param.name])
                return await handler(**path)

            blueprint.add_url_rule(operation.rule, view_func=checked, methods=[operation.method])
            self.by_endpoint[f"{blueprint.name}.{handler.__name__}"] = operation
            return handler

        return register

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.by_endpoint.values())
