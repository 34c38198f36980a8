"""Alerts (gateway/alerts/) through real receivers: the webhook to a local HTTP server, email
to a local aiosmtpd server. A task that fails, a keeper offline too long (once per spell), a
receiver that is down or hangs (bounded tries, bounded queue, nothing else waits), user text
that tries to forge lines or headers, and the [alerts] config with its one-line errors."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword

from gateway import (
    Alerts,
    AttemptRecord,
    EmailChannel,
    GatewayStorage,
    HealthTracker,
    JobRecord,
    TaskLedger,
    WebhookChannel,
    alert_channels,
)
from node.config import ConfigError, load_config
from node.store import Store
from protocol import JobTerms, job_id_of

from ..gateway_helpers import counter_job

OWNER = "0x" + "22" * 20
TARGET = "0x" + "33" * 20
KEEPER = "0x" + "44" * 20
OTHER_KEEPER = "0x" + "55" * 20
PEER = "12D3KooWGFyHXVuMi1aNmbe3YiBW2tDXDgorssTz2WfdhqczWxRE"
TOKEN_PATH = "/bot123456:SECRET-token/sendMessage"
SENDER = "gateway@example.com"
CALLDATA = b"\xd0\x9d\xe0\x8a"
RECIPIENTS = ["ops@example.com", "oncall@example.com"]
NOT_APPROVED = "no approved execution in 1 attempt(s)"


def job_record(function: str = "increment()") -> JobRecord:
    terms = JobTerms.static_call(TARGET, CALLDATA, 100_000, 10**15, bytes(32))
    job = counter_job(OWNER, job_id_of(OWNER, 1), terms, CALLDATA, 1.0, function=function)
    return msgspec.structs.replace(job, trace_id="trace")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[TaskLedger]:
    with Store.open(tmp_path / "db") as store:
        storage = GatewayStorage(store)
        storage.jobs.put(job_record())
        yield TaskLedger(storage, clock=lambda: 10.0)


def fail_task(
    ledger: TaskLedger, reason: str = "no approved execution in 1 attempt(s)", job_id: int = 1
) -> int:
    """A task of job `job_id`, fired at 10 s past the epoch, assigned once, then failed with `reason`."""
    task = ledger.create(ledger.storage.jobs.get(job_id), fire_at=10.0)
    ledger.attempt_assigned(task.id, AttemptRecord(number=1, performer=KEEPER, assigned_at=10, deadline=70))
    ledger.fail(task.id, reason)
    return task.id


# ---- Receivers ----------------------------------------------------------------------------


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording each POST; it answers from `replies` (then 200
    `{"ok": true}`), or, while `hanging`, never answers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.replies: list[tuple[int, dict[str, Any]]] = []
        self.hanging = False
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers), json.loads(body)))
                if receiver.hanging:
                    receiver.release.wait(30)
                    return
                status, answer = receiver.replies.pop(0) if receiver.replies else (200, {"ok": True})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{TOKEN_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def texts(self) -> list[str]:
        return [body["text"] for _, _, body in self.requests]


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.thread.start()
    yield receiver
    receiver.release.set()
    receiver.server.shutdown()
    receiver.server.server_close()


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1, on its own asyncio loop in a thread, keeping each envelope; with
    `login`, it demands AUTH with those credentials (plain text: the test has no TLS)."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.login = login
        self.envelopes: list[Envelope] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> SmtpReceiver:
        self.thread.start()

        def protocol() -> SMTP:
            return SMTP(
                self,
                hostname="receiver.test",
                authenticator=self._authenticate if self.login else None,
                auth_required=self.login is not None,
                auth_require_tls=False,
            )

        opening = self.loop.create_server(protocol, "127.0.0.1", 0)
        self.server = asyncio.run_coroutine_threadsafe(opening, self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _close(self) -> None:
        self.server.close()
        sessions = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in sessions:
            task.cancel()
        await asyncio.gather(*sessions, return_exceptions=True)

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Envelope) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 OK"

    def _authenticate(self, server: SMTP, session: Any, envelope: Envelope, mechanism: str, data: Any) -> Any:
        assert self.login is not None
        expected = LoginPassword(self.login[0].encode(), self.login[1].encode())
        return AuthResult(success=isinstance(data, LoginPassword) and data == expected, handled=False)

    def messages(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(e.original_content, policy=email.policy.default)  # type: ignore[misc]
            for e in self.envelopes
        ]


def subject(message: email.message.EmailMessage) -> str:
    """The Subject as a mail client shows it: a subject longer than a line is folded (by the
    standard library) right after `Subject:`, and the parser keeps the fold's leading space."""
    return message["Subject"].lstrip(" ")


def body_of(message: email.message.EmailMessage) -> str:
    """The text of `message`, its lines as sent (CRLF on the wire) ending in LF."""
    return message.get_content().replace("\r\n", "\n").removesuffix("\n")


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as receiver:
        yield receiver


def email_channel(receiver: SmtpReceiver, **options: Any) -> EmailChannel:
    return EmailChannel("127.0.0.1", receiver.port, SENDER, RECIPIENTS, starttls=False, **options)


@asynccontextmanager
async def running(alerts: Alerts) -> AsyncIterator[Alerts]:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(alerts.run)
        yield alerts
        nursery.cancel_scope.cancel()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not check():  # noqa: ASYNC110 - receivers in threads and counters signal no event
            await trio.sleep(0.01)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---- A failed task ------------------------------------------------------------------------

FAILED_SUBJECT = "TriggerX: task 1 of job 1 failed: no approved execution in 1 attempt(s)"
FAILED_BODY = (
    "Task 1 failed for good.\n"
    f"Job: 1: increment() on {TARGET}, interval trigger\n"
    f"Owner: {OWNER}\n"
    "Reason: no approved execution in 1 attempt(s)\n"
    "Fired at: 1970-01-01 00:00:10 UTC; attempts: 1\n"
    "Trace id: trace-1"  # the job's trace id, then the task's id
)


async def test_a_failed_task_is_one_webhook_message_in_the_telegram_shape(ledger, webhook):
    alerts = Alerts([WebhookChannel(webhook.url, -1001234567890)], ledger, HealthTracker(15.0))
    async with running(alerts):
        fail_task(ledger)
        done = ledger.create(ledger.storage.jobs.get(1), fire_at=20.0)
        ledger.attempt_assigned(
            done.id, AttemptRecord(number=1, performer=KEEPER, assigned_at=20, deadline=80)
        )
        await eventually(lambda: alerts.stats["webhook"].sent == 1)  # answered, and counted
        await trio.sleep(0.2)  # nothing else comes: only `failed` is announced
    [(path, headers, body)] = webhook.requests
    assert path == TOKEN_PATH
    assert headers["Content-Type"] == "application/json"
    assert body == {
        "chat_id": -1001234567890,
        "text": f"{FAILED_SUBJECT}\n\n{FAILED_BODY}",
        "disable_web_page_preview": True,
    }
    assert alerts.stats["webhook"].sent == 1


async def test_a_failed_task_is_one_email_to_every_recipient(ledger, smtp):
    alerts = Alerts([email_channel(smtp)], ledger, HealthTracker(15.0))
    async with running(alerts):
        fail_task(ledger)
        await eventually(lambda: alerts.stats["email"].sent == 1)  # received, answered, counted
    [envelope] = smtp.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == RECIPIENTS
    [message] = smtp.messages()
    assert message["From"] == SENDER
    assert message["To"] == ", ".join(RECIPIENTS)
    assert subject(message) == FAILED_SUBJECT
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@example.com>")
    assert message.get_content_type() == "text/plain"
    assert body_of(message) == FAILED_BODY
    assert alerts.stats["email"].sent == 1


def failure_alerts(ledger: TaskLedger, webhook: WebhookReceiver, clock: Clock, check_every: float) -> Alerts:
    """Failure alerts to `webhook` on `clock`, one per job per hour; no keeper alerts."""
    return Alerts(
        [WebhookChannel(webhook.url, 1)],
        ledger,
        HealthTracker(15.0),
        keeper_offline_after=0,
        job_alert_every=3600.0,
        check_every=check_every,
        clock=clock,
    )


async def test_a_job_failing_again_and_again_is_one_alert_per_period_then_their_sum(ledger, webhook):
    """A job that fails at every fire (its target reverts, its owner ran out of funds) would
    bury every other alert: one alert per job per period, then one that sums up the rest."""
    ledger.storage.jobs.put(msgspec.structs.replace(job_record(), id=2))
    clock = Clock(1000.0)
    alerts = failure_alerts(ledger, webhook, clock, check_every=0.01)
    async with running(alerts):
        fail_task(ledger)
        await eventually(lambda: len(webhook.requests) == 1)
        clock.now = 1100.0
        held = [fail_task(ledger, f"try {n}") for n in range(3)]
        fail_task(ledger, job_id=2)  # another job: alerted at once
        await eventually(lambda: len(webhook.requests) == 2)
        await trio.sleep(0.2)
        assert len(webhook.requests) == 2
        clock.now = 4600.0  # the period is up: the three held back, in one alert
        await eventually(lambda: len(webhook.requests) == 3)
        clock.now = 8300.0  # nothing held back since: nothing to say, and job 1 is forgotten
        await trio.sleep(0.2)
        assert len(webhook.requests) == 3
        fail_task(ledger)
        await eventually(lambda: len(webhook.requests) == 4)
    first, other, summed, again = webhook.texts
    assert first.startswith("TriggerX: task 1 of job 1 failed")
    assert other.startswith(f"TriggerX: task {held[-1] + 1} of job 2 failed")
    assert summed.startswith(
        "TriggerX: 3 more tasks of job 1 failed in 1 h 0 min\n\n"
        "3 more tasks of this job failed for good since its last alert, 1 h 0 min ago "
        f"(one alert per job per period). The latest, task {held[-1]}:\n"
        f"Job: 1: increment() on {TARGET}, interval trigger\n"
    )
    assert "Reason: try 2\n" in summed
    assert again.startswith(f"TriggerX: task {held[-1] + 2} of job 1 failed")


async def test_failures_held_back_go_with_the_next_one_after_the_period(ledger, webhook):
    """A failure after the period and before the periodic sum-up (review: the held count was
    lost then) is announced with the failures held back."""
    clock = Clock(1000.0)
    alerts = failure_alerts(ledger, webhook, clock, check_every=3600.0)  # no sum-up but at start
    async with running(alerts):
        fail_task(ledger)
        await eventually(lambda: len(webhook.requests) == 1)
        clock.now = 1100.0
        fail_task(ledger)
        fail_task(ledger)
        await eventually(lambda: alerts._job_failures[1].held == 2)  # internal: nothing else says so
        clock.now = 4700.0
        latest = fail_task(ledger, "the latest")
        await eventually(lambda: len(webhook.requests) == 2)
    assert webhook.texts[1].startswith(
        f"TriggerX: 3 more tasks of job 1 failed in 1 h 1 min\n\n3 more tasks of this job failed for "
        f"good since its last alert, 1 h 1 min ago (one alert per job per period). The latest, task {latest}:"
    )
    assert "Reason: the latest\n" in webhook.texts[1]


async def test_keeper_alerts_never_wait_behind_task_failures(ledger, webhook):
    """Each channel has a queue for each: a flood of failures, with the receiver stuck on the
    first, neither delays nor drops the keeper's alert."""
    webhook.hanging = True
    for job_id in range(2, 8):
        ledger.storage.jobs.put(msgspec.structs.replace(job_record(), id=job_id))
    tracker = HealthTracker(offline_after=15.0)
    alerts = Alerts(
        [WebhookChannel(webhook.url, 1, timeout=20)],
        ledger,
        tracker,
        keeper_offline_after=60.0,
        expected_keepers=lambda: [KEEPER],
        check_every=0.01,
        queue_size=2,
        clock=Clock(1000.0),
    )
    async with running(alerts):
        for job_id in range(1, 8):
            fail_task(ledger, job_id=job_id)
        await eventually(lambda: len(webhook.requests) == 1)  # the first failure, unanswered
        alerts.clock = Clock(1060.0)
        await eventually(lambda: len(webhook.requests) == 2)
        assert alerts.stats["webhook"].dropped == 4  # one in flight, two queued, four dropped
    assert webhook.texts[1].startswith(f"TriggerX: keeper {KEEPER} offline for 1 min 0 s")


# ---- Keepers ------------------------------------------------------------------------------


async def test_a_keeper_offline_past_the_threshold_is_announced_once_per_spell(ledger, webhook):
    clock = Clock(1000.0)
    tracker = HealthTracker(offline_after=15.0)
    tracker.heartbeat(KEEPER, PEER, at=1000.0)
    alerts = Alerts(
        [WebhookChannel(webhook.url, "@ops")],
        ledger,
        tracker,
        keeper_offline_after=60.0,
        expected_keepers=lambda: [KEEPER, OTHER_KEEPER],  # OTHER_KEEPER is never heard from
        check_every=0.01,
        clock=clock,
    )
    async with running(alerts):
        clock.now = 1074.0  # KEEPER offline since 1015 (59 s), OTHER_KEEPER since the start (74 s)
        await eventually(lambda: len(webhook.requests) == 1)
        clock.now = 1075.0  # KEEPER offline for 60 s
        await eventually(lambda: len(webhook.requests) == 2)
        clock.now = 5000.0
        await trio.sleep(0.2)  # many checks later: still one alert each
        assert len(webhook.requests) == 2
        tracker.heartbeat(KEEPER, PEER, at=5000.0)
        await eventually(lambda: len(webhook.requests) == 3)
        clock.now = 5074.0  # a new spell, offline since 5015: not yet
        await trio.sleep(0.1)
        assert len(webhook.requests) == 3
        clock.now = 5075.0
        await eventually(lambda: len(webhook.requests) == 4)
        await trio.sleep(0.1)
    assert [body["chat_id"] for _, _, body in webhook.requests] == ["@ops"] * 4
    assert webhook.texts == [
        f"TriggerX: keeper {OTHER_KEEPER} offline for 1 min 14 s\n\n"
        f"Keeper {OTHER_KEEPER} (peer unknown) is offline and gets no tasks.\n"
        "It has sent no heartbeat since the gateway started, at 1970-01-01 00:16:40 UTC.\n"
        "Alert threshold: 1 min 0 s. One alert per offline spell; another when it is back.",
        f"TriggerX: keeper {KEEPER} offline for 1 min 0 s\n\n"
        f"Keeper {KEEPER} (peer {PEER}) is offline and gets no tasks.\n"
        "Its last heartbeat was at 1970-01-01 00:16:40 UTC; offline since 1970-01-01 00:16:55 UTC.\n"
        "Alert threshold: 1 min 0 s. One alert per offline spell; another when it is back.",
        f"TriggerX: keeper {KEEPER} is back online\n\n"
        f"Keeper {KEEPER} sent a heartbeat at 1970-01-01 01:23:20 UTC, after 1 h 6 min offline.",
        f"TriggerX: keeper {KEEPER} offline for 1 min 0 s\n\n"
        f"Keeper {KEEPER} (peer {PEER}) is offline and gets no tasks.\n"
        "Its last heartbeat was at 1970-01-01 01:23:20 UTC; offline since 1970-01-01 01:23:35 UTC.\n"
        "Alert threshold: 1 min 0 s. One alert per offline spell; another when it is back.",
    ]


async def test_a_keeper_offline_in_real_time_is_emailed_once(ledger, smtp):
    tracker = HealthTracker(offline_after=0.2)
    tracker.heartbeat(KEEPER, PEER, at=time.time())
    alerts = Alerts([email_channel(smtp)], ledger, tracker, keeper_offline_after=1.0, check_every=0.05)
    async with running(alerts):
        await eventually(lambda: len(smtp.envelopes) == 1, timeout=5.0)
        await trio.sleep(0.5)
    [message] = smtp.messages()
    assert subject(message).startswith(f"TriggerX: keeper {KEEPER} offline for ")
    assert "One alert per offline spell" in message.get_content()


# ---- Receivers down or slow ---------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_receiver_that_is_down_gets_bounded_tries_then_the_alert_is_dropped(ledger):
    url = f"http://127.0.0.1:{closed_port()}/hook"
    alerts = Alerts(
        [WebhookChannel(url, 1)], ledger, HealthTracker(15.0), job_alert_every=0, attempts=3, backoff=0.05
    )
    started = trio.current_time()
    async with running(alerts):
        fail_task(ledger)
        fail_task(ledger)
        await eventually(lambda: alerts.stats["webhook"].failed == 2)
    stats = alerts.stats["webhook"]
    assert (stats.sent, stats.failed, stats.dropped) == (0, 2, 0)
    assert trio.current_time() - started >= 2 * (0.05 + 0.1)  # each alert waited 0.05 s, then 0.1 s


async def test_a_hanging_webhook_holds_up_neither_the_ledger_nor_the_email(ledger, webhook, smtp):
    webhook.hanging = True
    hook = WebhookChannel(webhook.url, 1, timeout=0.5)
    alerts = Alerts(
        [hook, email_channel(smtp)],
        ledger,
        HealthTracker(15.0),
        job_alert_every=0,
        queue_size=2,
        attempts=2,
        backoff=0.01,
    )
    async with running(alerts):
        for sent in range(1, 7):  # one failure after the other, each emailed before the next
            fail_task(ledger)
            await eventually(lambda sent=sent: len(smtp.envelopes) == sent)
        hooked = alerts.stats["webhook"]
        assert hooked.dropped >= 1  # one alert in flight and two queued: the rest dropped
        await eventually(lambda: hooked.failed + hooked.dropped == 6)
        await eventually(lambda: alerts.stats["email"].sent == 6)
    assert hooked.sent == 0
    assert len(webhook.requests) == 2 * hooked.failed  # two tries each, no more
    assert (alerts.stats["email"].sent, alerts.stats["email"].dropped) == (6, 0)


@pytest.mark.parametrize(
    ("replies", "tries", "sent"),
    [
        ([(500, {"ok": False})], 2, 1),  # a server error is retried
        ([(429, {"ok": False, "parameters": {"retry_after": 0.05}})], 2, 1),  # so is a rate limit
        ([(400, {"ok": False, "description": "Bad Request: chat not found"})], 1, 0),  # not a bad request
        ([(503, {})] * 3, 3, 0),  # at most `attempts` tries
    ],
)
async def test_which_answers_are_retried(ledger, webhook, replies, tries, sent):
    webhook.replies = list(replies)
    alerts = Alerts([WebhookChannel(webhook.url, 1)], ledger, HealthTracker(15.0), attempts=3, backoff=0.01)
    async with running(alerts):
        fail_task(ledger)
        await eventually(lambda: alerts.stats["webhook"].sent + alerts.stats["webhook"].failed == 1)
    assert len(webhook.requests) == tries
    assert len({json.dumps(body) for _, _, body in webhook.requests}) == 1  # the same alert each time
    assert alerts.stats["webhook"].sent == sent


# ---- Hostile text -------------------------------------------------------------------------


async def test_user_text_can_forge_no_header_line_or_recipient(ledger, webhook, smtp):
    ledger.storage.jobs.put(job_record(function="increment()\nOwner: 0xattacker"))
    reason = "execution reverted: boom\r\nBcc: evil@x\r\n\r\nforged body \u202etxt.exe" + "x" * 5000
    alerts = Alerts([WebhookChannel(webhook.url, 1), email_channel(smtp)], ledger, HealthTracker(15.0))
    async with running(alerts):
        fail_task(ledger, reason)
        await eventually(lambda: len(smtp.envelopes) == 1 and len(webhook.requests) == 1)
    [envelope] = smtp.envelopes
    assert envelope.rcpt_tos == RECIPIENTS
    raw = envelope.original_content.decode()  # type: ignore[union-attr]
    headers = raw.split("\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith("bcc") for line in headers.split("\r\n"))
    [message] = smtp.messages()
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"]
    assert "\r" not in message["Subject"]
    assert subject(message).startswith(
        "TriggerX: task 1 of job 1 failed: execution reverted: boom Bcc: evil@x"
    )
    for text in (body_of(message), webhook.texts[0].split("\n\n", 1)[1]):
        lines = text.split("\n")
        assert len(lines) == 6
        assert [line.split(":")[0] for line in lines[1:]] == [
            "Job",
            "Owner",
            "Reason",
            "Fired at",
            "Trace id",
        ]
        assert lines[1] == f"Job: 1: increment() Owner: 0xattacker on {TARGET}, interval trigger"
        assert lines[2] == f"Owner: {OWNER}"
        assert lines[3].startswith("Reason: execution reverted: boom Bcc: evil@x forged body txt.exe")
        assert len(lines[3]) == len("Reason: ") + 300
        assert lines[3].endswith("x…")
        assert "\u202e" not in text


# ---- Config -------------------------------------------------------------------------------

GATEWAY = """\
[node]
role = "gateway"

[chain]
rpc_url = "http://127.0.0.1:8545"

[keys]
operator_keystore = "operator.json"
operator_password_env = "OPERATOR_PASSWORD"
identity = "identity.key"

[genesis]
path = "genesis.json"
"""


def channels_of(tmp_path: Path, alerts: str, env: dict[str, str] | None = None) -> list[Any]:
    file = tmp_path / "gateway.toml"
    file.write_text(GATEWAY + ("\n[alerts]\n" + alerts if alerts else ""))
    return alert_channels(load_config(file, env or {}, {}), env or {})


def smtp_login(receiver: SmtpReceiver, password: str) -> str:
    """The [alerts] keys of email to `receiver` as user `gateway`, its `password` key given."""
    return (
        f'smtp_host = "127.0.0.1"\nsmtp_port = {receiver.port}\nsmtp_starttls = false\n'
        f'smtp_from = "{SENDER}"\nsmtp_to = ["ops@example.com"]\nsmtp_username = "gateway"\n{password}\n'
    )


def test_without_a_webhook_or_smtp_server_alerts_are_off(tmp_path):
    assert channels_of(tmp_path, "") == []
    assert channels_of(tmp_path, "keeper_offline_after_seconds = 60") == []


def test_the_webhook_can_come_from_the_environment(tmp_path):
    env = {"TRIGGERX_ALERTS_WEBHOOK_URL": "https://api.telegram.org/bot1:x/sendMessage"}
    [hook] = channels_of(tmp_path, 'webhook_chat_id = "-100123"', env)
    assert (hook.url, hook.chat_id, hook.target) == (
        env["TRIGGERX_ALERTS_WEBHOOK_URL"],
        -100123,
        "https://api.telegram.org",
    )
    [hook] = channels_of(tmp_path, 'webhook_chat_id = "@ops"', env)
    assert hook.chat_id == "@ops"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_email_alerts_log_in_with_the_password_from_its_file(tmp_path, ledger):
    (tmp_path / "smtp-password").write_text("s3cret\n")
    with SmtpReceiver(login=("gateway", "s3cret")) as receiver:
        channels = channels_of(tmp_path, smtp_login(receiver, 'smtp_password_file = "smtp-password"'))
        alerts = Alerts(channels, ledger, HealthTracker(15.0))
        async with running(alerts):
            fail_task(ledger)
            await eventually(lambda: len(receiver.envelopes) == 1)
    assert receiver.envelopes[0].rcpt_tos == ["ops@example.com"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_a_wrong_smtp_password_is_not_retried(tmp_path, ledger):
    with SmtpReceiver(login=("gateway", "s3cret")) as receiver:
        password = 'smtp_password_env = "SMTP_PASSWORD"'
        channels = channels_of(tmp_path, smtp_login(receiver, password), {"SMTP_PASSWORD": "wrong"})
        alerts = Alerts(channels, ledger, HealthTracker(15.0), backoff=5.0)
        async with running(alerts):
            fail_task(ledger)
            await eventually(lambda: alerts.stats["email"].failed == 1, timeout=4.0)  # no 5 s backoff
    assert receiver.envelopes == []


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        (
            'webhook_url = "ftp://x"',
            "alerts.webhook_url: expected an http(s) URL, got 'ftp://x' (from file {file})",
        ),
        (
            "job_alert_every_seconds = -1",
            "alerts.job_alert_every_seconds: expected `float` >= 0.0 (from file {file})",
        ),
        (
            'webhook_url = "https://hooks.example/alert"',
            "alerts.webhook_chat_id: missing; alerts.webhook_url (from file {file}) needs it",
        ),
        (
            "webhook_chat_id = 5",
            "alerts.webhook_url: missing; alerts.webhook_chat_id (from file {file}) needs it",
        ),
        (
            'webhook_url = "https://hooks.example/alert"\nwebhook_chat_id = "a b"',
            "alerts.webhook_chat_id: expected a chat id, got 'a b' (from file {file})",
        ),
        (
            'smtp_host = "smtp.example.com"\nsmtp_from = "gw@example.com"',
            "alerts.smtp_to: missing; alerts.smtp_host (from file {file}) needs it",
        ),
        (
            'smtp_to = ["ops@example.com"]',
            "alerts.smtp_host: missing; alerts.smtp_to (from file {file}) needs it",
        ),
        (
            'smtp_host = "smtp.example.com:587"',
            "alerts.smtp_host: expected a host name or IP address, got 'smtp.example.com:587' "
            "(from file {file})",
        ),
        (
            'smtp_to = ["ops@example.com", "ops"]',
            "alerts.smtp_to[1]: expected an email address (name@example.com), got 'ops' (from file {file})",
        ),
        (
            'smtp_from = "Ops <ops@example.com>"',
            "alerts.smtp_from: expected an email address (name@example.com), got 'Ops <ops@example.com>' "
            "(from file {file})",
        ),
        ("smtp_port = 0", "alerts.smtp_port: expected a port in [1, 65535], got 0 (from file {file})"),
        (
            'smtp_username = "gw"',
            "alerts.smtp_password_file or alerts.smtp_password_env: missing; "
            "alerts.smtp_username needs a password",
        ),
        (
            'smtp_host = "smtp.example.com"\nsmtp_from = "gw@example.com"\nsmtp_to = ["ops@example.com"]\n'
            'smtp_username = "gw"\nsmtp_password_env = "NOT_SET"',
            "alerts.smtp_password_env: environment variable NOT_SET is not set (from file {file})",
        ),
        (
            'smtp_host = "smtp.example.com"\nsmtp_from = "gw@example.com"\nsmtp_to = ["ops@example.com"]\n'
            'smtp_username = "gw"\nsmtp_password_file = "missing"',
            "alerts.smtp_password_file: cannot read {dir}/missing: No such file or directory "
            "(from file {file})",
        ),
        (
            'smtp_password_file = "pw"',
            "alerts.smtp_username: missing; alerts.smtp_password_file (from file {file}) needs it",
        ),
        (
            "keeper_offline_after_seconds = -1",
            "alerts.keeper_offline_after_seconds: expected 0 or more seconds, got -1.0 (from file {file})",
        ),
    ],
)
def test_a_bad_alerts_section_is_one_line_naming_the_key(tmp_path, alerts, message):
    with pytest.raises(ConfigError) as caught:
        channels_of(tmp_path, alerts)
    assert str(caught.value) == message.format(file=tmp_path / "gateway.toml", dir=tmp_path)
