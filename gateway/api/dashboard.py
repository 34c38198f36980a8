"""The web dashboard: static pages (gateway/api/dashboard/) served at `/` and `/dashboard/<name>`.

Plain HTML, CSS and JavaScript modules, no build step: the browser reads the public API and
WebSockets of this same gateway. These routes are not API operations (not in /openapi.json),
like /docs. Every file is read once, when the app is made; each answer carries an ETag (a
reload costs a 304), `Cache-Control: no-cache` (a new gateway's files are used at once, never
a stale mix) and a Content-Security-Policy that lets the page reach only this gateway.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import msgspec
from quart import Blueprint, Response, request

from gateway.api.errors import ApiError

PREFIX = "/dashboard"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# A Host header as a browser sends it (name or IP literal, optional port): only such a host is
# named in the policy's WebSocket sources.
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


@dataclass(frozen=True)
class StaticFile:
    """One dashboard file, as served: its bytes, content type and entity tag."""

    body: bytes
    content_type: str
    etag: str


class DashboardConfig(msgspec.Struct, rename="camel", kw_only=True):
    """What the dashboard's script reads at `/dashboard/config.json`: the chain explorer's base URL
    (`<explorer>/tx/<hash>`, `<explorer>/address/<account>`; null: hashes are shown unlinked)."""

    explorer_url: str | None = None


def dashboard_files() -> dict[str, StaticFile]:
    """Every file of the dashboard's folder with a known content type, by name."""
    folder = resources.files("gateway.api").joinpath("dashboard")
    files = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = static_file(entry.read_bytes(), CONTENT_TYPES[suffix])
    return files


def static_file(body: bytes, content_type: str) -> StaticFile:
    """`body` served as `content_type`, tagged by its content."""
    return StaticFile(body, content_type, hashlib.sha256(body).hexdigest()[:32])


def content_policy(host: str) -> str:
    """The Content-Security-Policy of a dashboard answer to a request for `host`: nothing but
    this gateway, over HTTP and its WebSockets (named explicitly: older browsers do not count
    ws: as 'self'); no inline script or style, no plugin, no framing."""
    sockets = f" ws://{host} wss://{host}" if _HOST.fullmatch(host) else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self'{sockets}; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def dashboard_blueprint(explorer_url: str | None = None) -> Blueprint:
    """The dashboard's routes; `explorer_url` links transactions and accounts to a chain explorer."""
    files = dashboard_files()
    config = msgspec.json.encode(DashboardConfig(explorer_url=explorer_url))
    files["config.json"] = static_file(config, "application/json")
    blueprint = Blueprint("dashboard", __name__)

    def serve(name: str) -> Response:
        served = files.get(name)
        if served is None:
            raise ApiError(404, f"no dashboard file {name[:80]!r}")
        headers = {
            "Cache-Control": "no-cache",
            "ETag": f'"{served.etag}"',
            "Content-Security-Policy": content_policy(request.host),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        }
        if request.if_none_match.contains(served.etag):
            return Response(b"", status=304, headers=headers)
        return Response(served.body, content_type=served.content_type, headers=headers)

    @blueprint.get("/")
    async def index() -> Response:
        return serve("index.html")

    @blueprint.get(f"{PREFIX}/<name>")
    async def dashboard_file(name: str) -> Response:
        return serve(name)

    return blueprint
