"""A size-bounded cache of scripts on disk, by CID, least recently used first out."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from node.content.cid import CidError, matches, parse_cid


class ScriptCache:
    """Scripts in `directory`, at most `max_bytes` in all. A file whose bytes no longer match
    its name (a disk error, a hand edit) is dropped when read."""

    def __init__(self, directory: Path, max_bytes: int = 64 * 2**20) -> None:
        self.directory, self.max_bytes = directory, max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._sizes: OrderedDict[str, int] = OrderedDict()
        files = sorted(directory.iterdir(), key=lambda path: path.stat().st_mtime)
        for path in files:
            self._sizes[path.name] = path.stat().st_size

    @property
    def size(self) -> int:
        """Bytes held."""
        return sum(self._sizes.values())

    def get(self, cid: str) -> bytes | None:
        """The script `cid` names, if held (and still what its name says)."""
        if cid not in self._sizes:
            return None
        path = self.directory / cid
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        if not matches(cid, data):
            self._forget(cid)
            return None
        self._sizes.move_to_end(cid)
        path.touch()
        return data

    def put(self, cid: str, data: bytes) -> None:
        """Keep `data` as `cid` (ValueError if it is not what `cid` names), evicting the least
        recently used scripts beyond the size bound."""
        try:
            canonical = parse_cid(cid)
        except CidError as error:
            raise ValueError(str(error)) from None
        if not matches(canonical, data):
            raise ValueError(f"the bytes are not {cid}")
        if len(data) > self.max_bytes:
            return
        (self.directory / canonical).write_bytes(data)
        self._sizes[canonical] = len(data)
        self._sizes.move_to_end(canonical)
        while self.size > self.max_bytes:
            self._forget(next(iter(self._sizes)))

    def _forget(self, cid: str) -> None:
        self._sizes.pop(cid, None)
        (self.directory / cid).unlink(missing_ok=True)
