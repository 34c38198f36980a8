"""WebSocket fan-out for bench/gateway.py: many subscribers of one job room, the latency of its frames.

`fan_out` creates a job on the devnet that fires every second, `tasks` times, from a start far
enough ahead for every subscriber to join the room first; opens `subscribers` connections to
/ws/tasks (a few handshakes at a time), subscribes each to the job's room, and records when
each task frame arrives, until every subscriber has seen every task end (completed or failed).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, connect_websocket_url

from node.devnet import devnet_demo_job

HANDSHAKES = 64  # connections being opened at once
PING_EVERY = 20.0  # the gateway closes a connection that sends nothing for 45 s
TASK_FRAMES = ("TASK_CREATED", "TASK_UPDATED", "TASK_STATUS_CHANGED")
TERMINAL = ("completed", "failed")
SETTLE_S = 120.0  # after the last fire, for the tasks to end


class TaskStamp(msgspec.Struct, rename="camel"):
    """The parts of a frame's task the measurement reads."""

    id: int
    status: str
    created_at: float
    updated_at: float


class Frame(msgspec.Struct):
    """A server frame (the fields the measurement reads)."""

    type: str
    task: TaskStamp | None = None
    error: str | None = None


_frames = msgspec.json.Decoder(Frame)


@dataclass
class FanOut:
    """Latencies (seconds) of the fan-out job's frames, over every subscriber."""

    subscribers: int
    tasks: int
    subscribe_seconds: float = 0.0
    created: list[float] = field(default_factory=list)  # TASK_CREATED: arrival - createdAt
    first: list[float] = field(default_factory=list)  # per task: the first subscriber's TASK_CREATED
    events: list[float] = field(default_factory=list)  # every task frame: arrival - updatedAt
    frames: int = 0
    dropped: int = 0  # connections the gateway closed before the end
    # CPU time over wall time from the first fire to the end (1.0: one core all the time): is
    # the gateway or the receiving process the bottleneck?
    gateway_cpu: float = 0.0
    receiver_cpu: float = 0.0


@dataclass
class _Run:
    """The subscribers' shared state."""

    figures: FanOut
    connections: list[WebSocketConnection] = field(default_factory=list)
    subscribed: int = 0
    all_subscribed: trio.Event = field(default_factory=trio.Event)
    ends_due: int = 0  # terminal frames still to come, over the live subscribers
    finished: trio.Event = field(default_factory=trio.Event)
    first: dict[int, float] = field(default_factory=dict)

    def ended(self, count: int) -> None:
        self.ends_due -= count
        if self.ends_due <= 0:
            self.finished.set()


async def fan_out(
    facts: dict, http: httpx.AsyncClient, subscribers: int, tasks: int, gateway_cpu: Callable[[], float]
) -> FanOut:
    """Measure the fan-out of a job's task events to `subscribers` connections (see the module);
    `gateway_cpu` reads the gateway process's CPU seconds so far."""
    start = int(time.time() + 10 + subscribers / 50)  # ~20 handshakes and snapshots a second, at worst
    end = start + tasks - 1
    trigger = ("interval", {"everySeconds": 1, "start": start, "end": end})
    created = await http.post("/api/jobs", json=devnet_demo_job(facts, trigger=trigger))
    created.raise_for_status()
    room = f"job:{created.json()['job']['id']}"
    url = facts["gatewayUrl"].replace("http://", "ws://", 1) + "/ws/tasks"
    run = _Run(FanOut(subscribers, tasks), ends_due=subscribers * tasks)
    began = time.monotonic()
    handshakes = trio.Semaphore(HANDSHAKES)
    async with trio.open_nursery() as transport:  # trio-websocket's reader tasks
        async with trio.open_nursery() as readers:
            for _ in range(subscribers):
                readers.start_soon(_subscriber, transport, url, room, run, handshakes)
            readers.start_soon(_pinger, run)
            with trio.fail_after(start - time.time() + tasks + SETTLE_S):
                await run.all_subscribed.wait()
                run.figures.subscribe_seconds = time.monotonic() - began
                await trio.sleep_until(trio.current_time() + start - time.time())
                cpu = (gateway_cpu(), time.process_time(), time.monotonic())
                await run.finished.wait()
                wall = time.monotonic() - cpu[2]
                run.figures.gateway_cpu = (gateway_cpu() - cpu[0]) / wall
                run.figures.receiver_cpu = (time.process_time() - cpu[1]) / wall
            readers.cancel_scope.cancel()
        async with trio.open_nursery() as closing:
            for connection in run.connections:
                closing.start_soon(connection.aclose)
    run.figures.first = list(run.first.values())
    return run.figures


async def _subscriber(
    transport: trio.Nursery, url: str, room: str, run: _Run, handshakes: trio.Semaphore
) -> None:
    """One connection: subscribe to `room`, then record the task frames until cancelled."""
    async with handshakes:
        connection = await connect_websocket_url(transport, url)
        run.connections.append(connection)
        await connection.send_message(json.dumps({"type": "SUBSCRIBE", "room": room}))
        while (frame := _frames.decode(await connection.get_message())).type != "JOB_TASKS_SNAPSHOT":
            if frame.type == "ERROR":
                raise RuntimeError(f"subscribing to {room}: {frame.error}")
    run.subscribed += 1
    if run.subscribed == run.figures.subscribers:
        run.all_subscribed.set()
    figures, ended = run.figures, set()  # ids of the tasks seen completed or failed
    try:
        while len(ended) < figures.tasks:
            message = await connection.get_message()
            arrived = time.time()  # before decoding: the receiver's own work is the smallest part
            frame = _frames.decode(message)
            if frame.type not in TASK_FRAMES or frame.task is None:
                continue
            task = frame.task
            figures.frames += 1
            figures.events.append(arrived - task.updated_at)
            if frame.type == "TASK_CREATED":
                figures.created.append(arrived - task.created_at)
                run.first.setdefault(task.id, arrived - task.created_at)
            if task.status in TERMINAL and task.id not in ended:
                ended.add(task.id)
                run.ended(1)
    except ConnectionClosed:
        figures.dropped += 1
        run.ended(figures.tasks - len(ended))


async def _pinger(run: _Run) -> None:
    """PING every connection now and then, so the gateway does not close them as idle."""
    while True:
        await trio.sleep(PING_EVERY)
        for connection in list(run.connections):
            with contextlib.suppress(ConnectionClosed):  # counted by its subscriber
                await connection.send_message('{"type":"PING"}')
