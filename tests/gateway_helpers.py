"""Gateway records for tests that drive gateway services against a real hub."""

from __future__ import annotations

from gateway import JobRecord, JobSpec
from protocol import JobTerms


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
