"""The dry run of a new job's script: the gateway runs it in its sandbox before it takes the job."""

from __future__ import annotations

import trio

from gateway.jobs import JobSpecError, ValidJob
from gateway.storage import GatewayStorage
from node.chain import ChainError, RpcClient
from node.sandbox import Sandbox
from node.web import WebFetcher
from protocol.scripts import input_at_head, run_script
from protocol.triggers import TriggerFire
from protocol.triggers.condition_sources import NodeError


class ScriptCheck:
    """Refuses a job whose script this gateway does not have, or that fails, times out or
    prints what is neither arguments of the job's function nor a custom-logic decision on a
    sample input: the job itself, a fire now, the latest block of chain `chain_id` and the
    job's values read there through `rpc` (a decision not to call passes; its web requests, if
    the job names hosts, go through `web`). At most two dry runs at once."""

    def __init__(
        self,
        storage: GatewayStorage,
        sandbox: Sandbox,
        chain_id: int,
        rpc: RpcClient,
        web: WebFetcher | None = None,
    ) -> None:
        self.storage, self.sandbox, self.chain_id, self.rpc, self.web = storage, sandbox, chain_id, rpc, web
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
        try:
            sample = await input_at_head(
                self.rpc, self.chain_id, job.chain_job_id, job.terms.target, call, fire
            )
        except (ChainError, NodeError) as error:
            raise JobSpecError("$.job.script", f"the dry run could not read the chain: {error}") from None
        async with self._runs:
            outcome = await run_script(self.sandbox, stored.data, call, sample, web=self.web)
        if outcome.failed:
            raise JobSpecError("$.job.script", f"the dry run failed: {outcome.note}")
