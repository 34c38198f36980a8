"""Gateway records for tests that drive gateway services against a real hub."""

from __future__ import annotations

from typing import Any

from gateway import Dispatcher, GatewayStorage, JobRecord, JobSpec, TaskLedger
from node.config import load_genesis
from node.devnet import REPO_GENESIS
from protocol import JobTerms

from .conftest import CHAIN_ID


def counter_job(
    owner: str,
    chain_job_id: int,
    terms: JobTerms,
    calldata: bytes,
    created_at: float = 0.0,
    *,
    function: str = "increment()",
) -> JobRecord:
    """Gateway job 1: the owner's `function` job (registered, for tests with a hub) on the
    `terms` target, every 60 s (the interval of tests/hub_helpers.TRIGGER and
    consensus_helpers.test_job)."""
    spec = JobSpec(
        owner=owner,
        nonce="1",
        expiry=2**40,
        target=terms.target,
        function=function,
        schedule_type="interval",
        schedule={"everySeconds": 60},
        max_fee_per_task=str(terms.max_fee_per_task),
    )
    return JobRecord(
        id=1,
        owner=owner,
        chain_job_id=chain_job_id,
        spec=spec,
        calldata=calldata,
        terms=terms,
        consent_signature=b"",
        created_at=created_at,
    )


def order_signer(storage: GatewayStorage, ledger: TaskLedger, network: Any) -> Dispatcher:
    """A dispatcher that only builds and signs orders (`order_for`) for the consensus
    `network`'s hub; it sends nothing, so it has no mesh, directory, keepers or intake."""
    return Dispatcher(
        ledger=ledger,
        storage=storage,
        hub=network.hub,
        chain_id=CHAIN_ID,
        sender=network.governor,
        mesh=None,  # type: ignore[arg-type]
        directory=None,  # type: ignore[arg-type]
        keepers=None,  # type: ignore[arg-type]
        intake=None,  # type: ignore[arg-type]
        protocol=load_genesis(REPO_GENESIS).protocol,
    )
