"""The gateway's WebSockets: live task events by room, and pushed stats and health.

    /ws/tasks    task events of the rooms a client subscribes to
    /ws/stats    {"type": "STATS", ...} every push interval (5 s)
    /ws/health   {"type": "HEALTH", ...} every push interval

Every frame, either way, is one JSON object in a text message, with a `type`.

Client → server (/ws/tasks; the other two take only PING). Unknown fields, other types and
frames over 4 KiB are refused:

    {"type": "SUBSCRIBE", "room": "job:12"}      rooms: job:<id>, task:<id> (decimal ASCII, 1 to
    {"type": "UNSUBSCRIBE", "room": "job:12"}    2**63-1, no leading zero), user:<address> (0x and
    {"type": "PING"}                             40 hex; lower, upper or checksummed case)

Server → client:

    {"type": "SUBSCRIBED", "room": "user:0xAbC…"}       the room's canonical name (checksummed)
    {"type": "JOB_TASKS_SNAPSHOT", "room": "job:12", "tasks": [task, …]}
                                          on subscribing to a job: its latest 100 tasks, oldest first
    {"type": "TASK_SNAPSHOT", "room": "task:7", "task": task}     on subscribing to a task
    {"type": "TASK_CREATED" | "TASK_UPDATED" | "TASK_STATUS_CHANGED", "room": "job:12",
     "task": task, "previousStatus": "created" | … | null}       null unless the status changed
    {"type": "UNSUBSCRIBED", "room": "job:12"}          no event of the room follows it
    {"type": "PONG"}
    {"type": "ERROR", "error": "…", "field": "$.room", "room": "job:12"}
                                          a refused frame (`field`: its JSON path, when one value
                                          is at fault; `room`: the room, when one is concerned);
                                          the connection stays open (subscribing to a room
                                          twice, or leaving one not joined, is one too)

`task` is a task as GET /api/tasks/id/{id} shows it (gateway.api.views.TaskView). A user room
(every task of the owner's jobs) has no snapshot: read the owner's jobs and their tasks over
HTTP after SUBSCRIBED.

Order. One task of the hub reads the task ledger's changes, in the order they were written,
and queues each to every connection subscribed to the task's rooms, in the order task, job,
user (a connection in two of them gets the change twice, labelled with each room). Each
connection's queue is sent in order: every connection gets the events of a task in ledger
order. A room starts with SUBSCRIBED and its snapshot, taken at a moment every change already
written has been routed: it holds exactly the changes before it, the events after it exactly
the changes since (none lost, none repeated, none older than the snapshot).

Limits (StreamLimits): 32 connections per client (an IPv4 address, or an IPv6 /64:
gateway.clients) over the three endpoints (more are refused with HTTP 429 and a JSON error,
before the WebSocket opens); 64 rooms per connection; 256 frames queued for a connection (one
more closes it with 1008 "too slow: 256 events behind": the gateway never waits for a reader,
and the client should reconnect and subscribe again); 16 ERRORs close a connection (1008);
SUBSCRIBE frames, each answered with a snapshot, are 20 at once and then 5 a second per
connection (a token bucket: one more closes it with 1008 "too many subscriptions: …";
subscribe to the rooms you need, not in a loop); a connection that sends nothing for 45 s is
closed (1000, "idle: …"): send a PING every 30 s or so. If the gateway itself loses events
(a burst of more than 8,192 changes it could not route in time), every room subscriber is
closed with 1013: subscribe again for a fresh snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

import msgspec
import trio
from quart import Blueprint, Response, current_app, websocket

from gateway import GatewayStorage, TaskLedger
from gateway.api.responses import error
from gateway.api.rooms import (
    NORMAL,
    POLICY,
    ErrorFrame,
    Feed,
    Hub,
    PongFrame,
    RoomError,
    StreamLimits,
    Subscriber,
    encode,
    parse_room,
)
from gateway.clients import client_of

__all__ = ["StreamLimits", "streams_blueprint"]

DEFAULT_LIMITS = StreamLimits()

RoomName = Annotated[str, msgspec.Meta(max_length=64)]


class Subscribe(msgspec.Struct, tag="SUBSCRIBE", tag_field="type", forbid_unknown_fields=True):
    """Join a room."""

    room: RoomName


class Unsubscribe(msgspec.Struct, tag="UNSUBSCRIBE", tag_field="type", forbid_unknown_fields=True):
    """Leave a room."""

    room: RoomName


class Ping(msgspec.Struct, tag="PING", tag_field="type", forbid_unknown_fields=True):
    """Ask for a PONG (and show the connection is alive)."""


_decoder = msgspec.json.Decoder(Subscribe | Unsubscribe | Ping)
_PONG = encode(PongFrame())
_AT = re.compile(r" - at `(\$[^`]*)`$")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]*)`")


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; full at first."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.filled_at = trio.current_time()

    def take(self) -> bool:
        """Take a token; False (and none taken) if there is none."""
        now = trio.current_time()
        self.tokens = min(self.burst, self.tokens + (now - self.filled_at) * self.rate)
        self.filled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ConnectionGate:
    """Counts each client's open connections, up to `per_address`."""

    def __init__(self, per_address: int) -> None:
        self.per_address = per_address
        self.open: dict[str, int] = {}

    def enter(self, address: str) -> bool:
        """Count one more connection from `address`; False (and not counted) if over the cap."""
        count = self.open.get(address, 0)
        if count >= self.per_address:
            return False
        self.open[address] = count + 1
        return True

    def leave(self, address: str) -> None:
        """One connection from `address` ended."""
        count = self.open.pop(address, 0) - 1
        if count > 0:
            self.open[address] = count


def streams_blueprint(
    ledger: TaskLedger,
    storage: GatewayStorage,
    stats: Callable[[], msgspec.Struct],
    health: Callable[[], msgspec.Struct],
    limits: StreamLimits = DEFAULT_LIMITS,
) -> Blueprint:
    """The WebSocket routes over `ledger`'s events and `storage`'s tasks; `stats` and `health`
    give the frames of /ws/stats and /ws/health (each called once per push interval).

    The hub holding the gateway's one ledger subscription starts when the app starts serving
    (in quart-trio's app nursery) and stops when it stops: serve the app with hypercorn's
    lifespan (the default).
    """
    hub = Hub(ledger, storage, stats, health, limits)
    gate = ConnectionGate(limits.connections_per_ip)
    streams = Blueprint("streams", __name__)

    @streams.before_app_serving
    async def start_hub() -> None:
        current_app.nursery.start_soon(hub.run)  # type: ignore[attr-defined]  # QuartTrio's

    @streams.after_app_serving
    async def stop_hub() -> None:
        hub.stop()

    @streams.websocket("/ws/tasks")
    async def tasks() -> Response | None:
        return await _serve(hub, gate, limits, None)

    @streams.websocket("/ws/stats")
    async def stats_feed() -> Response | None:
        return await _serve(hub, gate, limits, hub.stats)

    @streams.websocket("/ws/health")
    async def health_feed() -> Response | None:
        return await _serve(hub, gate, limits, hub.health)

    return streams


async def _serve(hub: Hub, gate: ConnectionGate, limits: StreamLimits, feed: Feed | None) -> Response | None:
    """One connection: refused over the address's cap, else served until either side closes it."""
    client = websocket.scope.get("client")
    # The transport's peer, never a header: Quart's remote_addr comes from a header list the
    # client also writes to.
    address = client_of(str(client[0])) if client else "<unknown>"
    if not gate.enter(address):
        return error(429, f"at most {limits.connections_per_ip} WebSocket connections per address")
    subscriber = hub.subscriber()
    try:
        await websocket.accept()
        if feed is not None:
            feed.join(subscriber)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read, hub, subscriber, limits, feed is None)
            await subscriber.write(websocket.send)  # until the subscriber is closed
            nursery.cancel_scope.cancel()
        await websocket.close(subscriber.close_code or NORMAL, subscriber.close_reason)
    finally:
        subscriber.close(NORMAL, "")  # out of every room and feed (if not already)
        gate.leave(address)
    return None


async def _read(hub: Hub, subscriber: Subscriber, limits: StreamLimits, rooms: bool) -> None:
    """Read and answer the client's frames until the subscriber is closed."""
    errors = 0
    subscriptions = TokenBucket(limits.subscribes_per_second, limits.subscribe_burst)
    while not subscriber.closing:
        with trio.move_on_after(limits.idle_timeout) as idle:
            data = await websocket.receive()
        if idle.cancelled_caught:
            subscriber.close(NORMAL, f"idle: no frame in {limits.idle_timeout:g} s")
            return
        problem = await _answer(hub, subscriber, limits, data, rooms, subscriptions)
        if problem is not None:
            errors += 1
            subscriber.offer(encode(problem))
            if errors >= limits.max_errors:
                subscriber.close(POLICY, f"too many bad frames ({errors})")


async def _answer(
    hub: Hub,
    subscriber: Subscriber,
    limits: StreamLimits,
    data: str | bytes | None,
    rooms: bool,
    subscriptions: TokenBucket,
) -> ErrorFrame | None:
    """Act on one client frame; what was wrong with it, if anything."""
    # quart-trio hands an empty binary message over as None.
    if not isinstance(data, str):
        return ErrorFrame("frames are JSON text, not binary")
    if len(data) > limits.max_frame_bytes or len(data.encode()) > limits.max_frame_bytes:
        return ErrorFrame(f"frame over the limit of {limits.max_frame_bytes} bytes")
    try:
        frame = _decoder.decode(data)
    except msgspec.ValidationError as invalid:
        return _invalid(str(invalid))
    except msgspec.DecodeError as malformed:
        return ErrorFrame(str(malformed))
    if isinstance(frame, Ping):
        subscriber.offer(_PONG)
        return None
    if not rooms:
        return ErrorFrame("this endpoint has no rooms: PING is its only frame", field="$.type")
    # Every SUBSCRIBE counts, answered or refused: a loop of SUBSCRIBE and UNSUBSCRIBE earns no
    # ERROR, but costs a snapshot each time.
    if isinstance(frame, Subscribe) and not subscriptions.take():
        burst, rate = limits.subscribe_burst, limits.subscribes_per_second
        subscriber.close(POLICY, f"too many subscriptions: over {burst} at once or {rate:g} a second")
        return None
    try:
        room = parse_room(frame.room)
    except RoomError as bad:
        return ErrorFrame(str(bad), field="$.room")
    if isinstance(frame, Subscribe):
        problem = await hub.subscribe(subscriber, room)
    else:
        problem = hub.unsubscribe(subscriber, room.name)
    return None if problem is None else ErrorFrame(problem, field="$.room", room=room.name)


def _invalid(message: str) -> ErrorFrame:
    """msgspec's complaint about a frame, with the JSON path of the value at fault."""
    at = _AT.search(message)
    path = at.group(1) if at else "$"
    named = _NAMED.search(message)
    field = f"{path}.{named.group(1)}" if named else path
    return ErrorFrame(message[: at.start()] if at else message, field=field)
