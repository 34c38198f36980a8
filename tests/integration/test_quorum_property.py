"""Property tests: AttestationCenter's quorum rule equals protocol.quorum, on random stakes.

pytest-trio runs every hypothesis example in a trio.run of its own, and an HTTP client
cannot outlive its run; so these tests are synchronous: the contracts are deployed once
into the test's anvil, and each example attaches to them with a client of its own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import trio
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.chain import Anvil, RevertError, RpcClient, TransactionSender
from protocol import APPROVE, REJECT

from ..conftest import CHAIN_ID
from ..consensus_helpers import attach_network, deploy_network, operator_account

OPERATORS = 6
ONE_CHAIN_FOR_ALL_EXAMPLES = [HealthCheck.function_scoped_fixture]


@dataclass
class Deployed:
    url: str
    addresses: tuple[str, str, str, str]
    governor: LocalAccount
    task_ids: itertools.count

    def attach(self):
        return attach_network(self.url, self.addresses, self.governor, OPERATORS, CHAIN_ID)


@pytest.fixture
def deployed(anvil: Anvil, accounts: list[LocalAccount]) -> Deployed:
    async def deploy() -> tuple[str, str, str, str]:
        async with RpcClient(anvil.http_url) as rpc:
            operators = [operator_account(i) for i in range(OPERATORS)]
            governor = TransactionSender(rpc, accounts[0], CHAIN_ID)
            network = await deploy_network(governor, operators, [1] * OPERATORS, CHAIN_ID)
            return network.addresses

    return Deployed(anvil.http_url, trio.run(deploy), accounts[0], itertools.count(1))


@settings(max_examples=150, deadline=None, suppress_health_check=ONE_CHAIN_FOR_ALL_EXAMPLES)
@given(total=st.integers(1, 2**104), fraction=st.fractions(0, 1), approve=st.booleans())
def test_the_threshold_arithmetic_agrees(deployed, total, fraction, approve):
    signed = min(total, int(total * fraction))

    async def check() -> None:
        async with deployed.attach() as network:
            for candidate in {signed, max(signed - 1, 0), min(signed + 1, total)}:
                on_chain = await network.center.call("quorumReached", candidate, total, approve)
                assert on_chain == (APPROVE if approve else REJECT).met(candidate, total)

    trio.run(check)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=ONE_CHAIN_FOR_ALL_EXAMPLES)
@given(
    distribution=st.lists(st.integers(1, 2**96 - 1), min_size=OPERATORS, max_size=OPERATORS),
    signers=st.sets(st.integers(1, OPERATORS - 1), min_size=1),
    approve=st.booleans(),
)
def test_submissions_are_accepted_exactly_when_python_says_so(deployed, distribution, signers, approve):
    signed = sum(distribution[i] for i in signers)
    expected = (APPROVE if approve else REJECT).met(signed, sum(distribution))

    async def submit() -> RevertError | None:
        async with deployed.attach() as network:
            for operator_id, stake in enumerate(distribution):
                await network.registry.transact(network.governor, "updateStake", operator_id, stake)
            task = network.task(task_id=next(deployed.task_ids))
            await network.execute(task)  # an approval must name an execution the hub recorded
            submission = network.submission(task, approve, sorted(signers))
            try:
                # eth_call runs all of submitTask, the signature check included, and changes nothing.
                await network.center.call("submitTask", *submission.call_args())
            except RevertError as error:
                return error
            return None

    refusal = trio.run(submit)
    assert (refusal is None) == expected
    if refusal is not None:
        assert (refusal.error_name, refusal.error_args["signedStake"]) == ("QuorumNotReached", signed)
