"""Running a job's script for what it decides, as performers and attesters both do."""

from __future__ import annotations

from collections.abc import Sequence

from node.content import ScriptFetcher, ScriptUnavailableError
from node.sandbox import Sandbox
from node.sandbox.proxy import Exchange
from node.web import WebFetcher
from protocol.scripts import ScriptCall, ScriptOutcome, run_script


class ScriptError(Exception):
    """A job's script could not be had: not fetched, or not verified against its CID (the
    message says which). This node's trouble, not the script's."""


class ScriptRunner:
    """Fetches scripts by CID (checked, cached) and runs them in `sandbox`; the web, for scripts
    whose job allows it, through `web`."""

    def __init__(self, fetcher: ScriptFetcher, sandbox: Sandbox, web: WebFetcher | None = None) -> None:
        self.fetcher, self.sandbox, self.web = fetcher, sandbox, web

    async def run(
        self, call: ScriptCall, document: bytes, replay: Sequence[Exchange] | None = None
    ) -> ScriptOutcome:
        """What `call`'s script decides on `document` (a failure of the script included), its
        web answers recorded, or replayed from `replay`; ScriptError when this node cannot get
        the script."""
        try:
            source = await self.fetcher.get(call.cid)
        except (ScriptUnavailableError, ValueError) as error:
            raise ScriptError(f"script {call.cid}: {error}") from None
        return await run_script(self.sandbox, source, call, document, web=self.web, replay=replay)
