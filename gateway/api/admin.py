"""Admin: API keys (issue, list an owner's, revoke or change a limit). Admin credential only."""

from __future__ import annotations

from typing import Literal

import msgspec
from quart import Blueprint, Response

from gateway.api.errors import ApiError, json_body
from gateway.api.operations import Link, Operation, Operations, Param
from gateway.api.responses import json
from gateway.api_keys import ApiKeys, ApiKeyView, OwnerName, RequestsPerMinute, key_id_of


class NewKeyRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """A key to issue: whom it is for, and its limit (default: the gateway's for new keys)."""

    owner: OwnerName
    requests_per_minute: RequestsPerMinute | None = None


class NewKeyAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """The new key, shown this once (the gateway keeps only its hash), and its record."""

    api_key: str
    key: ApiKeyView


class KeyChange(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """A change to a key: `revoked: true` revokes it for good; a new limit."""

    revoked: Literal[True] | None = None
    requests_per_minute: RequestsPerMinute | None = None


class KeyAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """One key's record."""

    key: ApiKeyView


class KeysAnswer(msgspec.Struct, rename="camel", kw_only=True):
    """An owner's keys."""

    keys: list[ApiKeyView]


# One path, /api/admin/api-keys/{name}, for both: the owner the keys are for (GET), or a key or
# its 12-hex-digit id (PUT); OpenAPI takes two templates of one shape for one path.
NAME = Param(
    "name",
    "path",
    "GET: whom the keys are for; PUT: the key, or its 12-hex-digit id",
    {"type": "string", "maxLength": 80},
)


def admin_blueprint(ops: Operations, keys: ApiKeys, key_requests_per_minute: int) -> Blueprint:
    """The admin routes; new keys get `key_requests_per_minute` unless the request says."""
    admin = Blueprint("admin", __name__)

    @ops.route(
        admin,
        Operation(
            "POST",
            "/api/admin/api-keys",
            "Issue an API key",
            "admin",
            NewKeyAnswer,
            201,
            NewKeyRequest,
            access="admin",
            links=(
                Link("keys", "get_api_admin_api_keys_name", {"name": "$response.body#/key/owner"}),
                Link("change", "put_api_admin_api_keys_name", {"name": "$response.body#/key/keyId"}),
            ),
        ),
    )
    async def issue_key() -> Response:
        wanted = await json_body(NewKeyRequest)
        key, record = keys.issue(wanted.owner, wanted.requests_per_minute or key_requests_per_minute)
        return json(NewKeyAnswer(api_key=key, key=ApiKeyView.of(record)), 201)

    @ops.route(
        admin,
        Operation(
            "GET",
            "/api/admin/api-keys/{name}",
            "An owner's API keys",
            "admin",
            KeysAnswer,
            params=(NAME,),
            access="admin",
        ),
    )
    async def keys_of(name: str) -> Response:
        return json(KeysAnswer(keys=[ApiKeyView.of(record) for record in keys.of_owner(name)]))

    @ops.route(
        admin,
        Operation(
            "PUT",
            "/api/admin/api-keys/{name}",
            "Revoke an API key, or change its limit",
            "admin",
            KeyAnswer,
            body=KeyChange,
            params=(NAME,),
            errors=(404,),
            access="admin",
        ),
    )
    async def change_key(name: str) -> Response:
        change = await json_body(KeyChange)
        key_id = key_id_of(name)
        record = (
            None
            if key_id is None
            else keys.change(
                key_id, revoke=bool(change.revoked), requests_per_minute=change.requests_per_minute
            )
        )
        if record is None:
            raise ApiError(404, "no such API key")
        return json(KeyAnswer(key=ApiKeyView.of(record)))

    return admin
