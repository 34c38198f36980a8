"""The docker backend: each run a fresh container of a local image, through the Engine API.

The image (node/sandbox/image/Dockerfile) holds nothing but mount points: built from scratch on
this machine, no registry is ever reached. Each run binds the host's /usr read-only, so scripts
run on the interpreters the bwrap backend uses, with the same files and environment
(node/sandbox/files.py) and the same seccomp filter written as a Docker profile
(seccomp.docker_profile). The container has no network (`none`), a read-only root, a private
size-bounded /tmp, no /dev/shm nor message queues, /sys and the host's /proc counters masked,
no log driver, uid 65534, no capabilities, no new privileges, and cgroup limits on memory, CPU
and processes, with rlimits on CPU time, address space, file size and open files. Stdin and
stdout go over the attach stream, read as they come and cut at the cap; the wall-time limit
kills the container; whatever ends the run, the container (named by the keeper) is removed,
and what a killed keeper left is removed when its sandbox starts again.

The Engine API is spoken over its unix socket with httpx (trio), and the attach stream over a
raw socket: aiodocker is asyncio's, and the node runs on trio.

Less deterministic than bwrap: Docker does not let a client turn off address randomisation,
and it always mounts /proc (the host-wide counters are masked; a process's own /proc entries,
its start time among them, are not). Object addresses (Python's `id`), and randomness that
libraries mix with addresses (OpenSSL's, so Node's `Math.random` and `crypto`), differ from
run to run (docs/architecture.md, Sandbox): keepers of a network with script jobs use bwrap.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import tarfile
import time
import uuid
from pathlib import Path

import httpx
import trio

from node.sandbox.files import INTERPRETERS, SCRIPT_PATH, RunFiles
from node.sandbox.runner import (
    OPEN_FILES,
    Output,
    RunLimits,
    RunResult,
    Sandbox,
    Script,
    Status,
    ended_as,
    exit_code,
    script_file,
)
from node.sandbox.seccomp import docker_profile

DOCKER_SOCKET = "/var/run/docker.sock"
LABEL = "triggerx.sandbox"  # on every run's container (a leftover can be found by it)
API = "/v1.41"
DOCKERFILE = Path(__file__).with_name("image") / "Dockerfile"
# The image's whole content: mount points, and /lib, /lib64 and /bin pointing into /usr.
_DIRECTORIES = ("tmp", "sandbox", "etc", "dev", "proc", "sys", "usr")
_LINKS = {"lib": "usr/lib", "lib64": "usr/lib64", "bin": "usr/bin"}
_RUN_UID = 65534
_HEAD_LIMIT = 8192
# What /proc and /sys say of the host (bwrap gives neither): masked, as it differs between
# keepers, and Docker's own default masks with them (a list given replaces those).
MASKED = [
    *(f"/proc/{name}" for name in (
        "uptime", "loadavg", "meminfo", "stat", "cpuinfo", "vmstat", "diskstats", "interrupts", "softirqs",
        "schedstat", "zoneinfo", "pressure", "cmdline", "locks", "partitions", "asound", "acpi", "kcore",
        "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi", "sys",
    )),
    "/sys",
    "/dev/mqueue",
]  # fmt: skip
USAGE_SAMPLE = 0.05  # seconds between two readings of a run's CPU time and peak memory


class DockerUnavailableError(RuntimeError):
    """No Docker engine answers, or it cannot build or run the sandbox's image (why, in the message)."""


class DockerSandbox(Sandbox):
    """Runs scripts in Docker containers (see the module docstring). `hide_ctypes`: see RunFiles."""

    name = "docker"

    def __init__(self, socket_path: str = DOCKER_SOCKET, *, hide_ctypes: bool = True) -> None:
        self.socket_path = socket_path
        self.files = RunFiles(hide_ctypes=hide_ctypes)
        self._http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=socket_path), base_url="http://docker" + API, timeout=60
        )
        self._profile = json.dumps(docker_profile())
        self._image: str | None = None
        self._building = trio.Lock()
        self._node = hashlib.sha256(
            os.fsencode(os.path.abspath(socket_path)) + str(os.getuid()).encode()
        ).hexdigest()[:12]
        self._started = int(time.time())

    async def aclose(self) -> None:
        """Close the connections to the engine."""
        await self._http.aclose()

    async def prepare(self) -> str:
        """The sandbox's image, built if the engine does not have it yet (its tag names its
        content); DockerUnavailableError when the engine cannot."""
        async with self._building:
            if self._image is None:
                context = _build_context()
                tag = "triggerx-sandbox:" + hashlib.sha256(context).hexdigest()[:16]
                try:
                    await self._build(tag, context)
                except httpx.HTTPError as error:
                    raise DockerUnavailableError(f"no Docker engine at {self.socket_path}: {error}") from None
                await self._remove_leftovers()
                self._image = tag
            return self._image

    async def _remove_leftovers(self) -> None:
        """Remove this node's runs' containers that a crash left (a keeper killed mid-run): every
        container of ours started before this process."""
        query = {"all": "1", "filters": json.dumps({"label": [f"{LABEL}={self._node}"]})}
        for container in (await self._http.get("/containers/json", params=query)).json():
            if container.get("Created", 0) < self._started:
                await self._http.delete(f"/containers/{container['Id']}", params={"force": "true"})

    async def _build(self, tag: str, context: bytes) -> None:
        known = await self._http.get(f"/images/{tag}/json")
        if known.status_code == 200:
            return
        if known.status_code != 404:
            raise DockerUnavailableError(f"the engine answered {known.status_code}: {known.text[:200]}")
        headers = {"content-type": "application/x-tar"}
        built = await self._http.post(
            "/build", params={"t": tag, "rm": "1"}, content=context, headers=headers
        )
        if built.status_code != 200 or b'"error"' in built.content:
            raise DockerUnavailableError(f"the image did not build: {built.text[-300:]}")

    async def run(self, script: Script, limits: RunLimits | None = None) -> RunResult:
        limits = limits or RunLimits()
        began = time.monotonic()
        # Named here, so that a run cancelled before the engine answers is still found and removed.
        name = f"triggerx-run-{uuid.uuid4().hex}"
        with script_file(script.source) as path:
            if script.http_socket is not None and os.geteuid() == 0:
                os.chown(script.http_socket, _RUN_UID, _RUN_UID)  # the run's alone (the proxy made it 0600)
            try:
                container = await self._create(name, path, script, limits)
                return await self._run(container, script.stdin, limits, began)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(10):
                    await self._http.delete(f"/containers/{name}", params={"force": "true"})

    async def _create(self, name: str, script_path: str, script: Script, limits: RunLimits) -> str:
        """Create the run's container `name`; its id."""
        for attempt in range(2):
            spec = self._container(await self.prepare(), script_path, script, limits)
            created = await self._http.post("/containers/create", params={"name": name}, json=spec)
            if created.status_code == 201:
                return str(created.json()["Id"])
            if created.status_code == 404 and attempt == 0:  # the image was removed: built again
                self._image = None
                continue
            break
        raise DockerUnavailableError(f"the container was not created: {created.text[:300]}")

    def _container(
        self, image: str, script_path: str, script: Script, limits: RunLimits
    ) -> dict[str, object]:
        mounts = self.files.mounts(script_path, script)
        binds = ["/usr:/usr:ro", *(f"{source}:{target}:ro" for source, target in mounts.read_only)]
        if mounts.socket is not None:
            binds.append(":".join(mounts.socket))
        cpu = limits.cpu_seconds
        return {
            "Image": image,
            "Cmd": [*INTERPRETERS[script.language], SCRIPT_PATH],
            "Env": [f"{name}={value}" for name, value in self.files.environment(script).items()],
            "User": f"{_RUN_UID}:{_RUN_UID}",
            "WorkingDir": "/tmp",
            "Hostname": "sandbox",
            "Labels": {LABEL: self._node},
            "AttachStdin": True,
            "AttachStdout": True,
            "AttachStderr": True,
            "OpenStdin": True,
            "StdinOnce": True,
            "NetworkDisabled": True,
            "HostConfig": {
                "NetworkMode": "none",
                "IpcMode": "none",  # no /dev/shm: a writable tmpfs beside /tmp's bound one
                "ReadonlyRootfs": True,
                "MaskedPaths": MASKED,
                "LogConfig": {"Type": "none"},  # what it prints is the attach stream's, never a disk's
                "Tmpfs": {"/tmp": f"size={limits.tmp_bytes},mode=1777"},
                "Binds": binds,
                "PidsLimit": limits.pids,
                "Memory": limits.memory_bytes,
                "MemorySwap": limits.memory_bytes,
                "NanoCpus": 1_000_000_000,
                "CapDrop": ["ALL"],
                "SecurityOpt": ["no-new-privileges", f"seccomp={self._profile}"],
                "Ulimits": [
                    # Soft = hard: the interpreter is pid 1, which ignores SIGXCPU; SIGKILL ends it.
                    {"Name": "cpu", "Soft": cpu, "Hard": cpu},
                    {"Name": "as", "Soft": limits.memory_bytes, "Hard": limits.memory_bytes},
                    {"Name": "msgqueue", "Soft": 0, "Hard": 0},
                    {"Name": "fsize", "Soft": limits.tmp_bytes, "Hard": limits.tmp_bytes},
                    {"Name": "nofile", "Soft": OPEN_FILES, "Hard": OPEN_FILES},
                    {"Name": "core", "Soft": 0, "Hard": 0},
                ],
            },
        }

    async def _run(self, container: str, stdin: bytes, limits: RunLimits, began: float) -> RunResult:
        """Attach, start, feed stdin, read the output under the cap, and wait for the end."""
        stream, first = await self._attach(container)
        output = Output(limits.output_bytes)
        ended: Status | None = None

        async def kill(why: Status) -> None:
            nonlocal ended
            ended = ended or why
            # First let go of the output: an engine blocked writing to us would not kill.
            await stream.aclose()
            await self._http.post(f"/containers/{container}/kill")

        used: tuple[float, int] = (0.0, 0)

        async def sample() -> None:
            # The container's cgroup goes with its last process: its usage is read while it runs.
            nonlocal used
            while True:
                reading = await trio.to_thread.run_sync(_usage, container)
                used = max(used, reading)
                await trio.sleep(USAGE_SAMPLE)

        async def feed() -> None:
            try:
                await stream.send_all(stdin)
                await stream.send_eof()  # the container's stdin ends (StdinOnce)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # a script that does not read all of its stdin closes it: its business

        async def read() -> None:
            # Frames: an 8-byte head (the stream: 1 stdout, 2 stderr; the size), then the bytes.
            buffer, chunk = bytearray(), first
            while chunk or (chunk := await stream.receive_some(65_536)):
                buffer += chunk
                chunk = b""
                while len(buffer) >= 8 and len(buffer) >= 8 + (size := int.from_bytes(buffer[4:8], "big")):
                    kind, data = buffer[0], bytes(buffer[8 : 8 + size])
                    del buffer[: 8 + size]
                    if kind == 2:
                        output.err(data)
                    elif kind == 1 and not output.out(data):  # no other stream is the script's
                        await kill("output_limit")
                        return

        async with stream:
            started = await self._http.post(f"/containers/{container}/start")
            if started.status_code not in (204, 304):
                raise DockerUnavailableError(f"the container did not start: {started.text[:300]}")
            with trio.move_on_after(limits.wall_seconds) as clock:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(feed)
                    nursery.start_soon(sample)
                    await read()
                    nursery.cancel_scope.cancel()
            if clock.cancelled_caught:
                await kill("timeout")
        waited = await self._http.post(f"/containers/{container}/wait")
        if waited.status_code != 200:
            raise DockerUnavailableError(f"the run's end is unknown: {waited.text[:300]}")
        code = exit_code(waited.json()["StatusCode"])
        if ended is None:
            # A SIGKILL that is not the memory cgroup's is the CPU limit's (the sampled usage
            # lags it a little, so it cannot tell).
            killed = code == -signal.SIGKILL
            ended = ended_as(code, cpu_limit=killed and not await self._out_of_memory(container))
        cpu, peak = used
        wall = time.monotonic() - began
        return RunResult(ended, code, bytes(output.stdout), bytes(output.stderr), wall, cpu, peak)

    async def _out_of_memory(self, container: str) -> bool:
        inspected = await self._http.get(f"/containers/{container}/json")
        return inspected.status_code == 200 and bool(inspected.json().get("State", {}).get("OOMKilled"))

    async def _attach(self, container: str) -> tuple[trio.SocketStream, bytes]:
        """The container's stdin, stdout and stderr, as the engine hands over the connection
        (an HTTP upgrade httpx does not do), and the stream's first bytes, read with the head."""
        stream = await trio.open_unix_socket(self.socket_path)
        request = (
            f"POST {API}/containers/{container}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n"
            "Host: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n"
        )
        await stream.send_all(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await stream.receive_some(1024)
            if not chunk or len(head) > _HEAD_LIMIT:
                await stream.aclose()
                raise DockerUnavailableError(f"the engine did not attach: {head[:200]!r}")
            head += chunk
        status, rest = head.split(b"\r\n\r\n", 1)
        if not status.startswith((b"HTTP/1.1 101", b"HTTP/1.1 200")):
            await stream.aclose()
            raise DockerUnavailableError(f"the engine did not attach: {status[:200]!r}")
        return stream, rest


def _usage(container: str) -> tuple[float, int]:
    """CPU seconds and peak memory of the container's run so far, from its cgroups: v1 under
    cgroupfs, or v2 under cgroupfs or systemd (0 for what is not found)."""
    root = Path("/sys/fs/cgroup")
    v1 = (
        root / "cpuacct/docker" / container / "cpuacct.usage",
        root / "memory/docker" / container / "memory.max_usage_in_bytes",
    )
    if v1[0].exists():
        return _number(v1[0]) / 1e9, _number(v1[1])
    for group in (root / "docker" / container, root / "system.slice" / f"docker-{container}.scope"):
        if group.exists():
            stat = dict(
                line.split() for line in _text(group / "cpu.stat").splitlines() if line.count(" ") == 1
            )
            return int(stat.get("usage_usec", 0)) / 1e6, _number(group / "memory.peak") or _number(
                group / "memory.current"
            )
    return 0.0, 0


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _number(path: Path) -> int:
    try:
        return int(_text(path).strip() or 0)
    except ValueError:
        return 0


def _build_context() -> bytes:
    """The image's build context: the Dockerfile and the tree it copies, as a tar."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = DOCKERFILE.read_bytes()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        for name in _DIRECTORIES:
            info = tarfile.TarInfo(f"root/{name}")
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        for name, target in _LINKS.items():
            info = tarfile.TarInfo(f"root/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return context.getvalue()
