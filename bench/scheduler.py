"""Time-trigger scheduling at scale: 100,000 active jobs in one process, ours vs APScheduler.

    .venv/bin/python bench/scheduler.py [--jobs 100000] [--seconds 60]

The same jobs (a seeded mix: 40 % interval, 40 % cron in ten time zones, 20 % specific times)
are scheduled by each engine in its own fresh process, one after the other: ours (the
gateway's TimeScheduler, fired by a trio loop as gateway.triggers.JobScheduler fires it) and
APScheduler 3 (BackgroundScheduler, memory job store, no misfire limit, coalescing). Each
prints the time to schedule every job, its RSS, its CPU while every job waits (idle, the
first IDLE_S seconds), its CPU and fire lateness (fire time to hand-off, p50/p99) while jobs
fire for `--seconds`, and how many fires it made.
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
import time
import zoneinfo
from pathlib import Path
from typing import Any

IDLE_S = 10.0
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


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
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
    """Idle until `start` (CPU measured over the last IDLE_S of it), then fire for `seconds`.

    Both engines get what the gateway does once its jobs are loaded: `gc.freeze()`, so that
    the collector stops re-scanning 100,000 long-lived schedules (it tripled our time per fire).
    """
    gc.freeze()
    rss = rss_mib()
    if time.time() > start - IDLE_S:
        print(f"scheduling took {setup_s:.1f} s: too long to measure the idle CPU", file=sys.stderr)
    time.sleep(max(0.0, start - IDLE_S - time.time()))
    idle_cpu, idle_wall = cpu_seconds(), time.time()
    time.sleep(max(0.0, start - time.time()))
    idle = (cpu_seconds() - idle_cpu) / (time.time() - idle_wall)
    busy_cpu, busy_wall = cpu_seconds(), time.time()
    fire_until(start + seconds)
    busy = (cpu_seconds() - busy_cpu) / (time.time() - busy_wall)
    return {
        "setup_s": setup_s,
        "rss_mib": max(rss, rss_mib()),
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
    parser.add_argument("--engine", choices=["ours", "apscheduler"], help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # one engine, in this fresh process
        jobs = job_mix(args.jobs, args.start, args.seconds)
        run = run_ours if args.engine == "ours" else run_apscheduler
        print(json.dumps(run(jobs, args.start, args.seconds)))
        return
    results = {}
    for engine in ("ours", "apscheduler"):
        start = time.time() + max(5.0, args.jobs / 1000) + IDLE_S  # time to schedule every job, then idle
        output = subprocess.run(
            [sys.executable, __file__, "--engine", engine, "--jobs", str(args.jobs),
             "--seconds", str(args.seconds), "--start", str(start)],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        results[engine] = json.loads(output.strip().splitlines()[-1])
    ours, theirs = results["ours"], results["apscheduler"]
    print(f"{args.jobs} time jobs (40 % interval, 40 % cron in {len(ZONES)} zones, 20 % specific), "
          f"firing for {args.seconds} s")  # fmt: skip
    print(f"{'':24}{'ours':>12}{'APScheduler':>14}{'ratio':>8}")
    rows = [
        ("schedule all (s)", "setup_s", "{:.1f}"),
        ("RSS (MiB)", "rss_mib", "{:.0f}"),
        ("idle CPU (%)", "idle_cpu_pct", "{:.1f}"),
        ("CPU while firing (%)", "busy_cpu_pct", "{:.1f}"),
        ("fires", "fires", "{:.0f}"),
        ("lateness p50 (ms)", "p50_ms", "{:.1f}"),
        ("lateness p99 (ms)", "p99_ms", "{:.1f}"),
    ]
    for label, key, form in rows:
        ratio = theirs[key] / ours[key] if ours[key] else float("nan")
        print(f"{label:24}{form.format(ours[key]):>12}{form.format(theirs[key]):>14}{ratio:>8.1f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
