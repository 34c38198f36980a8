"""Points, task counts and leaderboards from the task ledger's events, over a real store, a real
ledger and a real operator registry on anvil (which names the operators that signed an approval):
each task credited once, through repeats, restarts and a subscription the ledger dropped."""

from __future__ import annotations

import logging
import time

import msgspec
import pytest
import trio
import trio.testing
from eth_utils import to_checksum_address

from gateway import AttemptRecord, GatewayStorage, JobRecord, KeeperWatch, TaskDecision, TaskLedger
from gateway.actions import SignedActions
from gateway.api.keepers import keepers_blueprint
from gateway.api.leaderboard import leaderboard_blueprint
from gateway.api.users import users_blueprint
from gateway.points import Points, board_key
from gateway.users import Users
from node.store import Store
from protocol import JobTerms, OperatorDirectory, job_id_of

from ..api_helpers import api_client
from ..conftest import CHAIN_ID
from ..consensus_helpers import deploy_network, operator_account, proof_for
from ..gateway_helpers import counter_job

KEEPERS = [operator_account(i).address for i in range(5)]  # 0-2 registered at first, 3 later, 4 never
OWNERS = [to_checksum_address(bytes([byte]) * 20) for byte in (0xA1, 0xB2, 0xC3)]
LATE_OWNER = to_checksum_address(b"\xd4" * 20)
CALLDATA = b"\xd0\x9d\xe0\x8a"
TERMS = JobTerms.static_call("0x" + "22" * 20, CALLDATA, 100_000, 10**15, bytes(32))


def job(job_id: int, owner: str) -> JobRecord:
    record = counter_job(owner, job_id_of(owner, job_id), TERMS, CALLDATA, created_at=float(job_id))
    return msgspec.structs.replace(record, id=job_id)


JOBS = [job(1, OWNERS[0]), job(2, OWNERS[1]), job(3, OWNERS[2])]


@pytest.fixture
async def network(accounts, sender_for):
    """The contracts, with operators 0, 1 and 2 registered."""
    operators = [operator_account(i) for i in range(3)]
    return await deploy_network(sender_for(accounts[0]), operators, [100] * 3, CHAIN_ID)


@pytest.fixture
async def directory(network):
    """The gateway's operator directory, read once."""
    directory = OperatorDirectory(network.registry, set())
    await directory.refresh()
    return directory


async def register(network, operator: int) -> None:
    """Register operator `operator` (after the directory was read)."""
    key, proof = proof_for(operator)
    peer = b"peer-%d" % operator
    await network.registry.transact(
        network.governor, "registerOperator", KEEPERS[operator], key, proof, peer, 100
    )


class Gateway:
    """The tables, ledger, users and points of one store (reopened after a restart)."""

    def __init__(self, store: Store, directory: OperatorDirectory, buffer: int = 256) -> None:
        self.storage = GatewayStorage(store)
        self.ledger = TaskLedger(self.storage)
        self.users = Users(store)
        self.points = Points(self.storage, self.users, self.ledger, directory, buffer=buffer)

    def complete(self, job: JobRecord, performer: int, signers: list[int], block: int = 1) -> int:
        """A task of `job` executed by operator `performer`, approved with the votes of `signers`."""
        task = self.ledger.create(job, fire_at=float(block))
        attempt = AttemptRecord(number=1, performer=KEEPERS[performer], assigned_at=1.0, deadline=2**40)
        self.ledger.attempt_assigned(task.id, attempt)
        bitmap = sum(1 << signer for signer in signers)
        decision = TaskDecision(
            task.id, job.id, 1, True, performer, "0x" + "ab" * 32, block, signer_bitmap=bitmap
        )
        self.ledger.record_decision(decision, next_block=block + 1)
        return task.id

    def counts(self) -> tuple[dict, dict]:
        """(keeper -> (executed, attested, points), owner -> (jobs run, tasks completed, points))."""
        keepers = {
            t.address: (t.tasks_executed, t.tasks_attested, t.points) for t in self.points.tallies.records()
        }
        users = {u.address: (u.jobs_run, u.tasks_completed, u.points) for u in self.users.table.records()}
        return keepers, users


@pytest.fixture
def db(tmp_path):
    return tmp_path / "db"


@pytest.fixture
def gateway(db, directory):
    with Store.open(db) as store:
        gateway = Gateway(store, directory)
        for each in JOBS:
            gateway.storage.jobs.put(each)
        yield gateway


async def credit_all(gateway: Gateway) -> None:
    """Credit every task, as the ledger's events would."""
    for task in gateway.storage.tasks.records():
        await gateway.points.credit(task)


def standings(gateway: Gateway) -> None:
    """Four approved tasks: keepers 0 (20 points), 1 and 2 (14 each); owners 0 (7), 1 and 2 (6 each)."""
    gateway.complete(JOBS[0], performer=0, signers=[0, 1, 2])  # the performer's own vote: no attestation
    gateway.complete(JOBS[0], performer=0, signers=[1])
    gateway.complete(JOBS[1], performer=1, signers=[2])
    gateway.complete(JOBS[2], performer=2, signers=[])


STANDINGS = (
    {KEEPERS[0]: (2, 0, 20), KEEPERS[1]: (1, 2, 14), KEEPERS[2]: (1, 2, 14)},
    {OWNERS[0]: (1, 2, 7), OWNERS[1]: (1, 1, 6), OWNERS[2]: (1, 1, 6)},
)


async def test_a_completed_task_credits_its_performer_attesters_and_owner(gateway):
    gateway.complete(JOBS[0], performer=0, signers=[0, 1, 2])
    await credit_all(gateway)
    keepers, users = gateway.counts()
    assert keepers == {KEEPERS[0]: (1, 0, 10), KEEPERS[1]: (0, 1, 2), KEEPERS[2]: (0, 1, 2)}
    assert users == {OWNERS[0]: (1, 1, 6)}  # 5 for the job's first completed task, 1 for the task
    gateway.complete(JOBS[0], performer=1, signers=[0])
    await credit_all(gateway)
    keepers, users = gateway.counts()
    assert (keepers[KEEPERS[0]], keepers[KEEPERS[1]]) == ((1, 1, 12), (1, 1, 12))
    assert users == {OWNERS[0]: (1, 2, 7)}  # the same job: no second job bonus


async def test_tasks_that_did_not_complete_earn_nothing(gateway):
    failed = gateway.ledger.create(JOBS[0], fire_at=1.0)
    gateway.ledger.fail(failed.id, "out of attempts")
    rejected = gateway.ledger.create(JOBS[0], fire_at=2.0)
    attempt = AttemptRecord(number=1, performer=KEEPERS[0], assigned_at=1.0, deadline=2**40)
    gateway.ledger.attempt_assigned(rejected.id, attempt)
    gateway.ledger.record_decision(
        TaskDecision(rejected.id, 1, 1, False, 0, "0x01", 3, signer_bitmap=0b110), 4
    )
    await credit_all(gateway)
    assert gateway.counts() == ({}, {})


async def test_each_task_is_credited_once_through_repeats_and_restarts(db, directory):
    with Store.open(db) as store:
        gateway = Gateway(store, directory)
        for each in JOBS:
            gateway.storage.jobs.put(each)
        standings(gateway)
        await credit_all(gateway)
        await credit_all(gateway)  # every event again
        assert gateway.counts() == STANDINGS
        # Completed while nothing credited it (the points service down, or its events lost).
        gateway.complete(JOBS[1], performer=2, signers=[0, 1])
        missed = gateway.storage.jobs.get(2)
    with Store.open(db) as store:
        gateway = Gateway(store, directory)
        # A job whose owner was never made a user (the gateway died between the two writes).
        gateway.storage.jobs.put(job(4, LATE_OWNER))
        await gateway.points.catch_up()
        await gateway.points.catch_up()
        keepers, users = gateway.counts()
        assert keepers == STANDINGS[0] | {
            KEEPERS[0]: (2, 1, 22),
            KEEPERS[1]: (1, 3, 16),
            KEEPERS[2]: (2, 2, 24),
        }
        assert users == STANDINGS[1] | {missed.owner: (1, 2, 7), LATE_OWNER: (0, 0, 0)}


async def test_run_catches_up_when_the_ledger_drops_its_subscription(db, directory, caplog):
    caplog.set_level(logging.WARNING, "triggerx.gateway")
    with Store.open(db) as store:
        gateway = Gateway(store, directory, buffer=2)
        for each in JOBS:
            gateway.storage.jobs.put(each)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gateway.points.run)
            await trio.testing.wait_all_tasks_blocked()
            # 20 tasks, 60 events, with no checkpoint in between: far beyond the buffer of 2.
            for _ in range(20):
                gateway.complete(JOBS[0], performer=0, signers=[1])
            await trio.testing.wait_all_tasks_blocked()
            keepers, users = gateway.counts()
            assert keepers == {KEEPERS[0]: (20, 0, 200), KEEPERS[1]: (0, 20, 40)}
            # The catch-up also made the other jobs' owners users.
            assert users == {OWNERS[0]: (1, 20, 25), OWNERS[1]: (0, 0, 0), OWNERS[2]: (0, 0, 0)}
            assert "points fell behind the ledger's events" in caplog.text
            # Subscribed again: a new completion is credited from its event.
            gateway.complete(JOBS[1], performer=1, signers=[])
            await trio.testing.wait_all_tasks_blocked()
            assert gateway.counts()[1][OWNERS[1]] == (1, 1, 6)
            nursery.cancel_scope.cancel()


async def test_a_signer_registered_since_the_directory_was_read_is_credited(gateway, network):
    await register(network, 3)
    gateway.complete(JOBS[0], performer=0, signers=[3])
    await credit_all(gateway)  # refreshes the directory, which now knows operator 3
    assert gateway.counts()[0][KEEPERS[3]] == (0, 1, 2)
    # Operator 4 is not registered yet: nothing of its task is credited until it is.
    task_id = gateway.complete(JOBS[1], performer=1, signers=[4])
    await credit_all(gateway)
    assert KEEPERS[1] not in gateway.counts()[0]
    assert OWNERS[1] not in gateway.counts()[1]
    await register(network, 4)
    await gateway.points.catch_up()
    keepers, users = gateway.counts()
    assert (keepers[KEEPERS[1]], keepers[KEEPERS[4]], users[OWNERS[1]]) == ((1, 0, 10), (0, 1, 2), (1, 1, 6))
    assert gateway.storage.tasks.get(task_id).status == "completed"


def board_order(entries: dict) -> list[str]:
    """The addresses of `entries` (address -> (…, points)) as a board orders them."""
    return sorted(entries, key=lambda address: board_key(entries[address][-1], address))


async def test_leaderboards_list_by_points_page_by_page(gateway):
    standings(gateway)
    await credit_all(gateway)
    client, _ = api_client(lambda ops: leaderboard_blueprint(ops, gateway.points))
    for board, expected in (("keepers", STANDINGS[0]), ("users", STANDINGS[1])):
        first = await (await client.get(f"/api/leaderboard/{board}?limit=2")).get_json()
        second = await (
            await client.get(f"/api/leaderboard/{board}?limit=2&cursor={first['cursor']}")
        ).get_json()
        assert second["cursor"] is None
        listed = first[board] + second[board]
        assert [entry["address"] for entry in listed] == board_order(expected)
        assert [entry["points"] for entry in listed] == sorted(
            (c[-1] for c in expected.values()), reverse=True
        )
    keepers = await (await client.get("/api/leaderboard/keepers")).get_json()
    assert keepers["keepers"][0] == {
        "address": KEEPERS[0],
        "operatorId": 0,
        "points": 20,
        "tasksExecuted": 2,
        "tasksAttested": 0,
    }
    users = await (await client.get("/api/leaderboard/users")).get_json()
    assert users["users"][0] == {"address": OWNERS[0], "points": 7, "jobsRun": 1, "tasksCompleted": 2}
    for query, field in (
        ("?limit=0", "limit"),
        ("?limit=x", "limit"),
        ("?cursor=AAAA", "cursor"),
        ("?cursor=", "cursor"),
    ):
        response = await client.get(f"/api/leaderboard/keepers{query}")
        assert (response.status_code, (await response.get_json())["field"]) == (400, field)


async def test_moving_up_moves_the_entry_on_the_board(gateway):
    standings(gateway)
    await credit_all(gateway)
    gateway.complete(JOBS[2], performer=2, signers=[1])  # keeper 2: 24, keeper 1: 16
    await credit_all(gateway)
    assert [entry.address for entry in gateway.points.keeper_board.board.records()] == [
        KEEPERS[2],
        KEEPERS[0],
        KEEPERS[1],
    ]


async def test_search_finds_entries_with_their_rank(gateway):
    standings(gateway)
    await credit_all(gateway)
    client, _ = api_client(lambda ops: leaderboard_blueprint(ops, gateway.points))
    order = board_order(STANDINGS[0])
    for address in (KEEPERS[1], KEEPERS[1].lower(), KEEPERS[1][:30]):
        response = await client.get(f"/api/leaderboard/keepers/search?address={address}")
        [found] = (await response.get_json())["keepers"]
        assert (found["address"], found["rank"], found["points"]) == (
            KEEPERS[1],
            order.index(KEEPERS[1]) + 1,
            14,
        )
    users = board_order(STANDINGS[1])
    for owner in OWNERS:
        response = await client.get(f"/api/leaderboard/users/search?address={owner[:3].lower()}")
        [found] = (await response.get_json())["users"]
        assert (found["address"], found["rank"]) == (owner, users.index(owner) + 1)
    nobody = await client.get("/api/leaderboard/users/search?address=0xeeee")
    assert (nobody.status_code, await nobody.get_json()) == (200, {"users": []})
    for absent in (KEEPERS[3], OWNERS[0]):  # not on the keepers' board
        response = await client.get(f"/api/leaderboard/keepers/search?address={absent}")
        assert response.status_code == 404
    bad_checksum = KEEPERS[0][:2] + KEEPERS[0][2:].swapcase()
    for query in (
        "",
        "?address=",
        "?address=0x" + "1" * 41,
        "?address=abc",
        "?address=0xg1",
        f"?address={bad_checksum}",
    ):
        response = await client.get(f"/api/leaderboard/keepers/search{query}")
        assert (response.status_code, (await response.get_json())["field"]) == (400, "address"), query


async def test_the_keepers_list_shows_operator_ids_and_task_counts(gateway, directory):
    standings(gateway)
    await credit_all(gateway)
    watch = KeeperWatch(directory, mesh=None, offline_after=60.0)  # heartbeats recorded directly
    now = time.time()
    for address in (KEEPERS[0], KEEPERS[4]):
        watch.tracker.heartbeat(address, f"peer-of-{address}", now)
    client, document = api_client(lambda ops: keepers_blueprint(ops, watch.status, gateway.points))
    listed = (await (await client.get("/api/keepers")).get_json())["keepers"]
    assert {(k["address"], k["operatorId"], k["tasksExecuted"], k["tasksAttested"]) for k in listed} == {
        (KEEPERS[0], 0, 2, 0),
        (KEEPERS[4], None, 0, 0),
    }
    one = await (await client.get(f"/api/keepers/address/{KEEPERS[0].lower()}")).get_json()
    assert (one["keeper"]["address"], one["keeper"]["online"], one["keeper"]["tasksExecuted"]) == (
        KEEPERS[0],
        True,
        2,
    )
    assert (
        await client.get(f"/api/keepers/address/{KEEPERS[1]}")
    ).status_code == 404  # counted, but never heard from
    response = await client.get("/api/keepers/address/0x1234")
    assert (response.status_code, (await response.get_json())["field"]) == (400, "address")
    assert set(document["paths"]) == {"/api/keepers", "/api/keepers/address/{address}"}
    ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))


async def test_the_openapi_document_states_the_points_rules(gateway, network):
    actions = SignedActions(gateway.storage.store, CHAIN_ID, network.hub.address)
    _, document = api_client(
        lambda ops: leaderboard_blueprint(ops, gateway.points),
        lambda ops: users_blueprint(ops, gateway.storage, gateway.users, actions),
        lambda ops: keepers_blueprint(ops, list, gateway.points),
    )
    ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)) == 10
    keepers = document["paths"]["/api/leaderboard/keepers"]["get"]["description"]
    users = document["paths"]["/api/leaderboard/users/search"]["get"]["description"]
    assert "10 points for each task it executed" in keepers
    assert "2 for each it attested" in keepers
    assert "5 for each job of theirs at its first completed task" in users
    assert "`rank`" in users


async def test_a_prefix_search_returns_a_bounded_number_of_matches_by_address(gateway):
    owners = [to_checksum_address(b"\xaa" * 19 + bytes([i])) for i in range(12)]
    for number, owner in enumerate(owners, start=10):
        gateway.storage.jobs.put(job(number, owner))
        for _ in range(number % 3 + 1):  # 1 to 3 tasks: different points, in no address order
            gateway.complete(gateway.storage.jobs.get(number), performer=0, signers=[])
    await credit_all(gateway)
    client, _ = api_client(lambda ops: leaderboard_blueprint(ops, gateway.points))
    found = (await (await client.get("/api/leaderboard/users/search?address=0xAA")).get_json())["users"]
    assert [user["address"] for user in found] == owners[:10]
    order = [entry.address for entry in gateway.points.user_board.board.records()]
    assert [user["rank"] for user in found] == [order.index(owner) + 1 for owner in owners[:10]]
