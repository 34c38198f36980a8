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

Determinism, so that two keepers get the same output from one input: the files and
environment of node/sandbox/files.py (a fixed clock, randomness and file times, no new
programs, no ctypes, no Node addons), and addresses not randomised (no ASLR: the keeper sets
the run's personality). What remains is docs/architecture.md, Sandbox, "What determinism does
not cover".
"""

from __future__ import annotations

import ctypes
import os
import shutil
from collections import deque

import trio

from node.sandbox.files import INTERPRETERS, SCRIPT_PATH, RunFiles
from node.sandbox.runner import (
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


_ADDR_NO_RANDOMIZE = 0x0040000


class BwrapSandbox(Sandbox):
    """Runs scripts under bwrap (see the module docstring)."""

    name = "bwrap"

    def __init__(self, bwrap: str | None = None, *, hide_ctypes: bool = True) -> None:
        """`hide_ctypes`: see RunFiles."""
        self.bwrap = bwrap or shutil.which("bwrap") or "/usr/bin/bwrap"
        self.files = RunFiles(hide_ctypes=hide_ctypes)
        self._program = filter_program()
        self._libc = ctypes.CDLL(None, use_errno=True)
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
        """The bwrap command for `script` (its source at `script_path`), and the fd of its
        seccomp filter."""
        program = _data_fd(self._program)
        mounts = self.files.mounts(script_path, script)
        binds = [part for source, target in mounts.read_only for part in ("--ro-bind", source, target)]
        if mounts.socket is not None:
            binds += ["--bind", *mounts.socket]
        environment = self.files.environment(script)
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
            # No /proc: uptime, boot id, memory and mounts would differ from keeper to keeper.
            "--dev", "/dev",
            "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
            *binds,
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
            SCRIPT_PATH,
        ]  # fmt: skip
        return argv, [program]


def _data_fd(data: bytes) -> int:
    """A pipe's read end holding `data` (a few hundred bytes: the pipe holds them)."""
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
