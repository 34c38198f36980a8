"""One running node per identity: a second process started with the same identity is refused.

Two processes with one identity (an operator who starts a node twice, a supervisor that
restarts one whose old process still runs) share a peer id and an operator key. Their peers
see two signed peer records under one peer id, refuse the older one each time the other
process speaks, and so drop the messages of both (py-libp2p keeps the newest record); their
transactions race for the same nonces. The second process is refused at start instead, by
an exclusive lock on a file beside the identity key, held for the life of the process (the
kernel releases it when the process dies, however it dies).

Only processes on one machine are seen. Two machines sharing an operator's keys are the
operator's mistake to avoid, as with any validator key.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from node.config.errors import ConfigError


def lock_path(identity: Path) -> Path:
    """The lock file of the node whose identity key is at `identity`."""
    return identity.with_name(identity.name + ".lock")


@contextmanager
def sole_instance(identity: Path, key: str = "keys.identity") -> Iterator[None]:
    """Hold the identity's lock while the block runs; ConfigError (naming `key`) if another
    process holds it."""
    path = lock_path(identity)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise ConfigError(f"{key}: cannot create the lock file {path}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ConfigError(
                f"{key}: another node is running with the identity {identity} (pid {holder}); "
                "one identity runs in one process at a time"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
