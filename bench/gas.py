"""Gas of a task on chain: TaskExecutionHub.execute and the AttestationCenter's decisions.

    .venv/bin/python bench/gas.py

Execution overhead is everything but the target's own work: the receipt's gas minus what the
same call costs the target when an account calls it directly (that call's gas less the 21,000
intrinsic). The target is the Counter fixture's increment() on a counter already non-zero, so
both sides write a warm, non-zero slot. Rows:

- first task of a new owner: the job registered from the owner's consent with its first
  execution (executeFirst), the owner's forwarder deployed (CREATE2);
- first task of a registered job (the owner registered it by transaction; forwarder exists);
- steady state: a later task of the same job once the performer's escrow ring is in use
  (sequential task ids, as the gateway issues them; each escrow settled after its task, as the
  AttestationCenter does: a ring word is reused once settled).

Decisions (AttestationCenter.submitTask) with 4, 16 and 64 operators of equal stake: the first
task ever (its storage words start at zero), then steady state with sequential task ids, signed
by every operator (the performer co-signing) and by just two thirds of the stake, and a
rejection by everyone. An approval now releases the escrow to the performer; a rejection
refunds the owner and penalises the performer.

The baseline column is main before issue 7 (commit ae065e8: no consent, no forwarder, no
escrow), measured with the same method on this machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio
from eth_account import Account
from eth_utils import keccak

from node.chain import Anvil, RpcClient, TransactionSender, deploy, deploy_core, load_artifact, revert_decoder
from protocol import Assignment, JobConsent, JobTerms, job_id_of
from protocol.triggers import interval_trigger

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.consensus_helpers

from tests.consensus_helpers import deploy_network, operator_account

FEE = 10**14
TARGET_OVERHEAD = 60_000
BASELINE_EXECUTE = {"first task of a new owner": 101_468, "steady state": 84_400}
# bench/bls.py at ae065e8: (first task ever, everyone signs, two thirds sign), approving.
BASELINE_APPROVE = {
    4: (285_181, 233_889, 243_968),
    16: (313_570, 245_202, 305_057),
    64: (472_260, 301_256, 548_241),
}


async def execute_gas() -> dict[str, int]:
    """Overhead of the hub's execute in each situation (see the module docstring)."""
    with Anvil() as anvil:
        async with RpcClient(anvil.http_url, revert_decoder=revert_decoder()) as rpc:
            keys = [Account.from_key(k) for k in anvil.private_keys]
            governor, dispatcher, performer, owner, caller = keys[:5]

            def sender(account: Account) -> TransactionSender:
                return TransactionSender(rpc, account, anvil.chain_id)

            hub = (await deploy_core(sender(governor), dispatcher=dispatcher.address)).hub
            counter = await deploy(sender(governor), load_artifact("Counter"))
            await counter.transact(sender(caller), "increment")  # the slot is non-zero from here on
            direct = (await counter.transact(sender(caller), "increment")).gas_used
            target_gas = direct - 21_000
            await hub.transact(sender(owner), "deposit", value=10**18)
            calldata = counter.encode("increment")
            terms = JobTerms.static_call(counter.address, calldata, 100_000, FEE, interval_trigger(60, 0, 0))
            latest = await rpc.call("eth_getBlockByNumber", "latest", False)
            expiry = int(latest["timestamp"], 16) + 3600

            async def run(task_id: int, nonce: int, consent: bool) -> int:
                assignment = Assignment(
                    task_id, job_id_of(owner.address, nonce), 1, performer.address, 2**40, terms.hash(),
                    keccak(b"tick"),
                )  # fmt: skip
                signature = assignment.sign(dispatcher, anvil.chain_id, hub.address)
                args = [assignment.as_struct(), terms.as_struct(), calldata, FEE, signature]
                if consent:
                    owner_signature = JobConsent(nonce, expiry, terms).sign(
                        owner, anvil.chain_id, hub.address
                    )
                    args.append({"expiry": expiry, "signature": owner_signature})
                function = "executeFirst" if consent else "execute"
                receipt = await hub.transact(sender(performer), function, *args)
                return receipt.gas_used - target_gas

            await hub.transact(sender(governor), "proposeSettler", caller.address)

            async def settled(task_id: int, nonce: int, consent: bool) -> int:
                gas = await run(task_id, nonce, consent)
                job_id = job_id_of(owner.address, nonce)
                await hub.transact(sender(caller), "settle", task_id, job_id, 1, performer.address, True)
                return gas

            first_owner = await settled(1, nonce=1, consent=True)
            await hub.transact(sender(owner), "registerJob", 2, terms.as_struct())
            first_registered = await settled(2, nonce=2, consent=False)
            ring = await hub.call("EXECUTION_RING")
            for task_id in range(3, 13):  # these tasks' ring words are in use and settled...
                await settled(task_id, nonce=1, consent=False)
            later = range(ring + 3, ring + 13)  # ...and these tasks reuse them
            steady = [await settled(task_id, nonce=1, consent=False) for task_id in later]
            return {
                "first task of a new owner": first_owner,
                "first task of a registered job": first_registered,
                "steady state": sorted(steady)[len(steady) // 2],
            }


async def decision_gas(operators: int) -> tuple[int, int, int, int]:
    """Gas of decisions: the first approval ever, then approvals signed by everyone and by two
    thirds, and a rejection signed by everyone; each task executed first."""
    with Anvil(accounts=2) as anvil:
        async with RpcClient(anvil.http_url, revert_decoder=revert_decoder()) as rpc:
            governor = TransactionSender(rpc, Account.from_key(anvil.private_keys[0]), anvil.chain_id)
            accounts = [operator_account(i) for i in range(operators)]
            network = await deploy_network(governor, accounts, [10**6] * operators, anvil.chain_id)
            everyone = list(range(operators))  # the performer co-signs; its stake does not count
            two_thirds = list(range(1, -(-2 * operators // 3) + 1))  # ceil(2n/3) others: the fewest
            gas = []
            # Task ids are sequential, as the gateway issues them: later tasks share storage words.
            for task_id, signers, approve in ((1, everyone, True), (2, everyone, True), (3, two_thirds, True),
                                              (4, everyone, False)):  # fmt: skip
                task = network.task(task_id=task_id)
                await network.execute(task)
                submission = network.submission(task, approve, signers)
                receipt = await network.center.transact(governor, "submitTask", *submission.call_args())
                gas.append(receipt.gas_used)
            return gas[0], gas[1], gas[2], gas[3]


def main() -> None:
    print("TaskExecutionHub.execute overhead (gas beyond the target's own work)")
    print(f"{'':36}{'now':>10}{'baseline':>12}")
    for name, gas in trio.run(execute_gas).items():
        baseline = BASELINE_EXECUTE.get(name)
        print(f"{name:36}{gas:>10,}{(f'{baseline:,}' if baseline else '—'):>12}")
    print(f"(target for steady state: at most {TARGET_OVERHEAD:,})")
    print()
    print("AttestationCenter.submitTask gas: now (baseline)")
    print(f"{'operators':>10}{'first task ever':>24}{'all sign':>24}{'2/3 sign':>24}{'reject, all':>14}")
    for operators in (4, 16, 64):
        *approvals, reject = trio.run(decision_gas, operators)
        pairs = zip(approvals, BASELINE_APPROVE[operators], strict=True)
        cells = "".join(f"{f'{now:,} ({then:,})':>24}" for now, then in pairs)
        print(f"{operators:>10}{cells}{reject:>14,}")


if __name__ == "__main__":
    main()
