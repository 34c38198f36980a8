"""The node store on a real LevelDB: tables, indexes, pages, atomic batches, locking, schema
version, and consistency after a writer is killed mid-write."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import plyvel
import pytest

from node.store import (
    JOBS,
    SCHEMA_VERSION,
    TASKS,
    USERS,
    CorruptRecordError,
    Index,
    KeySpace,
    SchemaVersionError,
    Store,
    StoreLockedError,
    Table,
)

# The on-disk format internals of node.store, tested here.
from node.store.codec import RecordCodec
from node.store.keys import encode_part
from node.store.store import SCHEMA_KEY, SchemaMeta
from tests.integration.store_writer import Change, Item, open_tables

ROOT = Path(__file__).resolve().parents[2]


class Task(msgspec.Struct, frozen=True):
    id: int
    job_id: int
    status: str
    keepers: list[str] = []


class Job(msgspec.Struct, frozen=True):
    id: int
    owner: str


class User(msgspec.Struct, frozen=True):
    name: str


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "db") as opened:
        yield opened


def task_table(store: Store) -> Table[Task]:
    return Table(
        store,
        Task,
        TASKS,
        key=lambda task: task.id,
        indexes=[
            Index("job", lambda task: task.job_id),
            Index("status", lambda task: task.status),
            Index("keeper", lambda task: task.keepers),
        ],
    )


def job_table(store: Store) -> Table[Job]:
    return Table(store, Job, JOBS, key=lambda job: job.id, indexes=[Index("owner", lambda job: job.owner)])


def ids(records: list[Task]) -> list[int]:
    return [record.id for record in records]


def test_put_get_round_trip(store):
    tasks = task_table(store)
    task = Task(7, job_id=3, status="pending", keepers=["k1", "k2"])
    tasks.put(task)
    assert tasks.get(7) == task
    assert tasks.get(8) is None


def test_index_lookup(store):
    tasks = task_table(store)
    for task in [Task(1, 10, "done", ["a"]), Task(2, 20, "pending", ["a", "b"]), Task(3, 10, "pending")]:
        tasks.put(task)
    assert ids(tasks.by_index("job", 10).items) == [1, 3]
    assert ids(tasks.by_index("status", "pending").items) == [2, 3]
    assert ids(tasks.by_index("keeper", "a").items) == [1, 2]
    assert ids(tasks.by_index("keeper", "b").items) == [2]
    assert tasks.by_index("job", 30).items == []


def test_updating_a_record_moves_its_index_entries(store):
    tasks = task_table(store)
    tasks.put(Task(1, 10, "pending", ["a"]))
    tasks.put(Task(1, 11, "done", ["b"]))
    assert tasks.by_index("job", 10).items == []
    assert tasks.by_index("status", "pending").items == []
    assert tasks.by_index("keeper", "a").items == []
    assert ids(tasks.by_index("job", 11).items) == [1]
    assert list(tasks.index_entries("job")) == [(11, 1)]
    assert list(tasks.index_entries("keeper")) == [("b", 1)]


def test_delete_removes_the_record_and_its_index_entries(store):
    tasks = task_table(store)
    tasks.put(Task(1, 10, "pending", ["a", "b"]))
    tasks.put(Task(2, 10, "pending"))
    assert tasks.delete(1) is True
    assert tasks.get(1) is None
    assert ids(tasks.by_index("job", 10).items) == [2]
    assert list(tasks.index_entries("keeper")) == []
    assert tasks.delete(1) is False


def test_pages_of_100_give_every_record_once_in_key_order(store):
    tasks = task_table(store)
    numbers = list(range(250))
    random.shuffle(numbers)
    for number in numbers:
        tasks.put(Task(number, job_id=number % 2, status="pending"))
    for query in (tasks.scan, lambda **page: tasks.by_index("status", "pending", **page)):
        seen, cursor, pages = [], None, 0
        while True:
            page = query(limit=100, after=cursor)
            seen += ids(page.items)
            pages += 1
            if page.cursor is None:
                break
            cursor = page.cursor
        assert seen == list(range(250))
        assert pages == 3
    assert ids(tasks.by_index("job", 1, limit=1000).items) == list(range(1, 250, 2))


def test_a_full_last_page_has_no_cursor(store):
    tasks = task_table(store)
    for number in range(4):
        tasks.put(Task(number, 0, "pending"))
    first = tasks.scan(limit=2)
    assert ids(first.items) == [0, 1]
    last = tasks.scan(limit=2, after=first.cursor)
    assert (ids(last.items), last.cursor) == ([2, 3], None)


def test_int_keys_sort_numerically(store):
    tasks = task_table(store)
    for number in (10, 2, -1, 1000, 0, 2**40):
        tasks.put(Task(number, job_id=5, status="pending"))
    assert ids(tasks.scan().items) == [-1, 0, 2, 10, 1000, 2**40]
    assert ids(tasks.by_index("job", 5).items) == [-1, 0, 2, 10, 1000, 2**40]


def test_scan_by_string_prefix(store):
    users = Table(store, User, USERS, key=lambda user: user.name)
    for name in ("bob", "al", "alice", "al\x00x", "b"):
        users.put(User(name))
    assert [user.name for user in users.scan(prefix="al").items] == ["al", "al\x00x", "alice"]
    assert [user.name for user in users.scan().items] == ["al", "al\x00x", "alice", "b", "bob"]


def test_multi_table_batch_is_all_or_nothing(store):
    tasks, jobs = task_table(store), job_table(store)

    def write_both_then_fail():
        with store.batch() as batch:
            tasks.put(Task(1, 1, "pending"), batch=batch)
            jobs.put(Job(1, "alice"), batch=batch)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_both_then_fail()
    assert tasks.get(1) is None
    assert jobs.get(1) is None
    assert list(tasks.index_entries("job")) == []
    assert jobs.by_index("owner", "alice").items == []

    with store.batch() as batch:
        tasks.put(Task(1, 1, "pending"), batch=batch)
        jobs.put(Job(1, "alice"), batch=batch)
        assert tasks.get(1) is None, "nothing is visible before the batch commits"
    assert tasks.get(1) == Task(1, 1, "pending")
    assert ids(jobs.by_index("owner", "alice").items) == [1]
    with pytest.raises(RuntimeError, match="already been committed"):
        jobs.put(Job(2, "bob"), batch=batch)


def test_a_record_put_twice_in_one_batch_leaves_no_stale_index_entry(store):
    tasks = task_table(store)
    tasks.put(Task(1, 10, "pending"))
    with store.batch() as batch:
        tasks.put(Task(1, 11, "running"), batch=batch)
        tasks.put(Task(1, 12, "done"), batch=batch)
    assert list(tasks.index_entries("job")) == [(12, 1)]
    assert list(tasks.index_entries("status")) == [("done", 1)]


def test_undecodable_value_names_the_table_and_key(store):
    tasks = task_table(store)
    store.db.put(TASKS.prefix + encode_part(5), b"\x01not msgpack")
    store.db.put(TASKS.prefix + encode_part(6), b"\x09" + msgspec.msgpack.encode(Task(6, 1, "done")))
    with pytest.raises(CorruptRecordError, match=r"table task/, key task/5: cannot read the value as Task"):
        tasks.get(5)
    with pytest.raises(CorruptRecordError, match=r"key task/6: .*value version 9"):
        tasks.get(6)


def test_one_table_per_key_space(store):
    task_table(store)
    with pytest.raises(ValueError, match="task/ overlaps task/"):
        task_table(store)
    with pytest.raises(ValueError, match="idx/x/ overlaps idx/"):
        Table(store, Job, KeySpace("idx/x"), key=lambda job: job.id)


def test_a_second_open_fails_naming_the_path(tmp_path):
    path = tmp_path / "db"
    opener = (
        "import sys; from pathlib import Path; from node.store import Store; Store.open(Path(sys.argv[1]))"
    )
    with Store.open(path):
        other = subprocess.run(
            [sys.executable, "-c", opener, str(path)], cwd=ROOT, capture_output=True, text=True, check=False
        )
        with pytest.raises(StoreLockedError, match="already open in this process"):
            Store.open(path)
    assert other.returncode == 1
    assert f"StoreLockedError: the store at {path} is locked: another process holds it open" in other.stderr
    Store.open(path).close()


def test_an_empty_store_gets_the_current_schema_version(tmp_path):
    Store.open(tmp_path / "db").close()
    db = plyvel.DB(str(tmp_path / "db"))
    assert RecordCodec(SchemaMeta).decode(db.get(SCHEMA_KEY), lambda: "meta") == SchemaMeta(SCHEMA_VERSION)
    db.close()


def test_a_newer_schema_version_refuses_to_open(tmp_path):
    path = tmp_path / "db"
    Store.open(path).close()
    db = plyvel.DB(str(path))
    db.put(SCHEMA_KEY, RecordCodec(SchemaMeta).encode(SchemaMeta(SCHEMA_VERSION + 1)))
    db.close()
    with pytest.raises(SchemaVersionError, match=f"{path} has schema version {SCHEMA_VERSION + 1}, .* newer"):
        Store.open(path)


def test_a_leveldb_without_schema_version_refuses_to_open(tmp_path):
    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    db.put(b"something", b"else")
    db.close()
    with pytest.raises(SchemaVersionError, match="not a triggerx-node store"):
        Store.open(tmp_path / "db")


def assert_consistent(items: Table[Item], changes: Table[Change]) -> dict[int, int]:
    """Every record has all its index entries, every entry matches a record; the revisions of
    each item and its change record agree. Returns item id -> revision."""
    stored = list(items.records())
    expected = {("owner", item.owner, item.id) for item in stored}
    expected |= {("group", item.group, item.id) for item in stored}
    expected |= {("tag", tag, item.id) for item in stored for tag in item.tags}
    entries = {
        (name, value, key) for name in ("owner", "group", "tag") for value, key in items.index_entries(name)
    }
    assert entries == expected
    stored_changes = list(changes.records())
    assert set(changes.index_entries("revision")) == {(c.revision, c.item_id) for c in stored_changes}
    revisions = {item.id: item.revision for item in stored}
    assert revisions == {change.item_id: change.revision for change in stored_changes}
    return revisions


def test_a_killed_writer_leaves_records_and_indexes_consistent(tmp_path):
    path, seed = tmp_path / "db", random.randrange(2**32)
    rng = random.Random(seed)
    previous: dict[int, int] = {}
    for round_ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.store_writer", str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout.readline() == "ready\n", writer.stderr.read()
            time.sleep(rng.uniform(0.05, 0.3))
            writer.send_signal(signal.SIGKILL)
        finally:
            writer.kill()
            _, errors = writer.communicate()
        assert writer.returncode == -signal.SIGKILL, errors
        with Store.open(path) as store:
            revisions = assert_consistent(*open_tables(store))
        assert revisions, f"round {round_} (seed {seed}): the writer wrote nothing"
        assert revisions != previous, f"round {round_} (seed {seed}): the writer changed nothing"
        previous = revisions
