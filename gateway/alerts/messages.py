"""The alerts' text: what each alert says, every user-supplied field cut to one safe line."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.records import JobRecord, TaskRecord

log = logging.getLogger(__name__)

FIELD_LIMIT = 200  # characters of one field of an alert (a function, a target, an owner...)
REASON_LIMIT = 300
SUBJECT_LIMIT = 160
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})  # controls, format, separators...


@dataclass(frozen=True)
class Alert:
    """One message: `subject` is one line, `body` lines of text."""

    subject: str
    body: str

    @property
    def text(self) -> str:
        """The subject and the body, as a chat message."""
        return f"{self.subject}\n\n{self.body}"


def clean(value: object, limit: int = FIELD_LIMIT) -> str:
    """`value` as one line of at most `limit` characters: control, format and line-separator
    characters become spaces, runs of spaces one; a cut text ends in "…"."""
    text = str(value)[: limit * 4]  # bound the work on any input
    text = "".join(" " if unicodedata.category(char) in _UNSAFE else char for char in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """`seconds` for people: "2 h 5 min", "3 min 20 s", "40 s"."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _alert(subject: str, lines: Iterable[str]) -> Alert:
    return Alert(clean(subject, SUBJECT_LIMIT), "\n".join(lines))


def task_failed_alert(
    task: TaskRecord, job: JobRecord | None, *, held: int = 0, period: float = 0.0
) -> Alert:
    """The alert for `task` (of `job`, if still stored) having failed for good; with `held`,
    the sum of that many failures of the job held back over the last `period` seconds (one
    alert per job per period), the latest being `task`."""
    reason = clean(task.reason or "no reason recorded", REASON_LIMIT)
    if job is None:
        what, owner = "(not found)", "unknown"
    else:
        spec = job.spec
        what = f"{clean(spec.function)} on {clean(spec.target)}, {clean(spec.schedule_type, 40)} trigger"
        owner = clean(job.owner)
    if held:
        tasks = "1 more task" if held == 1 else f"{held} more tasks"
        subject = f"TriggerX: {tasks} of job {task.job_id} failed in {duration(period)}"
        first = (
            f"{tasks} of this job failed for good since its last alert, {duration(period)} ago "
            f"(one alert per job per period). The latest, task {task.id}:"
        )
    else:
        subject = f"TriggerX: task {task.id} of job {task.job_id} failed: {clean(reason, 80)}"
        first = f"Task {task.id} failed for good."
    return _alert(
        subject,
        [
            first,
            f"Job: {task.job_id}: {what}",
            f"Owner: {owner}",
            f"Reason: {reason}",
            f"Fired at: {_utc(task.fire_at)}; attempts: {len(task.attempts)}",
            f"Trace id: {clean(task.trace_id, 64)}",
        ],
    )


def keeper_offline_alert(
    address: str, peer_id: str | None, last_seen: float | None, since: float, now: float, threshold: float
) -> Alert:
    """The alert for keeper `address` offline since `since` (`last_seen` None: never heard
    from since the gateway started at `since`)."""
    keeper = clean(address, 64)
    heard = (
        f"It has sent no heartbeat since the gateway started, at {_utc(since)}."
        if last_seen is None
        else f"Its last heartbeat was at {_utc(last_seen)}; offline since {_utc(since)}."
    )
    return _alert(
        f"TriggerX: keeper {keeper} offline for {duration(now - since)}",
        [
            f"Keeper {keeper} (peer {clean(peer_id or 'unknown', 64)}) is offline and gets no tasks.",
            heard,
            f"Alert threshold: {duration(threshold)}. One alert per offline spell; another when it is back.",
        ],
    )


def keeper_back_alert(address: str, since: float, back_at: float) -> Alert:
    """The alert for keeper `address`, offline since `since`, heard from again at `back_at`."""
    keeper = clean(address, 64)
    return _alert(
        f"TriggerX: keeper {keeper} is back online",
        [f"Keeper {keeper} sent a heartbeat at {_utc(back_at)}, after {duration(back_at - since)} offline."],
    )
