"""The WebSocket hub, without the web: one subscription to the task ledger, fanned out to rooms.

A `Hub` reads the ledger's event stream (`TaskLedger.subscribe`, once for the whole gateway)
and routes each event to the rooms `task:<id>`, `job:<job id>` and `user:<owner>`. Each
connection is a `Subscriber` with a bounded queue of frames; the hub only ever
`send_nowait`s to it, so a connection that cannot keep up is closed ("too slow"), never
waited for, and 1,000 subscribers of one room cost the hub one encoding and 1,000 appends.
`Feed`s push the gateway's stats and health to their listeners, computed once per interval
for all of them. The protocol these serve is in gateway.api.streams.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import msgspec
import trio
from eth_utils import to_checksum_address

from gateway import GatewayStorage, TaskEvent, TaskLedger, TaskRecord
from gateway.api.views import TaskView
from node.store import INDEXES, MAX_INT_KEY, TASKS

# The store has no reverse query yet: the latest tasks of a job are read backwards from the
# tasks table's job index, whose layout (idx/task/job/<job id><task id>) these key codecs
# define (node/store/table.py). The snapshot test holds more than a snapshot's worth of tasks,
# so a change of that layout fails it.
from node.store.keys import decode_part, encode_part

log = logging.getLogger(__name__)

# Close codes (RFC 6455 §7.4.1).
NORMAL = 1000
POLICY = 1008  # too slow, too many bad frames
TRY_AGAIN_LATER = 1013  # the hub lost events: subscribe again for a fresh snapshot


@dataclass(frozen=True)
class StreamLimits:
    """What one WebSocket client may cost the gateway."""

    # Open connections per client IP address, over /ws/tasks, /ws/stats and /ws/health together.
    connections_per_ip: int = 32
    rooms_per_connection: int = 64
    # Frames queued for one connection; one more and it is closed as too slow.
    send_buffer: int = 256
    # A client frame over this is refused (with an ERROR) unread.
    max_frame_bytes: int = 4096
    # ERROR frames a connection may earn before it is closed.
    max_errors: int = 16
    # SUBSCRIBE frames of one connection, a token bucket: `subscribe_burst` at once, then
    # `subscribes_per_second`; one more closes it (1008). Each costs a snapshot (up to
    # `snapshot_tasks` tasks read and encoded) for a frame of some 40 bytes.
    subscribes_per_second: float = 5.0
    subscribe_burst: int = 20
    # A connection that sends no frame (a PING will do) for this long is closed: sooner than
    # hypercorn's read timeout (gateway.http, 60 s), which cuts a silent connection without a word.
    idle_timeout: float = 45.0
    # /ws/stats and /ws/health push every this many seconds.
    push_interval: float = 5.0
    # Tasks in a job room's snapshot: the job's latest.
    snapshot_tasks: int = 100
    # A subscription waits at most this long for the hub to route every event already
    # published (what makes its snapshot exact); past it, the client gets an ERROR.
    snapshot_timeout: float = 5.0
    # The hub's own subscription to the ledger. Events are routed as fast as they come, so
    # only a burst of this many changes without a checkpoint between them can fill it (the
    # scheduler writes 64 at a time); if it does, every room subscriber is closed with 1013.
    hub_buffer: int = 8192


RoomKind = Literal["job", "task", "user"]


@dataclass(frozen=True)
class Room:
    """A room a connection may subscribe to; `name` is its canonical spelling."""

    kind: RoomKind
    name: str
    id: int = 0  # of the job or task


class RoomError(ValueError):
    """A room name that is not one."""


_ID = re.compile(r"[1-9][0-9]{0,18}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def parse_room(text: str) -> Room:
    """The room `text` names: `job:<id>`, `task:<id>` (decimal ASCII digits, no leading zero,
    1 to 2**63-1) or `user:<address>` (0x and 40 hex digits, all lower or upper case or
    checksummed). Raises RoomError saying what is wrong."""
    kind, colon, rest = text.partition(":")
    if not colon or kind not in ("job", "task", "user"):
        raise RoomError(f"room {text!r}: expected job:<id>, task:<id> or user:<address>")
    if kind == "user":
        if not _ADDRESS.fullmatch(rest):
            raise RoomError(f"room {text!r}: expected user:0x and 40 hex digits")
        checksummed = to_checksum_address(rest)
        digits = rest[2:]
        if digits not in (digits.lower(), digits.upper()) and rest != checksummed:
            raise RoomError(f"room {text!r}: wrong address checksum (expected {checksummed})")
        return Room("user", f"user:{checksummed}")
    if not _ID.fullmatch(rest) or int(rest) > MAX_INT_KEY:
        raise RoomError(f"room {text!r}: {kind} ids are decimal digits, 1 to {MAX_INT_KEY}, no leading 0")
    return Room(kind, f"{kind}:{int(rest)}", id=int(rest))


# Server frames, `type` first. Each is encoded once and sent as is to every connection it goes to.


class TaskEventFrame(msgspec.Struct, rename="camel"):
    """A task changed (`type`: TASK_CREATED, TASK_UPDATED or TASK_STATUS_CHANGED)."""

    type: str
    room: str
    task: msgspec.Raw  # a TaskView, encoded once for all rooms
    previous_status: str | None


class JobSnapshotFrame(msgspec.Struct, tag_field="type", tag="JOB_TASKS_SNAPSHOT"):
    """A job room's latest tasks, oldest first, sent on subscribing."""

    room: str
    tasks: list[TaskView]


class TaskSnapshotFrame(msgspec.Struct, tag_field="type", tag="TASK_SNAPSHOT"):
    """A task room's task, sent on subscribing."""

    room: str
    task: TaskView


class RoomFrame(msgspec.Struct):
    """SUBSCRIBED or UNSUBSCRIBED: the room's events start or stop here."""

    type: Literal["SUBSCRIBED", "UNSUBSCRIBED"]
    room: str


class ErrorFrame(msgspec.Struct, tag_field="type", tag="ERROR", omit_defaults=True):
    """What was wrong with a client's frame: `field` is its JSON path, `room` the room concerned."""

    error: str
    field: str | None = None
    room: str | None = None


class PongFrame(msgspec.Struct, tag_field="type", tag="PONG"):
    """The answer to a PING."""


_encoder = msgspec.json.Encoder()


def encode(frame: msgspec.Struct) -> str:
    """`frame` as the text of one WebSocket message."""
    return _encoder.encode(frame).decode()


def latest_tasks(storage: GatewayStorage, job_id: int, limit: int) -> list[TaskRecord]:
    """`job_id`'s latest `limit` tasks, oldest first."""
    prefix = INDEXES.child(TASKS.name).child("job").prefix + encode_part(job_id)
    with storage.store.db.iterator(prefix=prefix, reverse=True, include_value=False) as keys:
        ids = [decode_part(key, len(prefix))[0] for key in itertools.islice(keys, limit)]
    tasks = (storage.tasks.get(task_id) for task_id in reversed(ids))
    return [task for task in tasks if task is not None]


class Subscriber:
    """One connection as the hub sees it: its rooms and its bounded queue of frames.

    The hub and the connection's reader only `offer` frames (never waiting); the connection's
    writer (`write`) sends them. Once closed, the subscriber is out of every room and feed,
    and `write` returns: the connection then closes with `close_code` and `close_reason`.
    """

    def __init__(self, buffer: int, detach: Callable[[Subscriber], None]) -> None:
        self._send, self._frames = trio.open_memory_channel[str](buffer)
        self._detach = detach
        self.rooms: dict[str, None] = {}  # a dict: its order is the order of subscription
        self.close_code: int | None = None
        self.close_reason = ""
        self._discard = False

    @property
    def closing(self) -> bool:
        """Whether it was closed (nothing more is sent but what `close` let through)."""
        return self.close_code is not None

    def offer(self, frame: str) -> None:
        """Queue `frame`; a full queue closes the subscriber (its backlog is thrown away)."""
        if self.closing:
            return
        try:
            self._send.send_nowait(frame)
        except trio.WouldBlock:
            behind = self._send.statistics().current_buffer_used
            self.close(POLICY, f"too slow: {behind} events behind", discard=True)
        except trio.BrokenResourceError:  # the writer is gone: so is the connection
            self.close(NORMAL, "gone", discard=True)

    def close(self, code: int, reason: str, *, discard: bool = False) -> None:
        """Close with `code` and `reason`, after the frames queued unless `discard`."""
        if self.closing:
            return
        self.close_code, self.close_reason, self._discard = code, reason, discard
        self._send.close()
        self._detach(self)

    async def write(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Send the queued frames with `send`, in order, until the subscriber is closed."""
        async with self._frames:
            async for frame in self._frames:
                if self._discard:
                    break
                await send(frame)


class Feed:
    """A frame pushed to all its listeners every `interval`: `{"type": kind, ...compute()}`.

    `compute` runs once per interval for all listeners (only while there are some). A new
    listener gets the latest frame at once, computed then if older than an interval.
    """

    def __init__(self, kind: str, compute: Callable[[], msgspec.Struct], interval: float) -> None:
        self.kind = kind
        self.compute = compute
        self.interval = interval
        self.listeners: dict[Subscriber, None] = {}
        self._latest: tuple[float, str] | None = None

    def join(self, subscriber: Subscriber) -> None:
        """Push to `subscriber` from now on, starting with the latest frame."""
        self.listeners[subscriber] = None
        if self._latest is not None and trio.current_time() - self._latest[0] < self.interval:
            subscriber.offer(self._latest[1])
        elif (frame := self._frame()) is not None:
            subscriber.offer(frame)

    async def run(self) -> None:
        """Push every interval, until cancelled."""
        while True:
            await trio.sleep(self.interval)
            if self.listeners and (frame := self._frame()) is not None:
                for subscriber in list(self.listeners):  # a slow one leaves the dict
                    subscriber.offer(frame)

    def _frame(self) -> str | None:
        try:
            fields = msgspec.to_builtins(self.compute())
            frame = _encoder.encode({"type": self.kind, **{k: v for k, v in fields.items() if k != "type"}})
        except Exception:  # a broken callable must not end the feed or the connections
            log.exception("computing the %s frame failed; skipped", self.kind)
            return None
        self._latest = (trio.current_time(), frame.decode())
        return self._latest[1]


class Hub:
    """The task ledger's events, routed to rooms of subscribers; and the stats and health feeds.

    `run` (started with the app, see gateway.api.streams) holds the gateway's one
    subscription to the ledger. Events are routed in ledger order by this one task, and
    each subscriber's queue is FIFO: every connection gets the events of a task in order.
    """

    def __init__(
        self,
        ledger: TaskLedger,
        storage: GatewayStorage,
        stats: Callable[[], msgspec.Struct],
        health: Callable[[], msgspec.Struct],
        limits: StreamLimits,
    ) -> None:
        self.ledger = ledger
        self.storage = storage
        self.limits = limits
        self.stats = Feed("STATS", stats, limits.push_interval)
        self.health = Feed("HEALTH", health, limits.push_interval)
        self.rooms: dict[str, dict[Subscriber, None]] = {}
        self._user_rooms = 0
        self._owners: OrderedDict[int, str] = OrderedDict()  # job id -> owner, checksummed
        self._stream: trio.MemoryReceiveChannel[TaskEvent] | None = None
        self._rested = trio.Event()
        self._scope: trio.CancelScope | None = None

    def subscriber(self) -> Subscriber:
        """A new connection's subscriber."""
        return Subscriber(self.limits.send_buffer, self._detach)

    async def run(self) -> None:
        """Follow the ledger and push the feeds until cancelled (or `stop`ped)."""
        if self._scope is not None:
            return  # already running (the blueprint is in two apps)
        self._scope = trio.CancelScope()
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._follow)
                    nursery.start_soon(self.stats.run)
                    nursery.start_soon(self.health.run)
        finally:
            self._scope = self._stream = None

    def stop(self) -> None:
        """End `run`."""
        if self._scope is not None:
            self._scope.cancel()

    async def subscribe(self, subscriber: Subscriber, room: Room) -> str | None:
        """Put `subscriber` in `room`: it gets SUBSCRIBED, the room's snapshot (job and task
        rooms) and from then on every event routed to the room. Returns an error, if not.

        The snapshot is read from the store at a moment the hub has routed every event the
        ledger has published (`at_rest`), and the subscriber joins the room at that same
        moment: the snapshot holds exactly the changes routed before, the room delivers
        exactly those routed after. No event is lost or repeated, and none older than the
        snapshot follows it.
        """
        if room.name in subscriber.rooms:
            return f"already subscribed to {room.name}"
        if len(subscriber.rooms) >= self.limits.rooms_per_connection:
            return f"at most {self.limits.rooms_per_connection} rooms per connection"
        with trio.move_on_after(self.limits.snapshot_timeout):
            await self.at_rest()
            # From here on nothing awaits: the snapshot and the join are at one stream position.
            snapshot = self._snapshot(room)
            if snapshot is None:
                return f"no {room.kind} {room.id}"
            if subscriber.closing:
                return None
            self._join(subscriber, room)
            subscriber.offer(encode(RoomFrame("SUBSCRIBED", room.name)))
            if snapshot:
                subscriber.offer(snapshot)
            return None
        return "the gateway is busy: subscribe again"

    def unsubscribe(self, subscriber: Subscriber, name: str) -> str | None:
        """Take `subscriber` out of room `name`: UNSUBSCRIBED, after which none of the room's
        events follow. Returns an error, if it was not in it."""
        if name not in subscriber.rooms:
            return f"not subscribed to {name}"
        self._leave(subscriber, name)
        subscriber.offer(encode(RoomFrame("UNSUBSCRIBED", name)))
        return None

    async def at_rest(self) -> None:
        """Return at a moment the hub has routed every event the ledger has published.

        That is when the hub waits on an empty stream: then its task is among the stream's
        waiting receivers (trio takes a task off that list as it hands it an event). The
        ledger publishes each change right after writing it, without a checkpoint between,
        so at that moment the store holds exactly the changes the hub has routed.
        """
        while not self._resting():
            await self._rested.wait()

    def _resting(self) -> bool:
        stream = self._stream
        return stream is not None and stream.statistics().tasks_waiting_receive > 0

    async def _follow(self) -> None:
        while True:
            stream = self.ledger.subscribe(self.limits.hub_buffer)
            self._stream = stream
            with stream:
                while True:
                    if stream.statistics().current_buffer_used == 0:
                        self._rested.set()  # about to wait on an empty stream: at rest
                        self._rested = trio.Event()
                    try:
                        event = await stream.receive()
                    except trio.EndOfChannel:
                        break
                    self._route(event)
            # The ledger dropped us (a burst of hub_buffer events without a checkpoint): some
            # events are gone, so every room subscriber may have missed some. They are closed
            # to subscribe again, and get snapshots of the new stream.
            log.warning("the WebSocket hub fell behind the task ledger; closing every room subscriber")
            for subscriber in {s for members in self.rooms.values() for s in members}:
                subscriber.close(TRY_AGAIN_LATER, "the gateway lost task events: subscribe again")

    def _route(self, event: TaskEvent) -> None:
        task = event.task
        names = [f"task:{task.id}", f"job:{task.job_id}"]
        if self._user_rooms and (owner := self._owner(task.job_id)) is not None:
            names.append(f"user:{owner}")
        view: msgspec.Raw | None = None
        for name in names:
            members = self.rooms.get(name)
            if not members:
                continue
            if view is None:
                view = msgspec.Raw(_encoder.encode(TaskView.of(task)))
            frame = encode(TaskEventFrame(event.kind, name, view, event.previous_status))
            for subscriber in list(members):  # one that is too slow leaves the dict
                subscriber.offer(frame)

    def _owner(self, job_id: int) -> str | None:
        owner = self._owners.get(job_id)
        if owner is None:
            job = self.storage.jobs.get(job_id)
            if job is None:
                return None
            owner = self._owners[job_id] = to_checksum_address(job.owner)
            if len(self._owners) > 4096:  # a job's owner never changes: keep the recent ones
                self._owners.popitem(last=False)
        else:
            self._owners.move_to_end(job_id)
        return owner

    def _snapshot(self, room: Room) -> str | None:
        """The room's snapshot frame ("" for none); None if its job or task does not exist."""
        if room.kind == "user":
            return ""
        if room.kind == "task":
            task = self.storage.tasks.get(room.id)
            return None if task is None else encode(TaskSnapshotFrame(room.name, TaskView.of(task)))
        if self.storage.jobs.get(room.id) is None:
            return None
        tasks = latest_tasks(self.storage, room.id, self.limits.snapshot_tasks)
        return encode(JobSnapshotFrame(room.name, [TaskView.of(t) for t in tasks]))

    def _join(self, subscriber: Subscriber, room: Room) -> None:
        subscriber.rooms[room.name] = None
        if room.name not in self.rooms:
            self.rooms[room.name] = {}
            if room.kind == "user":  # owners are looked up only while some user room exists
                self._user_rooms += 1
        self.rooms[room.name][subscriber] = None

    def _leave(self, subscriber: Subscriber, name: str) -> None:
        subscriber.rooms.pop(name, None)
        members = self.rooms.get(name)
        if members is None:
            return
        members.pop(subscriber, None)
        if not members:
            del self.rooms[name]
            if name.startswith("user:"):
                self._user_rooms -= 1

    def _detach(self, subscriber: Subscriber) -> None:
        for name in list(subscriber.rooms):
            self._leave(subscriber, name)
        self.stats.listeners.pop(subscriber, None)
        self.health.listeners.pop(subscriber, None)
