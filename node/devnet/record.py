"""The run record: which devnet run a folder holds, and whether it still runs.

Every run writes `run.json` into its folder as soon as it owns it: the supervisor's pid (the
`triggerx-node devnet` process that starts and stops everything), then each process it starts,
then `ready`, then each process's exit when it stops. `devnet status` and `devnet stop` read it,
and a new start reads it before it wipes a folder (`claim_folder`). A pid alone could name a
later, unrelated process: each record keeps the process's start time as /proc showed it, and a
pid counts as that process only while /proc shows the same start (and not a zombie).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import msgspec

RUN_FILE = "run.json"
FACTS_FILE = "devnet.json"
SUPERVISOR_LOG = "devnet.log"  # a detached supervisor's output once it is ready


class DevnetError(RuntimeError):
    """The devnet could not start (or be stopped); the message is one line for the user."""


class ProcessRecord(msgspec.Struct, kw_only=True):
    """One process of a run: its name, pid, start time (None where there is no /proc) and log."""

    name: str
    pid: int
    started: int | None  # clock ticks after boot, from /proc/<pid>/stat
    log: str | None = None
    exit: int | None = None  # its exit status once the supervisor stopped it; -N: killed by signal N

    def alive(self) -> bool:
        """Whether this very process still runs (not a zombie, not another one with its pid)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's process: not ours
            return False
        return self.started is None or start_time(self.pid) == self.started


class RunRecord(msgspec.Struct, kw_only=True):
    """A devnet run, as its folder's run.json has it."""

    supervisor: ProcessRecord
    detached: bool
    started_at: float
    processes: list[ProcessRecord] = msgspec.field(default_factory=list)
    ready: bool = False
    stopped_at: float | None = None

    def alive(self) -> list[ProcessRecord]:
        """The run's processes that still run, the supervisor first."""
        return [p for p in (self.supervisor, *self.processes) if p.alive()]


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks after boot (None without /proc; -1 for a zombie
    or no such process): the same for a pid's whole life, whatever it execs."""
    if not Path("/proc/self/stat").exists():
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    fields = stat[stat.rindex(")") + 2 :].split()  # the name, in parentheses, may hold spaces
    return -1 if fields[0] == "Z" else int(fields[19])


def process_record(name: str, pid: int, log: Path | None = None) -> ProcessRecord:
    """The record of a process that runs now."""
    return ProcessRecord(name=name, pid=pid, started=start_time(pid), log=None if log is None else str(log))


def read_record(root: Path) -> RunRecord | None:
    """The folder's run record; None when it has none (or one this version cannot read)."""
    try:
        return msgspec.json.decode((root / RUN_FILE).read_bytes(), type=RunRecord)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def write_record(root: Path, record: RunRecord) -> None:
    """Replace the folder's run record at once (a reader never sees half of one)."""
    partial = root / f".{RUN_FILE}.partial"
    partial.write_bytes(msgspec.json.format(msgspec.json.encode(record)))
    partial.replace(root / RUN_FILE)


def _running_message(root: Path, alive: list[ProcessRecord]) -> str:
    names = ", ".join(f"{p.name} pid {p.pid}" for p in alive[:3]) + (", ..." if len(alive) > 3 else "")
    return f"{root} holds a devnet that is still running ({names}); stop it first: {stop_hint(root)}"


def stop_hint(root: Path) -> str:
    """The command that stops the devnet in `root`."""
    return _command_with(root, "stop")


def status_hint(root: Path) -> str:
    """The command that reports on the devnet in `root`."""
    return _command_with(root, "status")


def _command_with(root: Path, action: str) -> str:
    """`triggerx-node devnet <action>` (or what $TRIGGERX_DEVNET_COMMAND says, as scripts/devnet
    sets it), with --dir unless it is the default folder."""
    command = os.environ.get("TRIGGERX_DEVNET_COMMAND") or "triggerx-node devnet"
    default = root.resolve() == Path("devnet").resolve()
    return f"{command} {action}" if default else f"{command} {action} --dir {root}"


def claim_folder(root: Path, force: bool) -> None:
    """Make `root` an empty folder for a new run, or raise DevnetError saying why not: a run that
    is still alive is never wiped; a stopped run's folder, or a folder with other files in it,
    only with `force`; an empty or missing folder is fine."""
    if root.exists() and not root.is_dir():
        raise DevnetError(f"--dir {root} is a file, not a folder")
    entries = sorted(entry.name for entry in root.iterdir()) if root.exists() else []
    record = read_record(root) if entries else None
    if record is not None and (alive := record.alive()):
        raise DevnetError(_running_message(root, alive))
    if entries and not force:
        if record is not None or FACTS_FILE in entries:
            raise DevnetError(
                f"{root} holds an earlier devnet run (its keys and logs); "
                "pass --force to wipe it, or choose another --dir"
            )
        raise DevnetError(
            f"{root} is not empty and is not a devnet's folder (it holds {entries[0]!r}); "
            "pass --force to wipe it, or choose another --dir"
        )
    if entries and _never_wiped(root.resolve()):
        raise DevnetError(f"refusing to wipe {root}: it is the home folder, the root, or holds this folder")
    try:
        if entries:
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DevnetError(f"cannot prepare {root}: {error.strerror} ({error.filename})") from None


def _never_wiped(folder: Path) -> bool:
    """Folders whose loss nobody meant by --force: the home folder, the root, the current one or above it."""
    return folder in (Path.home().resolve(), Path(folder.anchor)) or Path.cwd().resolve().is_relative_to(
        folder
    )


def new_record(root: Path, detached: bool) -> RunRecord:
    """This process's run record (it is the supervisor), written into `root` at once."""
    record = RunRecord(
        supervisor=process_record("supervisor", os.getpid(), root / SUPERVISOR_LOG if detached else None),
        detached=detached,
        started_at=time.time(),
    )
    write_record(root, record)
    return record
