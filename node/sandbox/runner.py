"""One run of a script under limits: what goes in, what comes out, and how the process is kept.

A backend (bwrap, docker) says how to wrap the interpreter; this module starts the wrapped
command, feeds it stdin, reads its stdout up to the cap (streamed: a flood is cut, never held
whole), keeps the last bytes of stderr, kills the whole run at the wall-time limit, and reaps
it with its resource usage.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Literal

import trio

Language = Literal["python", "javascript"]
Status = Literal["ok", "failed", "timeout", "cpu_limit", "output_limit", "killed"]
STDERR_TAIL = 4_096  # bytes of stderr kept (the end, where errors are)
OPEN_FILES = 256  # a run's file descriptors (its proxy connections among them)
# Threads waiting for runs to end: their own pool (one per trio run), so that runs never take
# the threads the rest of the node uses (trio's default pool has 40).
_WAITERS: trio.lowlevel.RunVar[trio.CapacityLimiter] = trio.lowlevel.RunVar("sandbox_waiters")


def _waiters() -> trio.CapacityLimiter:
    try:
        return _WAITERS.get()
    except LookupError:
        _WAITERS.set(trio.CapacityLimiter(128))
        return _WAITERS.get()


SIGNALS = frozenset(int(number) for number in signal.valid_signals())


@dataclass(frozen=True)
class RunLimits:
    """What one run may use: wall seconds, CPU seconds, address space (bytes), processes and
    threads, stdout bytes, and the size of its private /tmp."""

    wall_seconds: float = 10.0
    cpu_seconds: int = 5
    memory_bytes: int = 2**30  # address space: Node reserves ~1 GiB at start, whatever it uses
    pids: int = 64
    output_bytes: int = 1 * 2**20
    tmp_bytes: int = 16 * 2**20


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its status, exit code (or -signal; a script that exits with 128 + n
    reads as killed by signal n, as a shell would say), stdout (at most the cap), the tail of
    stderr, and what it used."""

    status: Status
    exit_code: int
    stdout: bytes
    stderr_tail: bytes
    wall_seconds: float
    cpu_seconds: float
    max_rss_bytes: int

    @property
    def reason(self) -> str:
        """One line saying how the run ended (for logs and refusals)."""
        last = self.stderr_tail.decode(errors="replace").strip().splitlines()[-1:] or [""]
        said = f": {last[0][:200]}" if last[0] else ""
        return {
            "ok": "ran to completion",
            "failed": f"exited with {self.exit_code}{said}",
            "timeout": "ran out of wall time",
            "cpu_limit": "ran out of CPU time",
            "output_limit": "printed more than the output limit",
            "killed": f"was killed by signal {-self.exit_code}{said}",
        }[self.status]


@dataclass
class Output:
    """What a run prints, as it comes: stdout up to `cap` bytes, and the last STDERR_TAIL
    bytes of stderr (every backend reads its run's output into one of these)."""

    cap: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)

    def out(self, chunk: bytes) -> bool:
        """Take `chunk` of stdout; False once the cap is passed (what fits is kept: the run
        is to be stopped)."""
        if len(self.stdout) + len(chunk) > self.cap:
            self.stdout.extend(chunk[: self.cap - len(self.stdout)])
            return False
        self.stdout.extend(chunk)
        return True

    def err(self, chunk: bytes) -> None:
        """Take `chunk` of stderr."""
        self.stderr.extend(chunk)
        del self.stderr[:-STDERR_TAIL]


def exit_code(raw: int) -> int:
    """A run's exit code, or -signal: a wrapper (bwrap, a container's init) reports its child's
    death by signal n as 128 + n, as a shell would."""
    return 128 - raw if raw > 128 and raw - 128 in SIGNALS else raw


def ended_as(code: int, *, cpu_limit: bool) -> Status:
    """How a run that nobody stopped ended, from its exit code; `cpu_limit`: its SIGKILL was
    the CPU limit's (the interpreter is pid 1: it ignores SIGXCPU, and the hard limit kills)."""
    if code == 0:
        return "ok"
    if code == -signal.SIGKILL and cpu_limit:
        return "cpu_limit"
    return "killed" if code < 0 else "failed"


@dataclass
class Script:
    """A script to run: its language, its source, what it reads on stdin, extra environment,
    and the unix socket of its HTTP proxy (node/sandbox/proxy.py), if it may use the web."""

    language: Language
    source: bytes
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)
    http_socket: str | None = None


class Sandbox(ABC):
    """Runs scripts in isolation (see the package docstring)."""

    name: str

    @abstractmethod
    async def run(self, script: Script, limits: RunLimits | None = None) -> RunResult:
        """Run `script` under `limits`; the result, whatever the script does."""


@contextmanager
def script_file(source: bytes) -> Iterator[str]:
    """`source` in a temporary file that any user may read (the run's uid binds it), removed after."""
    fd, path = tempfile.mkstemp(prefix="triggerx-script-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(source)
        os.chmod(path, 0o444)
        yield path
    finally:
        os.unlink(path)


async def run_process(
    argv: list[str],
    fds: list[int],
    stdin: bytes,
    limits: RunLimits,
    preexec: Callable[[], None],
    env: dict[str, str] | None = None,
    info_fd: int | None = None,
) -> RunResult:
    """Run `argv` (inheriting `fds`, which are closed here; with `env`, or this process's
    environment) in a session of its own, feeding it `stdin`, under `limits`' wall time and
    output cap; `preexec` runs in the child before exec. `info_fd`: where a wrapper (bwrap's
    `--info-fd`) says the pid of the child it runs, which is then the one killed, so that the
    wrapper reaps it. Cancelled, the run is killed too."""
    began = time.monotonic()
    try:
        process = subprocess.Popen(  # noqa: ASYNC220 - reaped with wait4 in a thread, for its rusage
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=fds,
            preexec_fn=preexec,
            env=env,
            start_new_session=True,
        )
    except BaseException:
        if info_fd is not None:
            os.close(info_fd)
        raise
    finally:
        for fd in fds:
            os.close(fd)
    assert process.stdin
    assert process.stdout
    assert process.stderr
    feed = trio.lowlevel.FdStream(os.dup(process.stdin.fileno()))
    out = trio.lowlevel.FdStream(os.dup(process.stdout.fileno()))
    err = trio.lowlevel.FdStream(os.dup(process.stderr.fileno()))
    for pipe in (process.stdin, process.stdout, process.stderr):
        pipe.close()
    output = Output(limits.output_bytes)
    ended: Status | None = None
    inner: list[int] = []  # the wrapped child's pid, once the wrapper says it

    def stop(why: Status) -> None:
        nonlocal ended
        ended = ended or why
        with suppress(ProcessLookupError):
            if inner:  # the wrapper reaps it, then exits: nothing is left to the host's init
                os.kill(inner[0], signal.SIGKILL)
            else:
                os.killpg(process.pid, signal.SIGKILL)

    async def read_info() -> None:
        if info_fd is None:
            return
        # Read to the end: closing it early would make the wrapper's next write kill it (SIGPIPE).
        async with trio.lowlevel.FdStream(info_fd) as info:
            said = b""
            while chunk := await info.receive_some(4096):
                said = (said + chunk)[-4096:]
                found = re.search(rb'"child-pid"\s*:\s*([0-9]+)', said)
                if found and not inner:
                    inner.append(int(found.group(1)))

    async def write_stdin() -> None:
        # A script that does not read all of its stdin closes the pipe: that is its business.
        async with feed:
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await feed.send_all(stdin)

    async def read_stdout() -> None:
        async with out:
            while chunk := await out.receive_some(65_536):
                if not output.out(chunk):
                    stop("output_limit")
                    return

    async def read_stderr() -> None:
        async with err:
            while chunk := await err.receive_some(65_536):
                output.err(chunk)

    async def watch_the_clock() -> None:
        await trio.sleep(limits.wall_seconds)
        stop("timeout")

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_stdin)
            nursery.start_soon(read_stdout)
            nursery.start_soon(read_stderr)
            nursery.start_soon(read_info)
            async with trio.open_nursery() as clock:
                clock.start_soon(watch_the_clock)
                _, status, usage = await trio.to_thread.run_sync(
                    os.wait4, process.pid, 0, abandon_on_cancel=True, limiter=_waiters()
                )
                clock.cancel_scope.cancel()
            nursery.cancel_scope.deadline = trio.current_time() + 1.0  # the pipes' last bytes, then done
    except BaseException:  # cancelled (a client gone, a shutdown): the run goes too, and the
        stop("killed")  # abandoned wait4 reaps it
        raise
    process.returncode = code = exit_code(os.waitstatus_to_exitcode(status))
    cpu = usage.ru_utime + usage.ru_stime
    return RunResult(
        status=ended or ended_as(code, cpu_limit=cpu >= limits.cpu_seconds),
        exit_code=code,
        stdout=bytes(output.stdout),
        stderr_tail=bytes(output.stderr),
        wall_seconds=time.monotonic() - began,
        cpu_seconds=cpu,
        max_rss_bytes=usage.ru_maxrss * 1024,
    )


def set_limits(limits: RunLimits, *, processes_now: int = 0) -> None:
    """Resource limits of the calling process (the child, before exec): CPU, address space,
    file size, no core files, open files, and processes (`processes_now` of its user already run)."""
    # Soft = hard: the interpreter is its namespace's pid 1, which ignores SIGXCPU; SIGKILL ends it.
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds))
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.tmp_bytes, limits.tmp_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_NPROC, (processes_now + limits.pids, processes_now + limits.pids))
