"""The node's storage: one LevelDB per node (plyvel), one handle per process.

Keys are grouped in spaces by prefix (`job/`, `task/`, `user/`, `keeper/`, `apikey/`,
`points/...`, `sched/...`, `chk/...`, indexes under `idx/...`, the schema version at `meta/schema`).
Values are msgspec Structs as JSON behind a version byte. A `Table` binds a Struct type
to a space, a primary key and secondary indexes, and writes each record together with its
index entries in one atomic batch; `Store.batch()` makes writes to several tables atomic:

    with Store.open(path) as store:
        tasks = Table(store, Task, TASKS, key=lambda t: t.id, indexes=[Index("job", lambda t: t.job_id)])
        with store.batch() as batch:
            tasks.put(task, batch=batch)
            jobs.put(job, batch=batch)
        page = tasks.by_index("job", 7, limit=100)

Public API: Store (with Batch), Table (with Index and Page), the key spaces and KeySpace, the
versions and the errors. The record codec and the schema record are internal.
"""

from node.store.codec import VALUE_VERSION
from node.store.errors import CorruptRecordError, SchemaVersionError, StoreError, StoreLockedError
from node.store.keys import (
    API_KEYS,
    CHECKPOINTS,
    FAUCET,
    INDEXES,
    JOBS,
    KEEPERS,
    MAX_INT_KEY,
    META,
    POINTS,
    SCHEDULES,
    SCRIPTS,
    TASKS,
    USERS,
    KeyPart,
    KeySpace,
)
from node.store.store import SCHEMA_VERSION, Batch, Store
from node.store.table import Index, Page, Table

__all__ = [
    "API_KEYS",
    "CHECKPOINTS",
    "FAUCET",
    "INDEXES",
    "JOBS",
    "KEEPERS",
    "MAX_INT_KEY",
    "META",
    "POINTS",
    "SCHEDULES",
    "SCHEMA_VERSION",
    "SCRIPTS",
    "TASKS",
    "USERS",
    "VALUE_VERSION",
    "Batch",
    "CorruptRecordError",
    "Index",
    "KeyPart",
    "KeySpace",
    "Page",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "Table",
]
