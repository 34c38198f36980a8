"""`triggerx-node jobs create|list|show|cancel|tasks|watch`: jobs through a gateway, on the SDK
(triggerx). Where the gateway and the owner's key come from: node.commands.client_options."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from gateway.api.views import JobsPage, JobView, TasksPage, TaskView
from node.commands import CommandError
from node.commands.client_options import add_client_options, as_json, run_with_client
from triggerx import Client, Job, Script

FINAL = ("completed", "failed")


def add_jobs_command(commands: argparse._SubParsersAction) -> None:
    """The `jobs` command and its actions."""
    jobs = commands.add_parser("jobs", help="create, list, show, cancel and watch jobs through a gateway")
    actions = jobs.add_subparsers(dest="jobs_action", metavar="action", required=True)
    create = actions.add_parser("create", help="create a job (one trigger kind per sub-command)")
    kinds = create.add_subparsers(dest="kind", metavar="kind", required=True)
    for kind, what in (
        ("interval", "every N seconds"),
        ("cron", "on a cron expression"),
        ("at", "once at each given time"),
        ("event", "on a contract's event"),
        ("condition", "when a condition over chain or web values turns true"),
    ):
        parser = kinds.add_parser(kind, help=what)
        _add_call_options(parser)
        add_client_options(parser)
    kinds.choices["interval"].add_argument("--every", type=int, required=True, metavar="SECONDS")
    kinds.choices["cron"].add_argument("--expression", required=True, help="five fields, or six with seconds")
    kinds.choices["cron"].add_argument("--timezone", default="UTC", help="an IANA zone (default: UTC)")
    for kind in ("interval", "cron"):
        kinds.choices[kind].add_argument("--end", type=int, metavar="UNIX", help="fire no more after this")
    kinds.choices["at"].add_argument("--time", type=int, action="append", required=True, metavar="UNIX")
    for kind in ("event", "condition"):
        kinds.choices[kind].add_argument("--chain-id", type=int, required=True)
        kinds.choices[kind].add_argument("--confirmations", type=int)
    kinds.choices["event"].add_argument("--contract", action="append", required=True, metavar="ADDRESS")
    kinds.choices["event"].add_argument("--event", required=True, help="its declaration, with names")
    kinds.choices["event"].add_argument("--where", action="append", default=[], metavar="CONDITION")
    kinds.choices["condition"].add_argument(
        "--value", action="append", required=True, metavar="NAME = SOURCE"
    )
    kinds.choices["condition"].add_argument("--when", required=True, metavar="EXPRESSION")
    listing = actions.add_parser("list", help="jobs, filtered")
    listing.add_argument("--owner", help="only this owner's (default: all)")
    listing.add_argument("--status", choices=("active", "paused", "ended", "deleted"))
    listing.add_argument("--kind", help="only this trigger kind")
    listing.add_argument("--limit", type=int, default=50)
    add_client_options(listing)
    for action, what in (
        ("show", "one job"),
        ("cancel", "cancel a job (its owner's key signs)"),
        ("tasks", "a job's tasks"),
        ("watch", "follow a job's tasks as they run"),
    ):
        parser = actions.add_parser(action, help=what)
        parser.add_argument("job_id", type=int, metavar="JOB_ID")
        add_client_options(parser)
    actions.choices["watch"].add_argument(
        "--tasks", type=int, metavar="N", help="stop once N tasks have finished (default: until Ctrl-C)"
    )


def _add_call_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, metavar="ADDRESS", help="the contract each task calls")
    parser.add_argument("--function", required=True, help="its signature, e.g. 'incrementBy(uint256)'")
    parser.add_argument("--args", default="[]", metavar="JSON", help="its arguments, a JSON array")
    parser.add_argument("--script", type=Path, metavar="FILE", help="a script that prints the arguments")
    parser.add_argument("--language", choices=("python", "javascript"), default="python")
    parser.add_argument("--gas-limit", type=int, default=200_000)
    parser.add_argument(
        "--max-fee", type=int, metavar="WEI", help="per task (default: the gateway's suggestion)"
    )


def run_jobs(args: argparse.Namespace) -> int:
    """Run a `jobs` action; its exit code."""
    if args.jobs_action == "watch":
        return run_with_client(args, lambda client: _watch(client, args), None)
    action, show = {
        "create": (lambda client: client.create(_job(args, client)), _job_text),
        "list": (lambda client: _list(client, args), _jobs_text),
        "show": (lambda client: client.job(args.job_id), _job_text),
        "cancel": (lambda client: client.cancel(args.job_id), _job_text),
        "tasks": (lambda client: client.tasks(args.job_id), _tasks_text),
    }[args.jobs_action]
    return run_with_client(args, action, show)


def _job(args: argparse.Namespace, client: Client) -> Job:
    """The job the `create` flags describe (a script is uploaded first)."""
    try:
        call_args = json.loads(args.args)
    except ValueError as error:
        raise CommandError(f"--args: not JSON: {error}") from None
    if not isinstance(call_args, list):
        raise CommandError("--args: a JSON array, e.g. '[1, \"0x…\"]'")
    script = None
    if args.script is not None:
        try:
            source = args.script.read_bytes()
        except OSError as error:
            raise CommandError(f"--script: cannot read {args.script}: {error.strerror}") from None
        script = Script(client.upload_script(source), args.language)
    call: dict[str, Any] = {
        "args": call_args,
        "script": script,
        "gas_limit": args.gas_limit,
        "max_fee_per_task": args.max_fee,
    }
    target, function = args.target, args.function
    if args.kind == "interval":
        return Job.interval(target, function, every_seconds=args.every, end=args.end, **call)
    if args.kind == "cron":
        return Job.cron(
            target, function, expression=args.expression, timezone=args.timezone, end=args.end, **call
        )
    if args.kind == "at":
        return Job.at(target, function, times=args.time, **call)
    if args.kind == "event":
        return Job.on_event(
            target,
            function,
            chain_id=args.chain_id,
            contracts=args.contract,
            event=args.event,
            where=args.where,
            confirmations=args.confirmations,
            **call,
        )
    return Job.when(
        target,
        function,
        chain_id=args.chain_id,
        values=args.value,
        condition=args.when,
        confirmations=args.confirmations,
        **call,
    )


def _list(client: Client, args: argparse.Namespace) -> JobsPage:
    return client.jobs(owner=args.owner, status=args.status, kind=args.kind, limit=args.limit)


def _watch(client: Client, args: argparse.Namespace) -> int:
    """Print each task event as it comes (a line, or a JSON document with --json) until
    `args.tasks` tasks have finished (those finished before the watch count: the snapshot
    shows them); how many did."""
    finished: set[int] = set()
    for event in client.watch(args.job_id):
        line = as_json(event) if args.json else _event_text(event.type, event.task, event.previous_status)
        print(line, flush=True)
        if event.task.status in FINAL:
            finished.add(event.task.id)
        if args.tasks is not None and len(finished) >= args.tasks:
            break
    return len(finished)


def _event_text(kind: str, task: TaskView, previous: str | None) -> str:
    """One line for a task event: when, which task, its status change and what it shows."""
    change = task.status if previous is None or previous == task.status else f"{previous} → {task.status}"
    clock = time.strftime("%H:%M:%S", time.localtime(task.updated_at))
    snapshot = "  (snapshot)" if kind == "JOB_TASKS_SNAPSHOT" else ""
    return f"{clock}  task {task.id:<6} {change:<24} {_attempt_text(task)}{snapshot}"


def _attempt_text(task: TaskView) -> str:
    if not task.attempts:
        return task.reason or ""
    attempt = task.attempts[-1]
    parts = [f"attempt {attempt.number} by {attempt.performer[:10]}…"]
    parts += [f"tx {attempt.tx_hash[:12]}…"] if attempt.tx_hash else []
    parts += [f"{len(attempt.signers)} signers"] if attempt.signers else []
    parts += [f"fee {task.fee} wei"] if task.fee else []
    parts += [task.reason] if task.reason else []
    return ", ".join(parts)


def _job_text(job: JobView) -> str:
    next_fire = (
        "—" if job.next_fire is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.next_fire))
    )
    return "\n".join(
        [
            f"job {job.id} ({job.spec.schedule_type}, {job.status}): {job.spec.function} "
            f"on {job.spec.target}",
            f"  owner {job.owner}  chain job id {job.chain_job_id}",
            f"  schedule {json.dumps(job.spec.schedule)}  next fire {next_fire}",
            f"  gas limit {job.spec.gas_limit}  max fee per task {job.spec.max_fee_per_task} wei",
        ]
    )


def _jobs_text(page: JobsPage) -> str:
    if not page.jobs:
        return "no jobs"
    rows = [f"{'id':>6}  {'kind':<10} {'status':<8} {'owner':<42} function"]
    rows += [
        f"{j.id:>6}  {j.spec.schedule_type:<10} {j.status:<8} {j.owner:<42} {j.spec.function}"
        for j in page.jobs
    ]
    return "\n".join(rows + ([f"(more: --limit, or the API's cursor {page.cursor})"] if page.cursor else []))


def _tasks_text(page: TasksPage) -> str:
    if not page.tasks:
        return "no tasks yet"
    return "\n".join(_event_text("", task, None) for task in page.tasks)
