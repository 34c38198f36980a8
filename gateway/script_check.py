"""The dry run of a new job's script: the gateway runs it in its sandbox before it takes the job."""

from __future__ import annotations

import trio

from gateway.jobs import JobSpecError, ValidJob
from gateway.storage import GatewayStorage
from node.sandbox import Sandbox
from node.web import WebFetcher
from protocol.scripts import ChainBlock, run_script, script_input
from protocol.triggers import TriggerFire


class ScriptCheck:
    """Refuses a job whose script this gateway does not have, or that fails, times out or
    prints what is neither arguments of the job's function nor a custom-logic decision on a
    sample input (the job itself, a fire now, and block 0 of `chain_id` at this time; a
    decision not to call passes; its web requests, if the job names hosts, go through `web`).
    At most two dry runs at once."""

    def __init__(
        self, storage: GatewayStorage, sandbox: Sandbox, chain_id: int, web: WebFetcher | None = None
    ) -> None:
        self.storage, self.sandbox, self.chain_id, self.web = storage, sandbox, chain_id, web
        self._runs = trio.CapacityLimiter(2)

    async def check(self, job: ValidJob, now: float) -> None:
        """JobSpecError naming `$.job.script` when `job`'s script fails its dry run."""
        call = job.spec.script_call
        if call is None:
            return
        stored = self.storage.scripts.get(call.cid)
        if stored is None:
            raise JobSpecError(
                "$.job.script.cid", f"no script {call.cid} here: upload it with POST /api/scripts"
            )
        fire = TriggerFire(job.spec.schedule_type, job.spec.schedule, now)
        sample = script_input(
            job.chain_job_id, job.terms.target, call, fire, ChainBlock(self.chain_id, 0, int(now))
        )
        async with self._runs:
            outcome = await run_script(self.sandbox, stored.data, call, sample, web=self.web)
        if outcome.failed:
            raise JobSpecError("$.job.script", f"the dry run failed: {outcome.note}")
