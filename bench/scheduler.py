"""Time-trigger scheduling at scale: 100,000 active jobs in one process, ours vs APScheduler.

    .venv/bin/python bench/scheduler.py [--jobs 100000] [--seconds 60]

The same jobs (a seeded mix: 40 % interval, 40 % cron in ten time zones, 20 % specific times)
are scheduled by each engine in its own fresh process, one after the other:
- ours: the gateway's TimeScheduler alone, fired by a trio loop;
- gateway: the whole of the gateway's time triggering, gateway.triggers.JobScheduler with
  the jobs in LevelDB: each fire writes its task through the TaskLedger, each job's next
  fire is recorded, and a burst starts early by the time its tasks take to write (lead 0);
- APScheduler 3 (BackgroundScheduler, memory job store, no misfire limit, coalescing).
Each prints the time to schedule every job, its RSS, its CPU while every job waits (idle,
the first IDLE_S seconds), its CPU and fire lateness (hand-off time minus fire time: below
zero, ahead of time; p50/p99) while jobs fire for `--seconds`, and how many fires it made.
For the gateway also the longest the event loop waited while jobs fired (HTTP and the mesh
wait that long).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
import zoneinfo
from pathlib import Path
from typing import Any

IDLE_S = 10.0
ENGINES = ("ours", "gateway", "apscheduler")
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Africa/Lagos",
    "Europe/London",
    "Pacific/Auckland",
]
CRONS = [
    "* * * * *",
    "*/2 * * * *",
    "*/5 * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "30 * * * *",
    "15,45 * * * *",
    "0 9 * * mon-fri",  # day names: APScheduler numbers days from Monday, cron from Sunday
    "0 0 * * *",
    "*/10 8-18 * * mon-fri",
]
EVERY = [30, 60, 120, 300, 600, 900, 1800, 3600]


def job_mix(count: int, start: float, seconds: int) -> list[tuple[str, Any]]:
    """The seeded jobs: ("interval", (every, first)), ("cron", (expression, zone)),
    ("specific", [times])."""
    rng = random.Random(8)
    jobs: list[tuple[str, Any]] = []
    for index in range(count):
        share = index % 5
        if share < 2:
            every = rng.choice(EVERY)
            jobs.append(("interval", (every, start + rng.uniform(0, every))))
        elif share < 4:
            jobs.append(("cron", (rng.choice(CRONS), rng.choice(ZONES))))
        else:
            jobs.append(("specific", sorted({int(start + rng.uniform(0, seconds)) + 1 for _ in range(3)})))
    return jobs


def rss_mib(kind: str = "VmRSS") -> float:
    """Resident memory: all of it (VmRSS), or the anonymous part (RssAnon: not file pages such
    as LevelDB's memory-mapped tables, which the kernel can drop and read again)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{kind}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else float("nan")


def run_ours(jobs: list[tuple[str, Any]], start: float, seconds: int) -> dict[str, float]:
    import trio

    from gateway.triggers import TimeScheduler
    from protocol.triggers import CronSchedule, IntervalSchedule, SpecificSchedule

    began = time.perf_counter()
    scheduler = TimeScheduler()
    now = time.time()
    for job_id, (kind, spec) in enumerate(jobs):
        if kind == "interval":
            schedule: Any = IntervalSchedule(every=spec[0], start=spec[1])
        elif kind == "cron":
            schedule = CronSchedule(spec[0], zoneinfo.ZoneInfo(spec[1]), start=start)
        else:
            schedule = SpecificSchedule(tuple(spec))
        scheduler.add(job_id, schedule, last_fire=None, now=now)
    setup_s = time.perf_counter() - began
    lateness: list[float] = []

    async def fire_until(end: float) -> None:
        while time.time() < end:
            for fire in scheduler.due(time.time()):
                lateness.append(time.time() - fire.at)
            following = scheduler.next_fire_time()
            await trio.sleep(max(0.0, min(end, following or end) - time.time()))

    return measure(setup_s, start, seconds, lambda end: trio.run(fire_until, end), lateness)


def run_gateway(jobs: list[tuple[str, Any]], start: float, seconds: int) -> dict[str, float]:
    import tempfile

    import trio
    import trio.lowlevel

    from gateway import GatewayStorage, JobRecord, JobSpec, TaskLedger
    from gateway.triggers import JobScheduler
    from node.store import Store
    from protocol import JobTerms, job_id_of

    schedules = {
        "interval": lambda spec: {"everySeconds": spec[0], "start": int(spec[1])},
        "cron": lambda spec: {"cron": spec[0], "timezone": spec[1], "start": int(start)},
        "specific": lambda spec: {"times": spec},
    }
    owner, calldata = "0x" + "22" * 20, bytes.fromhex("d09de08a")
    lateness: list[float] = []
    stalls = [0.0]
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "gateway.db") as store:
        storage = GatewayStorage(store)
        for job_id, (kind, spec) in enumerate(jobs, 1):  # one by one, as the API stores them
            target = f"0x{job_id % 1000:040x}"  # a thousand contracts
            terms = JobTerms.static_call(target, calldata, 100_000, 10**15, bytes(32))
            job_spec = JobSpec(owner=owner, nonce=job_id, expiry=2**40, target=target,
                               function="increment()", schedule_type=kind,
                               schedule=schedules[kind](spec), max_fee_per_task=10**15)  # fmt: skip
            storage.jobs.put(JobRecord(id=job_id, owner=owner, chain_job_id=job_id_of(owner, job_id),
                                       spec=job_spec, calldata=calldata, terms=terms,
                                       consent_signature=b"", created_at=start - 60))  # fmt: skip
        tasks = storage.tasks

        def handed_on(task_id: int) -> None:
            lateness.append(time.time() - tasks.get(task_id).fire_at)

        began = time.perf_counter()
        scheduler = JobScheduler(storage, TaskLedger(storage), handed_on)
        for record in storage.jobs.records():
            scheduler.schedule(record)
        setup_s = time.perf_counter() - began

        async def fire_until(end: float) -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(scheduler.run)
                await trio.sleep(max(0.0, start - time.time()))  # no ticks while idle
                while time.time() < end:
                    before = time.perf_counter()
                    await trio.sleep(0.005)
                    stalls[0] = max(stalls[0], time.perf_counter() - before - 0.005)
                nursery.cancel_scope.cancel()

        result = measure(setup_s, start, seconds, lambda end: trio.run(fire_until, end), lateness)
    return {**result, "stall_ms": 1000 * stalls[0]}


def run_apscheduler(jobs: list[tuple[str, Any]], start: float, seconds: int) -> dict[str, float]:
    from datetime import UTC, datetime

    from apscheduler.events import EVENT_JOB_SUBMITTED
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    lateness: list[float] = []

    def submitted(event: Any) -> None:
        now = time.time()
        lateness.extend(now - at.timestamp() for at in event.scheduled_run_times)

    began = time.perf_counter()
    scheduler = BackgroundScheduler(
        job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1000}
    )
    scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)
    begin = datetime.fromtimestamp(start, UTC)
    for kind, spec in jobs:
        if kind == "interval":
            scheduler.add_job(
                _nothing, IntervalTrigger(seconds=spec[0], start_date=datetime.fromtimestamp(spec[1], UTC))
            )
        elif kind == "cron":
            minute, hour, day, month, weekday = spec[0].split()
            cron = CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=weekday,
                               timezone=spec[1], start_date=begin)  # fmt: skip
            scheduler.add_job(_nothing, cron)
        else:
            for at in spec:
                scheduler.add_job(_nothing, DateTrigger(datetime.fromtimestamp(at, UTC)))
    scheduler.start()
    setup_s = time.perf_counter() - began

    def fire_until(end: float) -> None:
        time.sleep(max(0.0, end - time.time()))
        scheduler.shutdown(wait=False)

    return measure(setup_s, start, seconds, fire_until, lateness)


def _nothing() -> None:
    """APScheduler's job: the hand-off is what is measured."""


def measure(
    setup_s: float, start: float, seconds: int, fire_until: Any, lateness: list[float]
) -> dict[str, float]:
    """Run the engine (`fire_until`, in a thread) from now until `start` plus `seconds`: its
    CPU is measured over the last IDLE_S before `start`, while every job waits (idle), then
    while jobs fire.

    Every engine gets what the gateway does once its jobs are loaded: `gc.freeze()`, so that
    the collector stops re-scanning 100,000 long-lived schedules (it tripled our time per fire).
    """
    gc.freeze()
    rss, anon = rss_mib(), rss_mib("RssAnon")
    if time.time() > start - IDLE_S:
        print(f"scheduling took {setup_s:.1f} s: too long to measure the idle CPU", file=sys.stderr)
    engine = threading.Thread(target=fire_until, args=(start + seconds,))
    engine.start()
    time.sleep(max(0.0, start - IDLE_S - time.time()))
    idle_cpu, idle_wall = cpu_seconds(), time.time()
    time.sleep(max(0.0, start - time.time()))
    idle = (cpu_seconds() - idle_cpu) / (time.time() - idle_wall)
    busy_cpu, busy_wall = cpu_seconds(), time.time()
    engine.join()
    busy = (cpu_seconds() - busy_cpu) / (time.time() - busy_wall)
    return {
        "setup_s": setup_s,
        "rss_mib": max(rss, rss_mib()),
        "anon_mib": max(anon, rss_mib("RssAnon")),
        "idle_cpu_pct": 100 * idle,
        "busy_cpu_pct": 100 * busy,
        "fires": len(lateness),
        "p50_ms": 1000 * statistics.median(lateness) if lateness else float("nan"),
        "p99_ms": 1000 * percentile(lateness, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=60, help="how long jobs fire (default 60)")
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # one engine, in this fresh process
        jobs = job_mix(args.jobs, args.start, args.seconds)
        run = {"ours": run_ours, "gateway": run_gateway, "apscheduler": run_apscheduler}[args.engine]
        print(json.dumps(run(jobs, args.start, args.seconds)))
        return
    results = {}
    for engine in ENGINES:
        start = time.time() + max(5.0, args.jobs / 1000) + IDLE_S  # time to schedule every job, then idle
        output = subprocess.run(
            [sys.executable, __file__, "--engine", engine, "--jobs", str(args.jobs),
             "--seconds", str(args.seconds), "--start", str(start)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        results[engine] = json.loads(output.strip().splitlines()[-1])
    ours, gateway, theirs = results["ours"], results["gateway"], results["apscheduler"]
    print(f"{args.jobs} time jobs (40 % interval, 40 % cron in {len(ZONES)} zones, 20 % specific), "
          f"firing for {args.seconds} s; ratio: APScheduler / ours")  # fmt: skip
    print(f"{'':24}{'ours':>12}{'gateway':>12}{'APScheduler':>14}{'ratio':>8}")
    rows = [
        ("schedule all (s)", "setup_s", "{:.1f}"),
        ("RSS (MiB)", "rss_mib", "{:.0f}"),
        ("  of it anonymous (MiB)", "anon_mib", "{:.0f}"),
        ("idle CPU (%)", "idle_cpu_pct", "{:.1f}"),
        ("CPU while firing (%)", "busy_cpu_pct", "{:.1f}"),
        ("fires", "fires", "{:.0f}"),
        ("lateness p50 (ms)", "p50_ms", "{:.1f}"),
        ("lateness p99 (ms)", "p99_ms", "{:.1f}"),
    ]
    for label, key, form in rows:
        ratio = theirs[key] / ours[key] if ours[key] else float("nan")
        print(f"{label:24}{form.format(ours[key]):>12}{form.format(gateway[key]):>12}"
              f"{form.format(theirs[key]):>14}{ratio:>8.1f}")  # fmt: skip
    print(f"{'event loop stall (ms)':24}{'':>12}{gateway['stall_ms']:>12.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
