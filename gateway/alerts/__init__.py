"""Alerts to the gateway's operator: a task that failed for good, a keeper offline too long.

Setting them up
---------------
The `[alerts]` section of the gateway's config (each key also has its environment variable and
flag, node/config/schema.py). Alerts are off unless a webhook or an SMTP server is set; either
or both may be:

    [alerts]
    webhook_url = "https://api.telegram.org/bot<token>/sendMessage"  # or TRIGGERX_ALERTS_WEBHOOK_URL
    webhook_chat_id = -1001234567890
    smtp_host = "smtp.example.com"
    smtp_port = 587                        # STARTTLS (smtp_starttls = true, the default)
    smtp_from = "gateway@example.com"
    smtp_to = ["ops@example.com", "oncall@example.com"]
    smtp_username = "gateway@example.com"  # optional; then one of:
    smtp_password_file = "smtp-password"   #   smtp_password_env = "SMTP_PASSWORD"
    keeper_offline_after_seconds = 600     # the default; 0 turns keeper alerts off
    job_alert_every_seconds = 3600         # the default; 0: an alert for every failure

The webhook URL holds the bot token: give it in TRIGGERX_ALERTS_WEBHOOK_URL rather than the
file. The gateway never logs more of it than the scheme and host. A bad setting stops the
gateway at start with one line naming the key (`alert_channels`).

What is sent
------------
- Task failed: once for each task that becomes `failed` (gateway/ledger.py), naming the task,
  the job (its id, function, target and trigger kind), the owner, the reason, the fire time and
  the number of attempts. A failed task that completes later (a late approval) is not
  announced again. At most one such alert per job per `job_alert_every_seconds`: a job
  failing every minute (its target reverts, its owner's balance ran out) would otherwise
  bury every other alert. The failures held back are summed up in one alert (their number,
  and the latest in full) when the period is up.
- Keeper offline: once per offline spell, when a keeper has been offline for
  `keeper_offline_after_seconds`, counted from the moment it went offline (its last heartbeat
  plus the genesis' `offlineAfterSeconds`, as GET /api/keepers judges it). An active operator
  never heard from since the gateway started counts as offline since the start. Checked every
  15 s.
- Keeper back: once, when a keeper that was announced offline sends a heartbeat again; the
  next spell gets its own alert.

Webhook: a POST of `{"chat_id": <webhook_chat_id>, "text": <alert>, "disable_web_page_preview":
true}`, the Telegram Bot API's sendMessage (any receiver that takes this JSON works). A chat id
written as an integer, or as text that is one, is sent as a JSON number. No `parse_mode`: the
text is plain, so nothing a user wrote can turn into markup (Telegram still shows URLs,
@mentions and /commands in it as links). Email: one message
per alert to every `smtp_to` (From `smtp_from`, Subject the alert's first line, plain-text
UTF-8 body, `Auto-Submitted: auto-generated`), through `smtp_host` with STARTTLS and the
certificate checked (unless `smtp_starttls = false`, for a trusted local relay).

Delivery never holds up the gateway: each channel has two queues of 100 alerts, one for task
failures and one for keepers each with its own sender task: a flood of failures never drops a
keeper alert, nor queues it behind them (on email, which sends one message at a time, it waits
at most for the try in flight). When a queue is full, new alerts for it are dropped and
counted, with one warning per overflow. Each alert is tried at most 4 times (10 s per webhook
try, 30 s per email try) with 1 s, 2 s and 4 s between tries (a 429 answer's `retry_after`, up
to 60 s, instead). Then it is dropped and counted. An answer that retrying cannot change (a
4xx other than 408 and 429, a 5xx SMTP reply, a refused certificate) is not retried.
`Alerts.stats` holds the counts.

Job functions, targets and failure reasons (which may quote a contract's revert reason) come
from users. Each field of an alert is cut to one line of at most 200 characters (the reason
300), and control and format characters (CR, LF, bidi overrides...) become spaces. So no field
can forge a line of the alert, a Subject can hold no line break (no header injection), and
the recipients are the configured ones, never read from the message.

Alerts live in memory: after a restart, a keeper still offline is announced again, and a
failure that happened while the gateway was stopping may go unannounced.
"""

from gateway.alerts.channels import AlertChannel, DeliveryError, EmailChannel, WebhookChannel, alert_channels
from gateway.alerts.messages import Alert
from gateway.alerts.service import Alerts, ChannelStats

__all__ = [
    "Alert",
    "AlertChannel",
    "Alerts",
    "ChannelStats",
    "DeliveryError",
    "EmailChannel",
    "WebhookChannel",
    "alert_channels",
]
