"""Where alerts go: a webhook in the Telegram Bot API sendMessage shape, and email over SMTP;
`alert_channels` builds them from the `[alerts]` config."""

from __future__ import annotations

import logging
import math
import os
import re
import smtplib
import socket
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import trio

from gateway.alerts.messages import Alert, clean
from node.config import Config, ConfigError

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 60.0  # the longest a receiver's retry_after is honoured
WEBHOOK_TIMEOUT = 10.0  # seconds per webhook try
SMTP_TIMEOUT = 30.0  # seconds per email try: connect, STARTTLS, login, send
_INTEGER = re.compile(r"-?[0-9]{1,20}")


class DeliveryError(Exception):
    """A channel could not deliver an alert; `retry` says whether another try may succeed,
    `after` how long the receiver asked us to wait first."""

    def __init__(self, problem: str, *, retry: bool = True, after: float | None = None) -> None:
        super().__init__(problem)
        self.retry = retry
        self.after = after


class AlertChannel(Protocol):
    """Where alerts go: `send` delivers one or raises DeliveryError; `aclose` frees what it holds.
    `target` names the receiver in logs (never a secret)."""

    name: str
    target: str

    async def send(self, alert: Alert) -> None: ...

    async def aclose(self) -> None: ...


class WebhookChannel:
    """POSTs each alert as Telegram Bot API sendMessage JSON to `url`."""

    name = "webhook"

    def __init__(self, url: str, chat_id: int | str, *, timeout: float = WEBHOOK_TIMEOUT) -> None:
        self.url = url
        self.chat_id = chat_id
        self.timeout = timeout
        parts = urlsplit(url)
        self.target = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # no path: it holds the token
        self._client: httpx.AsyncClient | None = None

    def payload(self, alert: Alert) -> dict[str, Any]:
        """The JSON body for `alert`."""
        return {"chat_id": self.chat_id, "text": alert.text, "disable_web_page_preview": True}

    async def send(self, alert: Alert) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        try:
            with trio.fail_after(self.timeout):
                response = await self._client.post(self.url, json=self.payload(alert))
        except trio.TooSlowError:
            raise DeliveryError(f"no answer within {self.timeout:g} s") from None
        except httpx.HTTPError as error:
            raise DeliveryError(self._redact(f"{type(error).__name__}: {error}")) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        problem = f"HTTP {status}" + self._description(response)
        if status == 429 or status == 408 or status >= 500:
            raise DeliveryError(problem, after=self._retry_after(response))
        raise DeliveryError(problem, retry=False)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _redact(self, text: str) -> str:
        path = urlsplit(self.url).path
        return text.replace(self.url, self.target).replace(path, "/…") if path not in ("", "/") else text

    @staticmethod
    def _description(response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return ""
        described = isinstance(body, dict) and isinstance(body.get("description"), str)
        return f": {clean(body['description'])}" if described else ""

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        """How long the receiver asks us to wait: Telegram's `parameters.retry_after`, or a
        Retry-After header in seconds; at most MAX_RETRY_AFTER."""
        after: Any = response.headers.get("retry-after")
        try:
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("parameters"), dict):
                after = body["parameters"].get("retry_after", after)
        except ValueError:
            pass
        try:
            seconds = float(after)
        except (TypeError, ValueError):
            return None
        return min(seconds, MAX_RETRY_AFTER) if math.isfinite(seconds) and seconds >= 0 else None


class EmailChannel:
    """Sends each alert as one email through an SMTP server (smtplib, in a worker thread)."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        timeout: float = SMTP_TIMEOUT,
    ) -> None:
        self.host = host.removeprefix("[").removesuffix("]")  # an IPv6 address, written [::1]
        self.port = port
        self.sender = sender
        self.recipients = list(recipients)
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.target = f"{host}:{port}"
        # One SMTP conversation at a time: a try given up on keeps its thread (and this) until
        # its socket times out, so stuck tries never pile up threads.
        self._limiter = trio.CapacityLimiter(1)
        self._local_hostname: str | None = None  # the EHLO name, looked up once (in the thread)

    def message(self, alert: Alert) -> EmailMessage:
        """The email for `alert`."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Subject"] = alert.subject  # one line (`clean`); the header refuses CR and LF anyway
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(alert.body)
        return message

    async def send(self, alert: Alert) -> None:
        message = self.message(alert)
        try:
            with trio.fail_after(self.timeout):
                refused = await trio.to_thread.run_sync(
                    self._send_now, message, abandon_on_cancel=True, limiter=self._limiter
                )
        except trio.TooSlowError:
            raise DeliveryError(f"no answer within {self.timeout:g} s") from None
        except smtplib.SMTPNotSupportedError as error:
            raise DeliveryError(f"{self.target}: {error}", retry=False) from None
        except smtplib.SMTPRecipientsRefused as error:
            raise DeliveryError(
                f"{self.target} refused every recipient: {error.recipients}", retry=False
            ) from None
        except smtplib.SMTPResponseException as error:
            reply = clean(
                error.smtp_error.decode("utf-8", "replace") if isinstance(error.smtp_error, bytes) else ""
            )
            raise DeliveryError(
                f"{self.target}: {error.smtp_code} {reply}", retry=error.smtp_code < 500
            ) from None
        except ssl.SSLCertVerificationError as error:
            raise DeliveryError(f"{self.target}: {error.verify_message}", retry=False) from None
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"{self.target}: {type(error).__name__}: {error}") from None
        if refused:
            log.warning("email alert: %s refused %s", self.target, ", ".join(refused))

    async def aclose(self) -> None:
        pass

    def _send_now(self, message: EmailMessage) -> dict[str, Any]:
        if self._local_hostname is None:
            self._local_hostname = socket.getfqdn()
        with smtplib.SMTP(self.host, self.port, self._local_hostname, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username is not None:
                smtp.login(self.username, self.password or "")
            # The envelope's recipients are the configured ones, never read from the headers.
            return smtp.send_message(message, from_addr=self.sender, to_addrs=self.recipients)


def alert_channels(config: Config, environ: Mapping[str, str] | None = None) -> list[AlertChannel]:
    """The channels `config`'s [alerts] section sets up (none: alerts off), its password read
    from its file or from `environ` (default: the process environment); ConfigError naming the
    key when a setting is missing, out of range or unreadable."""
    environ = os.environ if environ is None else environ
    alerts = config.settings.alerts
    channels: list[AlertChannel] = []
    _needs(config, "alerts.webhook_url", "alerts.webhook_chat_id")
    _needs(config, "alerts.webhook_chat_id", "alerts.webhook_url")
    if alerts.webhook_url is not None and alerts.webhook_chat_id is not None:
        chat_id = alerts.webhook_chat_id
        if isinstance(chat_id, str):
            if not chat_id or len(chat_id) > 128 or clean(chat_id, 128) != chat_id or " " in chat_id:
                raise config.error("alerts.webhook_chat_id", f"expected a chat id, got {chat_id!r}")
            chat_id = int(chat_id) if _INTEGER.fullmatch(chat_id) else chat_id
        channels.append(WebhookChannel(alerts.webhook_url, chat_id))
    smtp_keys = ("alerts.smtp_host", "alerts.smtp_from", "alerts.smtp_to")
    for key in (*smtp_keys, "alerts.smtp_username"):
        for needed in smtp_keys:
            _needs(config, key, needed)
    for key in ("alerts.smtp_password_file", "alerts.smtp_password_env"):
        _needs(config, key, "alerts.smtp_username")
    if not 1 <= alerts.smtp_port <= 65535:
        raise config.error("alerts.smtp_port", f"expected a port in [1, 65535], got {alerts.smtp_port}")
    if alerts.smtp_host is not None:
        channels.append(
            EmailChannel(
                alerts.smtp_host,
                alerts.smtp_port,
                alerts.smtp_from or "",
                list(alerts.smtp_to),
                username=alerts.smtp_username,
                password=config.secret("alerts.smtp_password_file", "alerts.smtp_password_env", environ),
                starttls=alerts.smtp_starttls,
            )
        )
    seconds = alerts.keeper_offline_after_seconds
    if not (math.isfinite(seconds) and seconds >= 0):
        raise config.error(
            "alerts.keeper_offline_after_seconds", f"expected 0 or more seconds, got {seconds}"
        )
    return channels


def _given(config: Config, key: str) -> bool:
    value = config.value(key)
    return value is not None and value != []


def _needs(config: Config, key: str, needed: str) -> None:
    if _given(config, key) and not _given(config, needed):
        raise ConfigError(f"{needed}: missing; {key} ({config.origins[key]}) needs it")
