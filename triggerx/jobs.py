"""Jobs as a developer writes them: `Job.interval(...)`, `Job.cron(...)`, `Job.at(...)`,
`Job.on_event(...)`, `Job.when(...)`, and `Job.after_previous(...)` in a linked chain.

A `Job` is what a job does; `Client.create` gives it its owner, a fresh nonce and an expiry,
and signs the owner's consent with the gateway's own code (gateway.jobs.sign_job), so what the
SDK signs is what the gateway and the hub check. The trigger kinds' fields are in
docs/architecture.md and the gateway's OpenAPI document (`/docs`).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import msgspec
from eth_account.signers.local import LocalAccount

from gateway.jobs import JobSpec, JobSpecError, ScriptSpec, sign_job
from protocol.calldata import CalldataError
from protocol.jobs import job_id_of
from protocol.triggers.base import CatchUp
from triggerx.errors import InvalidRequestError

CONSENT_SECONDS = 7 * 86_400  # how long a new job's consent may register it, by default


@dataclass(frozen=True)
class Script:
    """A script that computes a job's arguments each time it fires: its CID (from
    `Client.upload_script`), its language, the web hosts it may fetch from, and the chain
    values its input carries (`name = kind args`, as a condition job's values)."""

    cid: str
    language: Literal["python", "javascript"] = "python"
    hosts: Sequence[str] = ()
    values: Sequence[str] = ()

    def spec(self) -> ScriptSpec:
        """The script as a job names it."""
        return ScriptSpec(self.cid, self.language, list(self.hosts), list(self.values))


@dataclass(frozen=True)
class Job:
    """A job: call `function` (its signature, e.g. `"incrementBy(uint256)"`) on `target` with
    `args` (or with what `script` prints) whenever its trigger (`kind` and its `schedule`)
    fires, spending at most `gas_limit` gas and `max_fee_per_task` wei a task (None: the
    gateway's suggested maximum, estimated when the job is created)."""

    kind: str
    schedule: dict[str, Any]
    target: str
    function: str
    args: Sequence[Any] = ()
    script: Script | None = None
    gas_limit: int = 200_000
    max_fee_per_task: int | None = None
    follows_previous: bool = field(default=False, repr=False)  # in a chain: fired by the job before it

    @classmethod
    def interval(
        cls,
        target: str,
        function: str,
        *,
        every_seconds: int,
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        catch_up: CatchUp = "once",
        **call: Any,
    ) -> Job:
        """Fire every `every_seconds`, from `start` (default: now) until `end` (default: never)."""
        return cls(
            "interval", _time_spec(start, end, catch_up, everySeconds=every_seconds), target, function, **call
        )

    @classmethod
    def cron(
        cls,
        target: str,
        function: str,
        *,
        expression: str,
        timezone: str = "UTC",
        start: int | datetime | None = None,
        end: int | datetime | None = None,
        catch_up: CatchUp = "once",
        **call: Any,
    ) -> Job:
        """Fire on a cron `expression` (five fields, or six with seconds) in `timezone` (IANA)."""
        schedule = _time_spec(start, end, catch_up, cron=expression, timezone=timezone)
        return cls("cron", schedule, target, function, **call)

    @classmethod
    def at(cls, target: str, function: str, *, times: Sequence[int | datetime], **call: Any) -> Job:
        """Fire once at each of `times` (unix seconds or aware datetimes)."""
        return cls("specific", {"times": sorted(_seconds(t) for t in times)}, target, function, **call)

    @classmethod
    def on_event(
        cls,
        target: str,
        function: str,
        *,
        chain_id: int,
        contracts: Sequence[str],
        event: str,
        where: Sequence[str] = (),
        confirmations: int | None = None,
        **call: Any,
    ) -> Job:
        """Fire on each log of `event` (its declaration, e.g. `"Transfer(address indexed from,
        address indexed to, uint256 value)"`) emitted by `contracts` on `chain_id` that meets
        every condition in `where` (e.g. `"to == 0x…"`), once it has `confirmations` blocks."""
        schedule: dict[str, Any] = {"chainId": chain_id, "addresses": list(contracts), "event": event}
        schedule |= {"where": list(where)} if where else {}
        schedule |= {} if confirmations is None else {"confirmations": confirmations}
        return cls("event", schedule, target, function, **call)

    @classmethod
    def when(
        cls,
        target: str,
        function: str,
        *,
        chain_id: int,
        values: Sequence[str],
        condition: str,
        confirmations: int | None = None,
        cooldown_seconds: int = 0,
        **call: Any,
    ) -> Job:
        """Fire when `condition` (e.g. `"v0 > 10**18"`) over the named chain or web `values`
        (e.g. `"v0 = balance(0x…)"`) turns true, at most once per `cooldown_seconds`."""
        schedule: dict[str, Any] = {"chainId": chain_id, "values": list(values), "when": condition}
        schedule |= {} if confirmations is None else {"confirmations": confirmations}
        schedule |= {"cooldownSeconds": cooldown_seconds} if cooldown_seconds else {}
        return cls("condition", schedule, target, function, **call)

    @classmethod
    def after(cls, target: str, function: str, *, chain_job_id: int, **call: Any) -> Job:
        """Fire after each completed task of the existing job `chain_job_id` (its `chainJobId`)."""
        return cls("after", {"jobId": str(chain_job_id)}, target, function, **call)

    @classmethod
    def after_previous(cls, target: str, function: str, **call: Any) -> Job:
        """In `Client.create_chain`: fire after each completed task of the job before this one."""
        return cls("after", {}, target, function, follows_previous=True, **call)

    def spec(self, owner: str, nonce: int, expiry: int, max_fee_per_task: int) -> JobSpec:
        """The job as the API takes it, for `owner`'s job number `nonce`."""
        return JobSpec(
            owner=owner,
            nonce=str(nonce),
            expiry=expiry,
            target=self.target,
            function=self.function,
            schedule_type=self.kind,
            schedule=self.schedule,
            max_fee_per_task=str(max_fee_per_task),
            args=list(self.args),
            gas_limit=self.gas_limit,
            script=None if self.script is None else self.script.spec(),
        )

    def following(self, chain_job_id: int) -> Job:
        """This `after_previous` job, fired by job `chain_job_id`."""
        return replace(self, schedule={"jobId": str(chain_job_id)}, follows_previous=False)


@dataclass(frozen=True)
class SignedJob:
    """A job ready to send: the body entry of POST /api/jobs, and its id on chain."""

    body: dict[str, Any]
    chain_job_id: int


def sign(job: Job, owner: LocalAccount, chain_id: int, hub: str, max_fee_per_task: int) -> SignedJob:
    """`job` for `owner`, with a fresh random nonce and a consent valid for CONSENT_SECONDS,
    signed for the hub at `hub` on `chain_id`; InvalidRequestError (400, as the gateway would
    answer) for a job that cannot be signed."""
    nonce = secrets.randbits(64)
    spec = job.spec(owner.address, nonce, int(time.time()) + CONSENT_SECONDS, max_fee_per_task)
    try:  # what cannot be signed is what the gateway would refuse, with the same field
        spec = msgspec.convert(msgspec.to_builtins(spec), JobSpec)  # the API's own bounds and patterns
        signature = sign_job(spec, owner, chain_id, hub)
    except msgspec.ValidationError as error:
        problem, _, at = str(error).partition(" - at `$")
        raise InvalidRequestError(400, problem, "$.job" + at.rstrip("`")) from None
    except JobSpecError as error:
        raise InvalidRequestError(400, error.problem, error.field) from None
    except CalldataError as error:
        raise InvalidRequestError(400, error.problem, f"$.job.{error.field}") from None
    except ValueError as error:  # anything else the signing code cannot encode
        raise InvalidRequestError(400, str(error), "$.job") from None
    return SignedJob(
        {"job": msgspec.to_builtins(spec), "signature": signature}, job_id_of(owner.address, nonce)
    )


def _seconds(moment: int | datetime) -> int:
    """Unix seconds of `moment` (a datetime must say its time zone)."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            raise ValueError(f"{moment!r} has no time zone: say which (e.g. tzinfo=timezone.utc)")
        return int(moment.timestamp())
    return int(moment)


def _time_spec(
    start: int | datetime | None, end: int | datetime | None, catch_up: CatchUp, **fields: Any
) -> dict[str, Any]:
    """A time kind's schedule: its own `fields`, then the optional `start`, `end` and catch-up policy."""
    schedule = dict(fields)
    schedule |= {} if start is None else {"start": _seconds(start)}
    schedule |= {} if end is None else {"end": _seconds(end)}
    schedule |= {} if catch_up == "once" else {"catchUp": catch_up}
    return schedule
