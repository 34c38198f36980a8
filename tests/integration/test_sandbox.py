"""The sandboxes against hostile scripts: each is contained with a clear status, leaves no
process behind, and the sandbox goes on serving honest runs. Every test runs on bwrap, and on
docker when an engine answers on this machine (skipped with the reason otherwise)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from node.roles.runtime import working_sandbox
from node.sandbox import BwrapSandbox, DockerSandbox, RunLimits, Sandbox, Script
from node.sandbox.bwrap import sandbox_uids
from node.sandbox.docker import DOCKER_SOCKET, LABEL
from node.sandbox.files import ENVIRONMENT

LIMITS = RunLimits(wall_seconds=5, cpu_seconds=2, output_bytes=65_536)
HONEST = Script(
    "python", b"import json, sys; print(json.dumps({'args': [json.load(sys.stdin)['n'] + 1]}))", b'{"n": 41}'
)
NODE = b"let s = ''; process.stdin.on('data', d => s += d).on('end', () => console.log(JSON.parse(s).n * 2))"


def docker_engine_missing() -> str | None:
    """Why the docker backend cannot be tested here, or None."""
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=DOCKER_SOCKET), timeout=5) as engine:
            answer = engine.get("http://docker/_ping")
    except httpx.HTTPError as error:
        return f"no Docker engine at {DOCKER_SOCKET} ({type(error).__name__})"
    return None if answer.status_code == 200 else f"the Docker engine answers {answer.status_code}"


def make_sandbox(backend: str, **options: bool) -> Sandbox:
    if backend == "bwrap":
        return BwrapSandbox(**options)
    missing = docker_engine_missing()
    if missing is not None:
        pytest.skip(missing)
    return DockerSandbox(**options)


@pytest.fixture(params=["bwrap", "docker"])
async def sandbox(request) -> AsyncIterator[Sandbox]:
    made = make_sandbox(request.param)
    yield made
    if isinstance(made, DockerSandbox):
        await made.aclose()


def python(source: str) -> Script:
    return Script("python", source.encode())


def leftovers() -> list[str]:
    """Processes of the bwrap sandbox's uids still alive on the host (a zombie is dead: the
    host's init reaps it), and docker sandbox containers still there."""
    found = []
    if docker_engine_missing() is None:
        with httpx.Client(transport=httpx.HTTPTransport(uds=DOCKER_SOCKET)) as engine:
            filters = json.dumps({"label": [LABEL]})
            found += [
                c["Id"]
                for c in engine.get(
                    "http://docker/containers/json", params={"all": "1", "filters": filters}
                ).json()
            ]
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                alive = "\nState:\tZ" not in Path(f"/proc/{entry.name}/status").read_text()
                if entry.stat().st_uid in sandbox_uids() and alive:
                    found.append(entry.name)
            except OSError:
                continue
    return found


async def test_an_honest_script_reads_stdin_and_prints_its_answer(sandbox):
    result = await sandbox.run(HONEST, LIMITS)
    assert (result.status, json.loads(result.stdout)) == ("ok", {"args": [42]})
    result = await sandbox.run(Script("javascript", NODE, b'{"n": 21}'), LIMITS)
    assert (result.status, result.stdout) == ("ok", b"42\n")
    assert result.cpu_seconds > 0
    assert result.max_rss_bytes > 0


HOSTILE = {
    "fork bomb": (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        {"timeout", "cpu_limit", "killed", "failed"},
        "",
    ),
    "4 GB allocation": ("x = bytearray(4 * 2**30)", {"failed"}, "MemoryError"),
    "infinite loop": ("while True:\n    pass", {"cpu_limit", "timeout"}, ""),
    "100 MB stdout flood": (
        "import sys\nchunk = 'x' * 2**20\nfor _ in range(100):\n    sys.stdout.write(chunk)",
        {"output_limit"},
        "",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_a_hostile_script_is_contained_with_a_clear_status(sandbox, name):
    source, statuses, said = HOSTILE[name]
    result = await sandbox.run(python(source), LIMITS)
    assert result.status in statuses, (result.status, result.reason)
    assert said in result.stderr_tail.decode()
    assert len(result.stdout) <= LIMITS.output_bytes
    with trio.fail_after(10):
        while leftovers():  # noqa: ASYNC110 - every child reaped (a pid namespace takes a moment to go)
            await trio.sleep(0.05)
    assert (await sandbox.run(HONEST, LIMITS)).status == "ok"  # and it goes on serving


def probe(body: str) -> Script:
    """A script that tries `body` and prints what happened: `denied <error>` or `allowed`."""
    indented = "\n".join("    " + line for line in body.splitlines())
    caught = "except Exception as error:\n    print('denied', type(error).__name__, error)"
    return python(f"try:\n{indented}\n    print('allowed')\n{caught}")


ESCAPES = {
    "a TCP connection to 127.0.0.1": "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)",
    "a write outside tmp": "open('/usr/escape', 'w').write('x')",
    "a write to the root (a tmpfs: memory)": "open('/fill', 'w').write('x')",
    "a write to /dev/shm": "open('/dev/shm/fill', 'w').write('x')",
    "io_uring": (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.syscall(425, 8, ctypes.create_string_buffer(120)) >= 0, os.strerror(ctypes.get_errno())"
    ),
    "ptrace": (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.ptrace(0, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())"
    ),
    "unshare": (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "assert libc.unshare(0x10000000) == 0, os.strerror(ctypes.get_errno())"
    ),
}


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
@pytest.mark.parametrize("name", list(ESCAPES))
async def test_an_escape_is_refused(name, backend):
    # With ctypes, which scripts do not get (below), to reach the seccomp filter with raw syscalls.
    sandbox = make_sandbox(backend, hide_ctypes=False)
    result = await sandbox.run(probe(ESCAPES[name]), LIMITS)
    assert result.status == "ok", result.reason
    assert result.stdout.startswith(b"denied"), result.stdout
    assert b"ModuleNotFoundError" not in result.stdout


NATIVE_CODE = {
    "python: ctypes": probe("import ctypes"),
    "python: an anonymous executable file": probe("import os\nos.memfd_create('elf')"),
    "python: another program": probe("import os\nos.execv('/usr/bin/true', ['true'])"),
    "python: a child process": probe("import subprocess\nsubprocess.run(['/usr/bin/true'])"),
    "javascript: a native addon": Script("javascript", b"console.log(typeof process.dlopen)"),
    "javascript: a child process": Script(
        "javascript", b"console.log(require('child_process').spawnSync('/usr/bin/true').error.code)"
    ),
}


@pytest.mark.parametrize("name", list(NATIVE_CODE))
async def test_a_script_runs_no_native_code_nor_program_of_its_own(sandbox, name):
    """Native code (a library, or an executable written to /tmp) could read the host's clock
    and randomness past the sandbox's own."""
    result = await sandbox.run(NATIVE_CODE[name], LIMITS)
    assert result.status == "ok", result.reason
    assert result.stdout.split()[0] in (b"denied", b"undefined", b"EPERM"), result.stdout


HOST_COUNTERS = {
    "CPU time used": "import resource\nresource.getrusage(resource.RUSAGE_SELF)",
    "the host's CPUs": "import os\nos.sched_getaffinity(0)",
    "an interval timer": "import signal\nsignal.setitimer(signal.ITIMER_REAL, 0.5)",
}


@pytest.mark.parametrize("name", list(HOST_COUNTERS))
async def test_the_hosts_counters_and_timers_are_not_there(sandbox, name):
    """They differ from keeper to keeper (and a timer cuts a loop after so much real time)."""
    result = await sandbox.run(probe(HOST_COUNTERS[name]), LIMITS)
    assert result.stdout.startswith(b"denied"), (result.stdout, result.reason)
    assert b"Operation not permitted" in result.stdout, result.stdout


DETERMINISM = {
    "python": b"""import datetime, os, random, time, uuid
open('/tmp/written', 'w').write('x')
print(time.time(), datetime.datetime.now(), os.stat('/tmp/written').st_mtime, random.random(),
      os.urandom(8).hex(), open('/dev/urandom', 'rb').read(8).hex(), uuid.uuid4(), tuple(os.times()))
""",
    "javascript": b"""const fs = require('fs'), crypto = require('crypto');
fs.writeFileSync('/tmp/written', 'x');
console.log(Date.now(), new Date().toString(), fs.statSync('/tmp/written').mtimeMs, Math.random(),
            crypto.randomBytes(8).toString('hex'), crypto.randomUUID());
setTimeout(() => console.log('a timer fires at', Date.now()), 20);
""",
}


@pytest.mark.parametrize("language", list(DETERMINISM))
async def test_two_runs_on_one_input_print_the_same_bytes(sandbox, language):
    """The clock reads the input's time and stands still, other clocks and randomness are
    fixed streams, file times read 0: an attester's re-run a second later prints what the
    performer's did."""
    if isinstance(sandbox, DockerSandbox):
        pytest.skip("docker cannot turn address randomisation off (node/sandbox/docker.py): bwrap only")
    script = Script(language, DETERMINISM[language], b"", {"TRIGGERX_TIME": "1767225600"})
    first = await sandbox.run(script, LIMITS)
    await trio.sleep(1.1)
    second = await sandbox.run(script, LIMITS)
    assert first.status == "ok", first.reason
    assert first.stdout == second.stdout
    assert b"1767225600" in first.stdout
    assert language != "python" or first.stdout.endswith(b"(0.0, 0.0, 0.0, 0.0, 0.0)\n")  # uptime, CPU
    assert b"2026-01-01" in first.stdout or b"Jan 01 2026" in first.stdout
    earlier = Script(language, DETERMINISM[language], b"", {"TRIGGERX_TIME": "1"})
    assert (await sandbox.run(earlier, LIMITS)).stdout != first.stdout  # the input's time, not a constant


async def test_the_keepers_files_are_not_there(sandbox, tmp_path):
    keystore = tmp_path / "operator.json"
    keystore.write_text('{"secret": "the operator key"}')
    result = await sandbox.run(probe(f"print(open({str(keystore)!r}).read())"), LIMITS)
    assert result.stdout.startswith(b"denied FileNotFoundError"), (result.stdout, result.reason)


async def test_a_run_sees_only_its_stdin_the_same_every_time(sandbox):
    look = python("import os, sys, time\nprint(sorted(os.environ.items()), hash('x'), os.getcwd(), sys.argv)")
    first, second = await sandbox.run(look, LIMITS), await sandbox.run(look, LIMITS)
    assert first.status == "ok"
    assert first.stdout == second.stdout
    assert first.stdout.startswith(str(sorted(ENVIRONMENT.items())).encode())  # that, and nothing else


async def test_a_cancelled_run_is_killed_and_reaped(sandbox):
    with trio.fail_after(10):  # the script would sleep a minute
        with trio.move_on_after(0.5):
            await sandbox.run(python("import time\ntime.sleep(60)"), RunLimits(wall_seconds=30))
        while leftovers():  # noqa: ASYNC110 - the kill takes a moment to land
            await trio.sleep(0.05)
    assert (await sandbox.run(HONEST, LIMITS)).status == "ok"


async def test_bwrap_repeats_addresses_and_monotonic_readings():
    """Under bwrap object addresses and a thread's readings of the moving clocks repeat from
    run to run too (docker cannot turn address randomisation off, and its runs read the clock
    a varying number of times: docs/architecture.md, Sandbox)."""
    look = python("import time\nprint(id(object()), id([]), time.monotonic(), time.process_time())")
    sandbox = BwrapSandbox()
    first, second = await sandbox.run(look, LIMITS), await sandbox.run(look, LIMITS)
    assert first.status == "ok", first.reason
    assert first.stdout == second.stdout


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
async def test_a_node_checks_its_sandbox_at_start(backend, caplog):
    """`[node] sandbox` picks the backend; a node runs a probe script that reads the clock."""
    if backend == "docker" and docker_engine_missing() is not None:
        pytest.skip(docker_engine_missing())
    sandbox = await working_sandbox("keeper", backend)
    assert sandbox is not None
    assert sandbox.name == backend
    assert "does not work here" not in caplog.text
