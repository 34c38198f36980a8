"""A store writer for the crash test: puts, updates and deletes indexed records until killed.

Run as `python -m tests.integration.store_writer <path>`; it prints "ready" once the store is
open. Every batch writes an item and its change record together, so after any crash each
item's revision must equal its change record's.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import msgspec

from node.store import Index, KeySpace, Store, Table

TAGS = ("red", "green", "blue", "cyan", "gold")


class Item(msgspec.Struct, frozen=True):
    """A record with a str, an int and a multi-valued index."""

    id: int
    owner: str
    group: int
    tags: list[str]
    revision: int


class Change(msgspec.Struct, frozen=True):
    """The last revision written for an item, always in the same batch as the item."""

    item_id: int
    revision: int


def open_tables(store: Store) -> tuple[Table[Item], Table[Change]]:
    """The writer's two tables, as the test reopens them."""
    items = Table(
        store,
        Item,
        KeySpace("item"),
        key=lambda item: item.id,
        indexes=[
            Index("owner", lambda item: item.owner),
            Index("group", lambda item: item.group),
            Index("tag", lambda item: item.tags),
        ],
    )
    changes = Table(
        store,
        Change,
        KeySpace("change"),
        key=lambda change: change.item_id,
        indexes=[Index("revision", lambda change: change.revision)],
    )
    return items, changes


def random_item(rng: random.Random, item_id: int, revision: int) -> Item:
    return Item(
        item_id,
        owner=f"owner-{rng.randrange(20)}",
        group=rng.randrange(-5, 50),
        tags=rng.sample(TAGS, rng.randrange(len(TAGS) + 1)),
        revision=revision,
    )


def main(path: Path) -> None:
    rng = random.Random()
    with Store.open(path) as store:
        items, changes = open_tables(store)
        print("ready", flush=True)
        while True:
            item_id, revision = rng.randrange(300), rng.getrandbits(32)
            with store.batch() as batch:
                if rng.random() < 0.1:
                    items.delete(item_id, batch=batch)
                    changes.delete(item_id, batch=batch)
                    continue
                # Sometimes the same item twice in one batch: the second put must drop the first's entries.
                if rng.random() < 0.2:
                    items.put(random_item(rng, item_id, revision), batch=batch)
                items.put(random_item(rng, item_id, revision), batch=batch)
                changes.put(Change(item_id, revision), batch=batch)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
