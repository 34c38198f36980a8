"""Running a job's script for its calldata, as performers and attesters both do."""

from __future__ import annotations

from node.content import ScriptFetcher, ScriptUnavailableError
from node.sandbox import Sandbox
from protocol.scripts import ScriptCall, ScriptFailedError, ScriptOutputError, run_for_calldata


class ScriptError(Exception):
    """A script gave no calldata: it could not be fetched, did not complete, or printed
    something that is not arguments of the function (the message says which)."""


class ScriptRunner:
    """Fetches scripts by CID (checked, cached) and runs them in `sandbox`."""

    def __init__(self, fetcher: ScriptFetcher, sandbox: Sandbox) -> None:
        self.fetcher, self.sandbox = fetcher, sandbox

    async def calldata(self, call: ScriptCall, document: bytes) -> bytes:
        """The calldata `call`'s script prints on `document`; ScriptError otherwise."""
        try:
            source = await self.fetcher.get(call.cid)
            return await run_for_calldata(self.sandbox, source, call, document)
        except (ScriptUnavailableError, ScriptFailedError, ScriptOutputError, ValueError) as error:
            raise ScriptError(f"script {call.cid}: {error}") from None
