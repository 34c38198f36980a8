"""The gateway's WebSockets (gateway.api.streams) on a real hypercorn server, over a real store,
GatewayStorage and TaskLedger, spoken to by trio-websocket clients."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from eth_utils import to_checksum_address
from hypercorn.trio import serve
from quart_trio import QuartTrio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection, open_websocket_url

from gateway import AttemptRecord, GatewayStorage, JobRecord, TaskLedger, TaskRecord, server_config

# The hub's internals, for the test that drives it without a server.
from gateway.api.rooms import Hub, parse_room
from gateway.api.streams import StreamLimits, streams_blueprint
from gateway.api.views import TaskView
from node.store import Store
from protocol import JobTerms, job_id_of

from ..gateway_helpers import counter_job

OWNER_A = "0x" + "ab" * 20
OWNER_B = "0x" + "cd" * 20
CALLDATA = b"\xd0\x9d\xe0\x8a"
ATTEMPT = AttemptRecord(number=1, performer="0x" + "11" * 20, assigned_at=10.0, deadline=70)


def job(job_id: int, owner: str) -> JobRecord:
    """Gateway job `job_id` of `owner`."""
    terms = JobTerms.static_call(owner, CALLDATA, 100_000, 10**15, bytes(32))
    return msgspec.structs.replace(counter_job(owner, job_id_of(owner, job_id), terms, CALLDATA), id=job_id)


def view(task: TaskRecord) -> dict[str, Any]:
    """`task` as the API shows it, as a client decodes it."""
    return json.loads(msgspec.json.encode(TaskView.of(task)))


class Stats(msgspec.Struct):
    n: int


class Health(msgspec.Struct):
    ok: bool
    keepers: int


@dataclass
class Gateway:
    storage: GatewayStorage
    ledger: TaskLedger
    port: int

    def url(self, path: str = "/ws/tasks") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def serving(tmp_path, limits: StreamLimits | None = None) -> AsyncIterator[Gateway]:
    """The streams blueprint alone in a QuartTrio app, on hypercorn, with jobs 1 (owner A) and
    2 (owner B) in the store."""
    with Store.open(tmp_path / "db") as store:
        storage = GatewayStorage(store)
        storage.jobs.put(job(1, OWNER_A))
        storage.jobs.put(job(2, OWNER_B))
        ledger = TaskLedger(storage)
        counter = itertools.count(1)
        app = QuartTrio("t")
        app.register_blueprint(
            streams_blueprint(
                ledger,
                storage,
                lambda: Stats(n=next(counter)),
                lambda: Health(ok=True, keepers=3),
                limits or StreamLimits(),
            )
        )
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, app, server_config("127.0.0.1:0"))
            yield Gateway(storage, ledger, int(binds[0].rsplit(":", 1)[1]))
            nursery.cancel_scope.cancel()


async def send(ws: WebSocketConnection, **frame: Any) -> None:
    await ws.send_message(json.dumps(frame))


async def frame(ws: WebSocketConnection) -> dict[str, Any]:
    """The next frame from the server."""
    with trio.fail_after(5):
        return json.loads(await ws.get_message())


async def subscribe(ws: WebSocketConnection, room: str) -> str:
    """SUBSCRIBE to `room`; the room's canonical name, from the SUBSCRIBED ack."""
    await send(ws, type="SUBSCRIBE", room=room)
    ack = await frame(ws)
    assert ack["type"] == "SUBSCRIBED", ack
    return ack["room"]


async def nothing_more(ws: WebSocketConnection) -> None:
    """No frame is queued before the answer to a PING (the server answers frames in order)."""
    await send(ws, type="PING")
    assert await frame(ws) == {"type": "PONG"}


async def closed(ws: WebSocketConnection) -> tuple[list[dict[str, Any]], int, str | None]:
    """The frames still to come, then the close code and reason."""
    frames = []
    with trio.fail_after(10):
        while ws.closed is None:
            try:
                frames.append(json.loads(await ws.get_message()))
            except ConnectionClosed:
                break
    assert ws.closed is not None
    return frames, ws.closed.code, ws.closed.reason


async def test_job_room_gets_its_snapshot_then_each_change_in_ledger_order(tmp_path):
    async with serving(tmp_path) as gateway:
        ledger = gateway.ledger
        first, second = ledger.create(job(1, OWNER_A), 100.0), ledger.create(job(1, OWNER_A), 160.0)
        ledger.create(job(2, OWNER_B), 100.0)  # another job's: not in the room
        async with open_websocket_url(gateway.url()) as ws:
            assert await subscribe(ws, "job:1") == "job:1"
            assert await frame(ws) == {
                "type": "JOB_TASKS_SNAPSHOT",
                "room": "job:1",
                "tasks": [view(first), view(second)],
            }
            task = ledger.create(job(1, OWNER_A), 220.0)
            ledger.create(job(2, OWNER_B), 220.0)
            dispatched = ledger.attempt_assigned(task.id, ATTEMPT)
            timed_out = ledger.attempt_ended(task.id, ATTEMPT, "timed out")
            failed = ledger.fail(task.id, "out of attempts")
            assert [await frame(ws) for _ in range(4)] == [
                {"type": "TASK_CREATED", "room": "job:1", "task": view(task), "previousStatus": None},
                {
                    "type": "TASK_STATUS_CHANGED",
                    "room": "job:1",
                    "task": view(dispatched),
                    "previousStatus": "created",
                },
                {"type": "TASK_UPDATED", "room": "job:1", "task": view(timed_out), "previousStatus": None},
                {
                    "type": "TASK_STATUS_CHANGED",
                    "room": "job:1",
                    "task": view(failed),
                    "previousStatus": "dispatched",
                },
            ]
            await nothing_more(ws)


async def test_a_job_snapshot_is_its_latest_100_tasks_oldest_first(tmp_path):
    async with serving(tmp_path) as gateway:
        ours = []
        for fire in range(105):
            ours.append(gateway.ledger.create(job(1, OWNER_A), float(fire)))
            gateway.ledger.create(job(2, OWNER_B), float(fire))  # interleaved in the index
        async with open_websocket_url(gateway.url()) as ws:
            await subscribe(ws, "job:1")
            snapshot = await frame(ws)
            assert [t["id"] for t in snapshot["tasks"]] == [t.id for t in ours[5:]]
            await subscribe(ws, "job:2")
            assert len((await frame(ws))["tasks"]) == 100


async def test_a_snapshot_taken_while_events_wait_to_be_routed_is_neither_lost_nor_repeated(tmp_path):
    """The hub alone: changes are published (in the store) but not yet routed when a client
    subscribes. Its snapshot must hold them, and their events must not follow it."""
    with Store.open(tmp_path / "db") as store:
        storage = GatewayStorage(store)
        storage.jobs.put(job(1, OWNER_A))
        ledger = TaskLedger(storage)
        hub = Hub(ledger, storage, lambda: Stats(n=0), lambda: Health(ok=True, keepers=0), StreamLimits())
        sent: list[dict[str, Any]] = []

        async def collect(text: str) -> None:
            sent.append(json.loads(text))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hub.run)
            await hub.at_rest()  # subscribed to the ledger
            subscriber = hub.subscriber()
            nursery.start_soon(subscriber.write, collect)
            before = [ledger.create(job(1, OWNER_A), float(fire)) for fire in range(3)]
            assert await hub.subscribe(subscriber, parse_room("job:1")) is None
            after = ledger.create(job(1, OWNER_A), 9.0)
            await trio.testing.wait_all_tasks_blocked()
            assert sent == [
                {"type": "SUBSCRIBED", "room": "job:1"},
                {"type": "JOB_TASKS_SNAPSHOT", "room": "job:1", "tasks": [view(t) for t in before]},
                {"type": "TASK_CREATED", "room": "job:1", "task": view(after), "previousStatus": None},
            ]
            nursery.cancel_scope.cancel()


async def test_task_and_user_rooms(tmp_path):
    async with serving(tmp_path) as gateway:
        ledger = gateway.ledger
        task = ledger.create(job(1, OWNER_A), 100.0)
        async with open_websocket_url(gateway.url()) as ws:
            assert await subscribe(ws, f"task:{task.id}") == f"task:{task.id}"
            assert await frame(ws) == {"type": "TASK_SNAPSHOT", "room": f"task:{task.id}", "task": view(task)}
            user = f"user:{to_checksum_address(OWNER_A)}"
            assert await subscribe(ws, f"user:{OWNER_A.upper().replace('0X', '0x')}") == user
            dispatched = ledger.attempt_assigned(task.id, ATTEMPT)
            ledger.create(job(2, OWNER_B), 100.0)  # B's: in neither room
            other = ledger.create(job(1, OWNER_A), 160.0)  # A's: in the user room only
            changed = {"type": "TASK_STATUS_CHANGED", "task": view(dispatched), "previousStatus": "created"}
            assert [await frame(ws) for _ in range(3)] == [
                {**changed, "room": f"task:{task.id}"},  # the task's room first, then the owner's
                {**changed, "room": user},
                {"type": "TASK_CREATED", "room": user, "task": view(other), "previousStatus": None},
            ]
            await nothing_more(ws)


async def test_unsubscribe_stops_the_rooms_events(tmp_path):
    async with serving(tmp_path) as gateway, open_websocket_url(gateway.url()) as ws:
        await subscribe(ws, "job:1")
        await frame(ws)  # the snapshot
        await send(ws, type="UNSUBSCRIBE", room="job:1")
        assert await frame(ws) == {"type": "UNSUBSCRIBED", "room": "job:1"}
        gateway.ledger.create(job(1, OWNER_A), 100.0)
        await nothing_more(ws)
        await send(ws, type="UNSUBSCRIBE", room="job:1")
        assert await frame(ws) == {
            "type": "ERROR",
            "error": "not subscribed to job:1",
            "field": "$.room",
            "room": "job:1",
        }


BAD_FRAMES = [
    ("not json", "JSON is malformed", None),
    ("[1]", "Expected `object`, got `array`", "$"),
    ('{"room": "job:1"}', "missing required field `type`", "$.type"),
    ('{"type": "NOPE"}', "Invalid value 'NOPE'", "$.type"),
    ('{"type": "SUBSCRIBE"}', "missing required field `room`", "$.room"),
    ('{"type": "PING", "extra": 1}', "unknown field `extra`", "$.extra"),
    ('{"type": "SUBSCRIBE", "room": 12}', "Expected `str`, got `int`", "$.room"),
    ('{"type": "SUBSCRIBE", "room": "job:' + "1" * 70 + '"}', "length <= 64", "$.room"),
    ('{"type": "SUBSCRIBE", "room": "jobs:1"}', "expected job:<id>", "$.room"),
    ('{"type": "SUBSCRIBE", "room": "job:0"}', "job ids are decimal digits", "$.room"),
    ('{"type": "SUBSCRIBE", "room": "job:01"}', "job ids are decimal digits", "$.room"),
    ('{"type": "SUBSCRIBE", "room": "job:-1"}', "job ids are decimal digits", "$.room"),
    ('{"type": "SUBSCRIBE", "room": "job:\u0661"}', "job ids are decimal digits", "$.room"),  # Arabic 1
    ('{"type": "SUBSCRIBE", "room": "task:9223372036854775808"}', "task ids are decimal", "$.room"),
    ('{"type": "SUBSCRIBE", "room": "user:0xabc"}', "40 hex digits", "$.room"),
    ('{"type": "SUBSCRIBE", "room": "user:0xAbab' + "ab" * 18 + '"}', "wrong address checksum", "$.room"),
    ("x" * 5000, "over the limit of 4096 bytes", None),
    (b'{"type": "PING"}', "JSON text, not binary", None),
]


async def test_bad_frames_get_an_error_naming_the_field_and_the_connection_lives(tmp_path):
    limits = StreamLimits(max_errors=len(BAD_FRAMES) + 3)  # each counts; all but the last are let off
    async with serving(tmp_path, limits) as gateway, open_websocket_url(gateway.url()) as ws:
        for data, error, field in BAD_FRAMES:
            await ws.send_message(data)
            answer = await frame(ws)
            assert answer["type"] == "ERROR", data
            assert error in answer["error"], (data, answer)
            assert answer.get("field") == field, (data, answer)
        for room in ("job:99", "task:1"):  # well formed, but no such job or task
            await send(ws, type="SUBSCRIBE", room=room)
            kind, number = room.split(":")
            assert await frame(ws) == {
                "type": "ERROR",
                "error": f"no {kind} {number}",
                "field": "$.room",
                "room": room,
            }
        await nothing_more(ws)


async def test_too_many_bad_frames_close_the_connection(tmp_path):
    async with (
        serving(tmp_path, StreamLimits(max_errors=3)) as gateway,
        open_websocket_url(gateway.url()) as ws,
    ):
        for _ in range(2):
            await ws.send_message("{")
            assert (await frame(ws))["type"] == "ERROR"
        await ws.send_message("{")
        frames, code, reason = await closed(ws)
        assert [f["type"] for f in frames] == ["ERROR"]  # the last error is sent, then the close
        assert (code, reason) == (1008, "too many bad frames (3)")


async def test_a_reader_that_stops_reading_is_dropped_and_nobody_waits_for_it(tmp_path):
    """A client that stops reading fills its TCP window, then its 4 queued frames: the hub
    closes it (1008) without ever waiting, while a subscriber that reads gets every event."""
    count = 60
    detail = bytes(64 * 1024)  # 128 KiB of hex per event: the TCP buffers fill within `count`
    async with (
        serving(tmp_path, StreamLimits(send_buffer=4)) as gateway,
        open_websocket_url(gateway.url(), message_queue_size=1) as slow,
        open_websocket_url(gateway.url(), max_message_size=1 << 20) as reader,
    ):
        for ws in (slow, reader):
            await subscribe(ws, "job:1")
            await frame(ws)  # the snapshot
        created: list[TaskRecord] = []
        while len(created) < count:
            # Two changes at once (the ledger publishes synchronously; the slow reader
            # cannot hold it up), then the reader reads them.
            burst = [
                gateway.ledger.create(job(1, OWNER_A), float(len(created) + i), detail=detail)
                for i in range(2)
            ]
            created += burst
            for task in burst:
                event = await frame(reader)
                assert (event["type"], event["task"]["id"]) == ("TASK_CREATED", task.id)
        await nothing_more(reader)
        frames, code, reason = await closed(slow)
        assert (code, reason) == (1008, "too slow: 4 events behind")
        # What it got before the drop, in order; far from all of it.
        assert [f["task"]["id"] for f in frames] == [t.id for t in created[: len(frames)]]
        assert len(frames) < count // 2


async def test_a_hub_that_loses_ledger_events_closes_its_room_subscribers(tmp_path):
    async with serving(tmp_path, StreamLimits(hub_buffer=2)) as gateway:
        async with open_websocket_url(gateway.url()) as ws:
            await subscribe(ws, "job:1")
            await frame(ws)
            # Five changes without a checkpoint: the ledger drops the hub at the fourth.
            created = [gateway.ledger.create(job(1, OWNER_A), float(fire)) for fire in range(5)]
            frames, code, reason = await closed(ws)
            assert (code, reason) == (1013, "the gateway lost task events: subscribe again")
            assert [f["task"]["id"] for f in frames] == [t.id for t in created[: len(frames)]]
            assert len(frames) < 5
        async with open_websocket_url(gateway.url()) as ws:  # the hub follows the ledger again
            await subscribe(ws, "job:1")
            assert [t["id"] for t in (await frame(ws))["tasks"]] == [t.id for t in created]
            task = gateway.ledger.create(job(1, OWNER_A), 9.0)
            assert (await frame(ws))["task"]["id"] == task.id


async def test_ping_and_idle_timeout(tmp_path):
    async with (
        serving(tmp_path, StreamLimits(idle_timeout=0.5)) as gateway,
        open_websocket_url(gateway.url()) as ws,
    ):
        for _ in range(8):  # 0.8 s in all, a PING every 0.1 s: alive
            await trio.sleep(0.1)
            await nothing_more(ws)
        frames, code, reason = await closed(ws)  # silent now
        assert (frames, code, reason) == ([], 1000, "idle: no frame in 0.5 s")


async def test_connections_are_capped_per_address_over_all_three_endpoints(tmp_path):
    async with (
        serving(tmp_path, StreamLimits(connections_per_ip=2)) as gateway,
        open_websocket_url(gateway.url("/ws/tasks")) as tasks,
    ):
        async with open_websocket_url(gateway.url("/ws/stats")) as stats:
            await nothing_more(tasks)
            assert (await frame(stats))["type"] == "STATS"
            with pytest.raises(ConnectionRejected) as refused:
                async with open_websocket_url(gateway.url("/ws/health")):
                    pass
            assert refused.value.status_code == 429
            assert json.loads(refused.value.body) == {"error": "at most 2 WebSocket connections per address"}
        # The server counts the closed one out as its handler ends, a moment after the
        # close handshake: nothing to wait on but the next attempt.
        with trio.fail_after(5):
            while True:
                try:
                    async with open_websocket_url(gateway.url("/ws/health")) as health:
                        assert (await frame(health))["type"] == "HEALTH"
                        break
                except ConnectionRejected:
                    await trio.sleep(0.01)


async def test_stats_are_computed_once_per_interval_for_every_listener(tmp_path):
    async with (
        serving(tmp_path, StreamLimits(push_interval=0.05)) as gateway,
        open_websocket_url(gateway.url("/ws/stats")) as one,
        open_websocket_url(gateway.url("/ws/stats")) as two,
        open_websocket_url(gateway.url("/ws/stats")) as three,
    ):
        listeners = (one, two, three)
        firsts = [await frame(ws) for ws in listeners]
        assert all(f["type"] == "STATS" for f in firsts)
        joined = max(f["n"] for f in firsts)  # every listener is in from here on
        seen = []
        for ws in listeners:
            values = []
            while len(values) < 4:
                pushed = await frame(ws)
                if pushed["n"] > joined:
                    values.append(pushed["n"])
            seen.append(values)
        # One computation per push, the same frame to each: a computation per listener
        # would give each listener every third value.
        assert seen == [list(range(joined + 1, joined + 5))] * 3


async def test_health_is_pushed(tmp_path):
    async with (
        serving(tmp_path, StreamLimits(push_interval=0.05)) as gateway,
        open_websocket_url(gateway.url("/ws/health")) as ws,
    ):
        assert [await frame(ws) for _ in range(2)] == [{"type": "HEALTH", "ok": True, "keepers": 3}] * 2
        await send(ws, type="SUBSCRIBE", room="job:1")
        answer = await frame(ws)
        while answer["type"] == "HEALTH":
            answer = await frame(ws)
        assert answer == {
            "type": "ERROR",
            "error": "this endpoint has no rooms: PING is its only frame",
            "field": "$.type",
        }


async def test_a_client_that_subscribes_to_the_rooms_it_needs_is_never_throttled(tmp_path):
    """The default SUBSCRIBE budget leaves a dashboard room to spare: a job, a task and an
    owner, each left and joined again twice, get their snapshots and then their events."""
    async with serving(tmp_path) as gateway, open_websocket_url(gateway.url()) as ws:
        task = gateway.ledger.create(job(1, OWNER_A), 100.0)
        rooms = ["job:1", "job:2", f"task:{task.id}", f"user:{to_checksum_address(OWNER_A)}"]
        for round_ in range(3):
            for room in rooms:
                assert await subscribe(ws, room) == room
                if not room.startswith("user:"):
                    assert (await frame(ws))["type"] in ("JOB_TASKS_SNAPSHOT", "TASK_SNAPSHOT")
            if round_ < 2:
                for room in rooms:
                    await send(ws, type="UNSUBSCRIBE", room=room)
                    assert await frame(ws) == {"type": "UNSUBSCRIBED", "room": room}
        created = gateway.ledger.create(job(2, OWNER_B), 200.0)
        assert await frame(ws) == {
            "type": "TASK_CREATED",
            "room": "job:2",
            "task": view(created),
            "previousStatus": None,
        }
        await nothing_more(ws)


async def test_subscribing_beyond_the_budget_closes_the_connection(tmp_path):
    """Each SUBSCRIBE costs a snapshot: past the burst (refilled too slowly here to matter),
    one more, even of a room not joined, closes the connection with 1008 after what was owed."""
    limits = StreamLimits(subscribe_burst=3, subscribes_per_second=0.001)
    async with serving(tmp_path, limits) as gateway, open_websocket_url(gateway.url()) as ws:
        for _ in range(3):
            await subscribe(ws, "job:1")
            assert (await frame(ws))["type"] == "JOB_TASKS_SNAPSHOT"
            await send(ws, type="UNSUBSCRIBE", room="job:1")
            assert (await frame(ws))["type"] == "UNSUBSCRIBED"
        await send(ws, type="PING")  # other frames take nothing from the budget
        assert await frame(ws) == {"type": "PONG"}
        await send(ws, type="SUBSCRIBE", room="job:2")
        frames, code, reason = await closed(ws)
        assert (frames, code) == ([], 1008)
        assert reason == "too many subscriptions: over 3 at once or 0.001 a second"
