"""What the devnet tells its user: a line per start-up step, what runs where once it is ready
(with the first commands to try), and what stopped and where the logs stay."""

from __future__ import annotations

import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from node.devnet.record import FACTS_FILE, SUPERVISOR_LOG, ProcessRecord, status_hint, stop_hint


class Progress:
    """Start-up progress, one short line per step, to `out` (None: silent)."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.started = time.monotonic()

    def note(self, line: str) -> None:
        """A step that took no time worth showing (or an event, such as a keeper coming online)."""
        self._write(line + "\n")

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """`what ...` now, then `ok (1.2 s)` when the block ends, or `failed` if it raises."""
        self._write(f"{what} ... ")
        began = time.monotonic()
        try:
            yield
        except BaseException:
            self._write("failed\n")
            raise
        self._write(f"ok ({time.monotonic() - began:.1f} s)\n")

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.started

    def _write(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text)
            self.out.flush()


def keepers_text(count: int) -> str:
    """`1 keeper`, `3 keepers`."""
    return f"{count} keeper" + ("" if count == 1 else "s")


def next_steps(facts: dict[str, Any], devnet_file: Path) -> str:
    """The SDK and CLI one-liners that create a first job on this devnet (`facts`: its
    devnet.json, at `devnet_file`); the ready summary prints them."""
    counter = facts["demoCounter"]
    return "\n".join(
        [
            "create a job that calls the demo counter's increment() every 10 s, from the CLI or Python:",
            f"  triggerx-node jobs create interval --devnet {devnet_file} --target {counter} "
            "--function 'increment()' --every 10",
            f"  triggerx-node jobs watch <job id> --devnet {devnet_file}",
            f"  python -c \"from triggerx import Client, Job; c = Client('{facts['gatewayUrl']}', "
            f"'{facts['demoOwnerKey']}'); print(c.create(Job.interval('{counter}', "
            "'increment()', every_seconds=10)).id); c.close()\"",
        ]
    )


def _programs_hint() -> str | None:
    """How to reach `python` and `triggerx-node` of this installation, when PATH does not."""
    bin_folder = Path(sys.executable).parent
    if shutil.which("triggerx-node") == str(bin_folder / "triggerx-node"):
        return None
    return f"(these use {bin_folder}: run `. {bin_folder / 'activate'}` first)"


def ready_summary(facts: dict[str, Any], root: Path, elapsed: float, detached: bool) -> str:
    """What was started and where, how to use it, and how to stop it."""
    gateway = facts["gatewayUrl"]
    metrics = facts["metricsUrls"]
    keepers = facts["keepers"]
    lines = [
        f"devnet ready in {elapsed:.1f} s: anvil, 1 aggregator, 1 gateway, {keepers_text(len(keepers))} "
        f"(folder {root})",
        f"  gateway      {gateway}   (metrics {metrics['gateway']})",
        f"  API docs     {gateway}/docs",
        f"  dashboard    {gateway}/",
        f"  chain        {facts['rpcUrl']}   (chain id {facts['chainId']})",
        *(
            f"  chain        {other['rpcUrl']}   (chain id {other['chainId']}, read for event and "
            "condition jobs)"
            for other in facts["otherChains"]
        ),
        f"  contracts    {root / FACTS_FILE}   (addresses, URLs, the demo owner's key, the admin token)",
        f"  demo owner   {facts['demoOwner']}   (10 ETH deposited in the hub)",
        f"  owner key    {facts['demoOwnerKey']}   (anvil's dev key: for this devnet only, never real funds)",
        f"  demo counter {facts['demoCounter']}",
        f"  aggregator   metrics {metrics['aggregator']}",
        *(f"  {name:<12} {address}   (metrics {metrics[name]})" for name, address in keepers.items()),
        f"  logs         {root}/<node>/node.log"
        + (f", this supervisor's in {root / SUPERVISOR_LOG}" if detached else ""),
        next_steps(facts, root / FACTS_FILE),
    ]
    if hint := _programs_hint():
        lines.append(f"  {hint}")
    if detached:
        lines.append(f"running in the background: `{status_hint(root)}`, `{stop_hint(root)}`")
    else:
        lines.append(f"Ctrl-C stops it (or `{stop_hint(root)}` from another terminal)")
    return "\n".join(lines)


def exit_text(code: int | None) -> str:
    """An exit status in words: `exit 0`, `killed by SIGKILL`, or `exit unknown`."""
    if code is None:
        return "exit unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def stop_report(processes: list[ProcessRecord], root: Path, detached: bool) -> str:
    """What stopped, each process with its exit, and where the logs stay."""
    width = max((len(p.name) for p in processes), default=0)
    lines = [f"stopped {p.name:<{width}}  pid {p.pid:<7}  {exit_text(p.exit)}" for p in processes]
    supervisor_log = f"; the supervisor's: {root / SUPERVISOR_LOG}" if detached else ""
    lines.append(f"the logs stay in {root}: <node>/node.log{supervisor_log}")
    return "\n".join(lines)
