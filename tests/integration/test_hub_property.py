"""Property test of the security review's acceptance: over random jobs and random assignments,
TaskExecutionHub never calls a target with arguments, target, gas or fee the owner did not sign,
and never moves more than the owner signed for a task.

Each example registers a random job (its owner signs terms for a Recorder target), then a
performer tries an execution that is either exactly what was signed or a tampered variant
(other calldata, target, gas limit, fee cap, fee, selector). Whatever the hub accepts, the
Recorder's log says what the target really got. As in test_quorum_property, examples run in
their own trio.run against contracts deployed once into the test's anvil.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import pytest
import trio
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.chain import (
    Anvil,
    Contract,
    RevertError,
    RpcClient,
    TransactionSender,
    deploy,
    deploy_core,
    load_artifact,
    revert_decoder,
)
from protocol import Assignment, JobTerms, job_id_of
from protocol.triggers import interval_trigger

from ..conftest import CHAIN_ID

ETH = 10**18
TAMPERINGS = ("none", "calldata", "target", "gas_limit", "max_fee", "fee_above_cap", "selector")


@dataclass
class Deployed:
    url: str
    hub: str
    recorders: tuple[str, str]
    accounts: list[LocalAccount]  # [0] governs, [1] dispatches, [2] performs, [3] owns, [4] settles
    task_ids: itertools.count
    nonces: itertools.count


@pytest.fixture
def deployed(anvil: Anvil) -> Deployed:
    """The hub, two Recorders and a funded owner, deployed once for all examples."""
    accounts = [Account.from_key(k) for k in anvil.private_keys]

    async def deploy_all() -> tuple[str, tuple[str, str]]:
        async with RpcClient(anvil.http_url) as rpc:
            governor = TransactionSender(rpc, accounts[0], CHAIN_ID)
            hub = (await deploy_core(governor, dispatcher=accounts[1].address)).hub
            recorders = [await deploy(governor, load_artifact("Recorder")) for _ in range(2)]
            await hub.transact(TransactionSender(rpc, accounts[3], CHAIN_ID), "deposit", value=1_000 * ETH)
            await hub.transact(governor, "proposeSettler", accounts[4].address)
            return hub.address, (recorders[0].address, recorders[1].address)

    hub, recorders = trio.run(deploy_all)
    return Deployed(anvil.http_url, hub, recorders, accounts, itertools.count(1), itertools.count(1))


jobs = st.fixed_dictionaries(
    {
        "calldata": st.binary(min_size=4, max_size=200),
        "gas_limit": st.integers(30_000, 2_000_000),
        "max_fee": st.integers(0, 10**18),
        "fee_share": st.fractions(0, 1),
        "tampering": st.sampled_from(TAMPERINGS),
        "noise": st.binary(min_size=1, max_size=40),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job=jobs)
def test_the_hub_never_does_what_the_owner_did_not_sign(deployed, job):
    world = deployed
    dispatcher, performer, owner = world.accounts[1], world.accounts[2], world.accounts[3]
    signed_calldata = job["calldata"]
    signed = JobTerms.static_call(
        world.recorders[0], signed_calldata, job["gas_limit"], job["max_fee"], interval_trigger(1, 0, 0)
    )
    fee = int(job["max_fee"] * job["fee_share"])
    used, calldata, tampering = signed, signed_calldata, job["tampering"]
    if tampering == "calldata":
        calldata = signed_calldata + job["noise"]
    elif tampering == "selector":
        calldata = bytes([signed_calldata[0] ^ 1]) + signed_calldata[1:]
    elif tampering == "target":
        used = replace(signed, target=world.recorders[1])
    elif tampering == "gas_limit":
        used = replace(signed, gas_limit=signed.gas_limit + 1)
    elif tampering == "max_fee":
        used = replace(signed, max_fee_per_task=signed.max_fee_per_task + 1)
    elif tampering == "fee_above_cap":
        fee = job["max_fee"] + 1

    async def attempt() -> tuple[bool, list, int, int, str]:
        async with RpcClient(world.url, revert_decoder=revert_decoder()) as rpc:
            hub = Contract(rpc, load_artifact("TaskExecutionHub"), world.hub)
            nonce, task_id = next(world.nonces), next(world.task_ids)
            await hub.transact(
                TransactionSender(rpc, owner, CHAIN_ID), "registerJob", nonce, signed.as_struct()
            )
            job_id = job_id_of(owner.address, nonce)
            assignment = Assignment(task_id, job_id, 1, performer.address, 2**40, used.hash(), keccak(b"t"))
            signature = assignment.sign(dispatcher, CHAIN_ID, world.hub)
            before = await hub.call("balanceOf", owner.address)
            forwarder = await hub.call("forwarderOf", owner.address)
            args = (assignment.as_struct(), used.as_struct(), calldata, fee, signature)
            try:
                receipt = await hub.transact(TransactionSender(rpc, performer, CHAIN_ID), "execute", *args)
            except RevertError:
                return False, [], before, await hub.call("balanceOf", owner.address), forwarder
            recorder = Contract(rpc, load_artifact("Recorder"), world.recorders[0])
            calls = [e.args for e in recorder.events(receipt, "Called")]
            other = Contract(rpc, load_artifact("Recorder"), world.recorders[1])
            calls += [{"stray": e.args} for e in other.events(receipt, "Called")]
            after = await hub.call("balanceOf", owner.address)
            # Settle, as the AttestationCenter would, so the performer's escrow ring stays free.
            settler = TransactionSender(rpc, world.accounts[4], CHAIN_ID)
            await hub.transact(settler, "settle", task_id, job_id, 1, performer.address, True, False)
            return True, calls, before, after, forwarder

    accepted, calls, before, after, forwarder = trio.run(attempt)
    assert accepted == (tampering == "none")
    if not accepted:
        assert (calls, after) == ([], before)
        return
    # The target got exactly the signed call, from the owner's forwarder, with the signed gas,
    # and the owner paid exactly the fee, within the signed cap.
    [call] = calls
    assert call["caller"] == forwarder
    assert call["dataHash"] == keccak(signed_calldata)
    assert call["gasAtEntry"] >= signed.gas_limit - 1_000
    assert call["value"] == 0
    assert before - after == fee <= signed.max_fee_per_task
