"""What every backend puts in a run's filesystem besides the host's /usr, and its environment.

The same for bwrap and docker, so that a script prints the same bytes under either:

- /sandbox/script, the script, read-only;
- /sandbox/libdeterminism.so and /etc/ld.so.preload naming it (node/sandbox/determinism.c,
  built by scripts/setup): the clock, randomness and file times a script sees, and no new
  programs once the interpreter runs;
- /dev/urandom and /dev/random: a fixed file, the same bytes at every open (OpenSSL refuses a
  stream of zeros);
- for Python, /dev/null over ctypes (a script could call any native code with it); for Node,
  /sandbox/prelude.js, which deletes `process.dlopen` (native addons) before the script runs;
- for a script with an HTTP proxy (node/sandbox/proxy.py), its socket at /sandbox/http.sock and
  the helpers of node/sandbox/lib on the interpreters' paths.
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from node.sandbox.runner import Language, Script

DETERMINISM_LIBRARY = Path(__file__).with_name("libdeterminism.so")
"""Built from determinism.c by scripts/setup (`cc -shared -fPIC -O2 determinism.c -ldl`)."""
HELPERS = Path(__file__).with_name("lib")
"""triggerx_http for Python and Node (node/sandbox/proxy.py)."""
NODE_PRELUDE = b"delete process.dlopen;\n"
RANDOMNESS = hashlib.shake_256(b"triggerx sandbox /dev/urandom").digest(256 * 1024)
"""What a script reads from /dev/urandom and /dev/random: the same bytes in every run."""
INTERPRETERS: dict[Language, list[str]] = {
    # No user site, no site, no .pyc writes, no script dir on the path. Not -I: it would ignore
    # PYTHONHASHSEED (the environment is cleared anyway: only ours is there).
    "python": ["/usr/bin/python3", "-s", "-S", "-B", "-P"],
    "javascript": [
        "/usr/bin/node",
        "--max-old-space-size=128",
        "--disallow-code-generation-from-strings",
        "--require=/sandbox/prelude.js",
    ],
}
ENVIRONMENT = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "PYTHONHASHSEED": "0",
    "HOME": "/tmp",
    # Docker sets PATH and HOSTNAME whatever it is told, bwrap PWD: every backend gives all three.
    "PATH": "/usr/bin:/bin",
    "HOSTNAME": "sandbox",
    "PWD": "/tmp",
}
SCRIPT_PATH = "/sandbox/script"
SOCKET_PATH = "/sandbox/http.sock"


@dataclass(frozen=True)
class Mounts:
    """A run's mounts besides /usr: read-only binds (host path → sandbox path) and the one
    writable bind, its proxy's socket."""

    read_only: list[tuple[str, str]]
    socket: tuple[str, str] | None


class RunFiles:
    """The files every run gets (see the module docstring), made once per sandbox.
    `hide_ctypes=False` lets Python scripts load ctypes: only to test the layers below it (the
    seccomp filter) with raw syscalls."""

    def __init__(self, *, hide_ctypes: bool = True) -> None:
        if not DETERMINISM_LIBRARY.is_file():
            raise FileNotFoundError(f"{DETERMINISM_LIBRARY} is missing: scripts/setup builds it")
        self.hidden = sorted(glob.glob("/usr/lib/python3*/lib-dynload/_ctypes.*.so")) if hide_ctypes else []
        self._directory = tempfile.TemporaryDirectory(prefix="triggerx-sandbox-")
        os.chmod(self._directory.name, 0o755)
        self.randomness = self._file("urandom", RANDOMNESS)
        self.preload = self._file("ld.so.preload", b"/sandbox/libdeterminism.so\n")
        self.prelude = self._file("prelude.js", NODE_PRELUDE)

    def _file(self, name: str, data: bytes) -> str:
        path = os.path.join(self._directory.name, name)
        with open(path, "wb") as file:
            file.write(data)
        os.chmod(path, 0o444)
        return path

    def mounts(self, script_path: str, script: Script) -> Mounts:
        """What a run of `script` (its source at `script_path`) gets bound. Each mount costs the
        run time: what one interpreter needs is there for it alone (a script can start no other)."""
        binds = [
            (script_path, SCRIPT_PATH),
            (str(DETERMINISM_LIBRARY), "/sandbox/libdeterminism.so"),
            (self.preload, "/etc/ld.so.preload"),
            (self.randomness, "/dev/urandom"),
            (self.randomness, "/dev/random"),
        ]
        if script.language == "python":
            binds += [("/dev/null", hidden) for hidden in self.hidden]
        else:
            binds.append((self.prelude, "/sandbox/prelude.js"))
        socket = None
        if script.http_socket is not None:
            binds.append((str(HELPERS), "/sandbox/lib"))
            socket = (script.http_socket, SOCKET_PATH)
        return Mounts(binds, socket)

    @staticmethod
    def environment(script: Script) -> dict[str, str]:
        """The run's whole environment: the fixed one, the script's, and the proxy's."""
        environment = ENVIRONMENT | script.env
        if script.http_socket is not None:
            environment |= {"TRIGGERX_HTTP_SOCKET": SOCKET_PATH}
            environment |= {"PYTHONPATH": "/sandbox/lib", "NODE_PATH": "/sandbox/lib"}
        return environment
