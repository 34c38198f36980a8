"""Scripts: upload one, and serve it by CID as a raw block (trustless: the reader checks it)."""

from __future__ import annotations

import time

from quart import Blueprint, Response, request

from gateway import GatewayStorage
from gateway.api.responses import error, json
from node.content import MAX_SCRIPT_BYTES, CidError, parse_cid, script_cid


def scripts_blueprint(storage: GatewayStorage) -> Blueprint:
    """The script routes."""
    scripts = Blueprint("scripts", __name__)

    @scripts.post("/api/scripts")
    async def upload() -> Response:
        data = await request.get_data()
        if not data:
            return error(400, "the body is empty: send the script's bytes")
        if len(data) > MAX_SCRIPT_BYTES:
            return error(413, f"a script is at most {MAX_SCRIPT_BYTES} bytes")
        cid = script_cid(data)
        storage.keep_script(cid, data, time.time())
        return json({"cid": cid, "size": len(data)}, 201)

    @scripts.get("/ipfs/<path:text>")
    async def block(text: str) -> Response:
        try:
            cid = parse_cid(text)
        except CidError as refused:
            return error(400, str(refused))
        stored = storage.scripts.get(cid)
        if stored is None:
            return error(404, f"no script {cid}")
        return Response(
            stored.data, content_type="application/vnd.ipld.raw", headers={"x-ipfs-path": f"/ipfs/{cid}"}
        )

    return scripts
