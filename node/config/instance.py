"""One running node per identity: a second process started with the same identity is refused.

Two processes with one identity (an operator who starts a node twice, a supervisor that
restarts one whose old process still runs) share a peer id and an operator key. Their peers
see two signed peer records under one peer id, refuse the older one each time the other
process speaks, and so drop the messages of both (docs/architecture.md, py-libp2p 21); their
transactions race for the same nonces. The second process is refused at start instead.

The lock is an exclusive `flock` on the identity key file itself, opened read-only and held
for the life of the process (the kernel releases it when the process dies, however it dies).
Locking the key, not a file beside it, needs no write access to the key folder (keys are
often mounted read-only), follows every path to the same file (a symlink, a relative path),
and creates nothing an attacker could swap for a symlink. Only processes on one machine are
seen, and a copy of the key is another file: two machines or two copies sharing an
operator's keys are the operator's mistake to avoid, as with any validator key.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from node.config.errors import ConfigError


@contextmanager
def sole_instance(identity: Path, key: str = "keys.identity") -> Iterator[None]:
    """Hold the lock of the identity key at `identity` while the block runs; ConfigError
    (naming `key`) if another process holds it."""
    try:
        fd = os.open(identity, os.O_RDONLY | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO must not hang us
    except OSError as error:
        raise ConfigError(f"{key}: cannot open {identity}: {error.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"{key}: another node is running with the identity {identity}; "
                "one identity runs in one process at a time"
            ) from None
        except OSError as error:
            raise ConfigError(f"{key}: cannot lock {identity}: {error.strerror}") from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
