"""Scripts: upload one, and serve it by CID as a raw block (trustless: the reader checks it)."""

from __future__ import annotations

import time

import msgspec
from quart import Blueprint, Response, request

from gateway import GatewayStorage
from gateway.api.errors import ApiError
from gateway.api.operations import Operation, Operations, Param
from gateway.api.responses import json
from gateway.clients import client_of
from gateway.storage import UNPINNED_SCRIPTS_PER_CLIENT
from node.content import MAX_SCRIPT_BYTES, CidError, parse_cid, script_cid


class UploadAnswer(msgspec.Struct, kw_only=True):
    """An uploaded script's CID (CIDv1, raw, sha2-256: name it in a job's `script.cid`) and size."""

    cid: str
    size: int


def scripts_blueprint(ops: Operations, storage: GatewayStorage) -> Blueprint:
    """The script routes."""
    scripts = Blueprint("scripts", __name__)

    @ops.route(
        scripts,
        Operation(
            "POST",
            "/api/scripts",
            f"Upload a script (its bytes, at most {MAX_SCRIPT_BYTES})",
            "scripts",
            UploadAnswer,
            status=201,
            body=bytes,
            description=f"Uploads no job names are kept a day at most, and {UNPINNED_SCRIPTS_PER_CLIENT} "
            "of one client's at most (an IPv4 address or an IPv6 /64; its next upload pushes out "
            "its oldest): upload a script shortly before the job that names it.",
        ),
    )
    async def upload() -> Response:
        data = await request.get_data()
        if not data:
            raise ApiError(400, "the body is empty: send the script's bytes", "body")
        if len(data) > MAX_SCRIPT_BYTES:
            raise ApiError(413, f"a script is at most {MAX_SCRIPT_BYTES} bytes", "body")
        cid = script_cid(data)
        storage.keep_script(cid, data, time.time(), client_of(request.remote_addr or ""))
        return json(UploadAnswer(cid=cid, size=len(data)), 201)

    @ops.route(
        scripts,
        Operation(
            "GET",
            "/ipfs/{cid}",
            "A script as a raw block, by its CID (check the bytes against it)",
            "scripts",
            bytes,
            params=(Param("cid", "path", "the script's CIDv1", {"type": "string", "maxLength": 120}),),
            errors=(400, 404),
            media="application/vnd.ipld.raw",
        ),
    )
    async def block(cid: str) -> Response:
        try:
            parsed = parse_cid(cid)
        except CidError as refused:
            raise ApiError(400, str(refused), "cid") from None
        stored = storage.scripts.get(parsed)
        if stored is None:
            raise ApiError(404, f"no script {parsed}")
        return Response(
            stored.data, content_type="application/vnd.ipld.raw", headers={"x-ipfs-path": f"/ipfs/{parsed}"}
        )

    return scripts
