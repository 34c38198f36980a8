"""The bwrap (bubblewrap) backend: a fresh set of namespaces per run, nothing of the host but
/usr (read-only), the script and a private /tmp.

Each run gets: new user, pid, network, IPC, UTS and cgroup namespaces (no network at all; its
processes die with it); a read-only root holding /usr, a minimal read-only /dev, a size-bounded
tmpfs at /tmp, and no /proc; the script bound read-only at /sandbox/script; an empty
environment but for fixed locale, time zone and hash seed; the seccomp filter
(node/sandbox/seccomp.py); no new privileges (bwrap sets it). On the host the run has its own
unprivileged uid (keepers run as root in containers: `sandbox_uids`, one per concurrent run,
so that one run's fork bomb does not use up another's process limit; whatever a run leaves is
killed by uid) and resource limits: CPU, address space, file size, processes.

Determinism, so that two keepers get the same output from one input: the wall clock reads the
input block's timestamp (`TRIGGERX_TIME`) and stands still, other clocks move 1 ms a reading,
file times read 0 (node/sandbox/determinism.c, preloaded into every process through the
sandbox's /etc/ld.so.preload; the raw clock syscalls are refused); /dev/urandom and /dev/random
read a fixed stream (the same bytes at every open: OpenSSL refuses a stream of zeros) and
`getrandom` answers ENOSYS, so libraries fall back to them; addresses are not
randomised (no ASLR); Python's hash seed is fixed; Python cannot load ctypes, nor Node native
addons, so a script runs no native code of its own through its interpreter. What remains is
docs/architecture.md, Sandbox, "What determinism does not cover".
"""

from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import shutil
import tempfile
from collections import deque
from pathlib import Path

import trio

from node.sandbox.runner import (
    Language,
    RunLimits,
    RunResult,
    Sandbox,
    Script,
    run_process,
    script_file,
    set_limits,
)
from node.sandbox.seccomp import filter_program


def sandbox_uids(pid: int | None = None) -> range:
    """Host uids of the runs of process `pid` (default: this one) when it is root: one per
    concurrent run, 64 of them, in a block of its own (several nodes on one host, a devnet's,
    must not share: a run's leftovers are killed by uid)."""
    block = (os.getpid() if pid is None else pid) % 15_000
    return range(100_000 + 64 * block, 100_064 + 64 * block)


DETERMINISM_LIBRARY = Path(__file__).with_name("libdeterminism.so")
HELPERS = Path(__file__).with_name("lib")  # triggerx_http for Python and Node (node/sandbox/proxy.py)
"""Built from determinism.c by scripts/setup (`cc -shared -fPIC -O2 determinism.c -ldl`)."""
NODE_PRELUDE = b"delete process.dlopen;\n"  # no native addons: no native code of the script's own
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
ENVIRONMENT = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "PYTHONHASHSEED": "0", "HOME": "/tmp"}
_ADDR_NO_RANDOMIZE = 0x0040000
RANDOMNESS = hashlib.shake_256(b"triggerx sandbox /dev/urandom").digest(256 * 1024)
"""What a script reads from /dev/urandom and /dev/random: the same bytes in every run."""


class BwrapSandbox(Sandbox):
    """Runs scripts under bwrap (see the module docstring)."""

    name = "bwrap"

    def __init__(self, bwrap: str | None = None, *, hide_ctypes: bool = True) -> None:
        """`hide_ctypes=False` lets Python scripts load ctypes: only to test the layers below it
        (the seccomp filter) with raw syscalls."""
        self.bwrap = bwrap or shutil.which("bwrap") or "/usr/bin/bwrap"
        if not DETERMINISM_LIBRARY.is_file():
            raise FileNotFoundError(f"{DETERMINISM_LIBRARY} is missing: scripts/setup builds it")
        self._program = filter_program()
        # ctypes would let a Python script call any native code (the host's clock included).
        self._hidden = sorted(glob.glob("/usr/lib/python3*/lib-dynload/_ctypes.*.so")) if hide_ctypes else []
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._randomness = tempfile.NamedTemporaryFile(prefix="triggerx-urandom-")  # noqa: SIM115 - kept open for the sandbox's life
        self._randomness.write(RANDOMNESS)
        self._randomness.flush()
        os.chmod(self._randomness.name, 0o444)
        uids = sandbox_uids()
        self._uids = trio.Semaphore(len(uids)) if os.geteuid() == 0 else None
        self._free = deque(uids)

    async def run(self, script: Script, limits: RunLimits | None = None) -> RunResult:
        limits = limits or RunLimits()
        if self._uids is None:  # not root: the keeper's own uid, its processes counted now
            return await self._run(script, limits, os.geteuid(), _processes_of(os.geteuid()))
        async with self._uids:
            uid = self._free.popleft()  # the uid that rested longest: its last run's dead are reaped
            try:
                # Zombies of an earlier run (the host's init reaps them) still count toward its limit.
                return await self._run(script, limits, uid, _processes_of(uid))
            finally:
                _kill_everything_of(uid)  # a run's uid is its own: whatever is left of it goes
                self._free.append(uid)

    async def _run(self, script: Script, limits: RunLimits, uid: int, running: int) -> RunResult:
        def preexec() -> None:  # in the child: limits first, then the run's own uid
            set_limits(limits, processes_now=running)
            self._libc.personality(_ADDR_NO_RANDOMIZE)  # inherited by bwrap and the script
            if uid != os.geteuid():
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)

        if script.http_socket is not None and uid != os.geteuid():
            os.chown(script.http_socket, uid, uid)  # the run's alone (the proxy made it 0600)
        with script_file(script.source) as path:
            argv, fds = self.command(path, script, limits)
            info_read, info_write = os.pipe()
            argv[1:1] = ["--info-fd", str(info_write)]
            return await run_process(
                argv, [*fds, info_write], script.stdin, limits, preexec, info_fd=info_read
            )

    def command(self, script_path: str, script: Script, limits: RunLimits) -> tuple[list[str], list[int]]:
        """The bwrap command for `script` (its source at `script_path`), and the fds it reads:
        the seccomp filter, the preload list, Node's prelude. A script with an HTTP proxy gets
        its socket at /sandbox/http.sock and the helpers of node/sandbox/lib on its path."""
        program, preload = _data_fd(self._program), _data_fd(b"/sandbox/libdeterminism.so\n")
        fds = [program, preload]
        # Each mount costs the run time: what one interpreter needs is there for it alone.
        if script.language == "python":
            interpreter = [part for hidden in self._hidden for part in ("--ro-bind", "/dev/null", hidden)]
        else:
            fds.append(_data_fd(NODE_PRELUDE))
            interpreter = ["--ro-bind-data", str(fds[-1]), "/sandbox/prelude.js"]
        environment = ENVIRONMENT | script.env
        web: list[str] = []
        if script.http_socket is not None:
            environment |= {"TRIGGERX_HTTP_SOCKET": "/sandbox/http.sock"}
            environment |= {"PYTHONPATH": "/sandbox/lib", "NODE_PATH": "/sandbox/lib"}
            web = ["--bind", script.http_socket, "/sandbox/http.sock"]
            web += ["--ro-bind", str(HELPERS), "/sandbox/lib"]
        argv = [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",  # the interpreter is the namespace's init: bwrap reaps it, with its usage
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin",
            *interpreter,
            # No /proc: uptime, boot id, memory and mounts would differ from keeper to keeper.
            "--dev", "/dev",
            "--ro-bind", self._randomness.name, "/dev/urandom",
            "--ro-bind", self._randomness.name, "/dev/random",
            "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
            "--ro-bind", script_path, "/sandbox/script",
            "--ro-bind", str(DETERMINISM_LIBRARY), "/sandbox/libdeterminism.so",
            "--ro-bind-data", str(preload), "/etc/ld.so.preload",
            *web,
            # The rest read-only: bwrap's root and /dev are tmpfs, unbounded but for this.
            "--remount-ro", "/",
            "--remount-ro", "/dev",
            "--chdir", "/tmp",
            "--hostname", "sandbox",
            "--uid", "65534", "--gid", "65534",
            "--clearenv",
            *[part for name, value in environment.items() for part in ("--setenv", name, value)],
            "--seccomp", str(program),
            "--",
            *INTERPRETERS[script.language],
            "/sandbox/script",
        ]  # fmt: skip
        return argv, fds


def _data_fd(data: bytes) -> int:
    """A pipe's read end holding `data` (a few hundred bytes at most: the pipe holds them)."""
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    return read


def _kill_everything_of(uid: int) -> None:
    """SIGKILL every process of `uid` (a run's own uid: what a killed run may leave behind,
    such as bwrap's reaper when the run was cancelled mid-way)."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    os.kill(int(entry.name), 9)
            except OSError:
                continue  # it ended meanwhile


def _processes_of(uid: int) -> int:
    """How many tasks (threads count: RLIMIT_NPROC counts them) `uid` runs now."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue  # it ended meanwhile
    return count
