"""Every time trigger kind, driven by a controllable clock: cron in time zones across DST,
specific times, interval with an end, restarts under each catch-up policy, updates and cancels."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

import pytest

from gateway.triggers import Fire, TimeScheduler
from protocol.triggers import (
    CronSchedule,
    IntervalSchedule,
    Schedule,
    TriggerFire,
    TriggerSpecError,
    kind_named,
)

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def at(zone: zoneinfo.ZoneInfo, *wall: int, fold: int = 0) -> float:
    """The unix time at which `zone`'s clock shows `wall` (year, month, day, hour, minute)."""
    return datetime(*wall, tzinfo=zone, fold=fold).timestamp()


def run_clock(scheduler: TimeScheduler, until: float) -> list[Fire]:
    """Advance a clock from fire time to fire time until `until`, collecting every fire."""
    fired: list[Fire] = []
    while (following := scheduler.next_fire_time()) is not None and following <= until:
        fired += scheduler.due(following)
    return fired


def fires_of(schedule: Schedule, start: float, until: float, job: int = 1) -> list[float]:
    scheduler = TimeScheduler()
    scheduler.add(job, schedule, last_fire=start, now=start)
    return [fire.at for fire in run_clock(scheduler, until)]


def test_cron_in_berlin_across_both_2026_dst_changes():
    daily = CronSchedule("30 2 * * *", BERLIN)
    # Spring forward, 29 March: 02:30 does not exist; it fires once, at 03:00 CEST.
    spring = fires_of(daily, at(BERLIN, 2026, 3, 27, 12, 0), at(BERLIN, 2026, 3, 31, 12, 0))
    assert spring == [
        at(BERLIN, 2026, 3, 28, 2, 30),
        at(BERLIN, 2026, 3, 29, 3, 0),
        at(BERLIN, 2026, 3, 30, 2, 30),
        at(BERLIN, 2026, 3, 31, 2, 30),
    ]
    assert spring[1] - spring[0] == 23.5 * 3600
    # Fall back, 25 October: 02:30 happens twice; it fires once, at the first (CEST).
    fall = fires_of(daily, at(BERLIN, 2026, 10, 23, 12, 0), at(BERLIN, 2026, 10, 27, 12, 0))
    assert fall == [
        at(BERLIN, 2026, 10, 24, 2, 30),
        at(BERLIN, 2026, 10, 25, 2, 30, fold=0),
        at(BERLIN, 2026, 10, 26, 2, 30),
        at(BERLIN, 2026, 10, 27, 2, 30),
    ]
    assert fall[2] - fall[1] == 25 * 3600


def test_several_cron_times_in_one_gap_fire_once_and_each_overlap_time_once():
    every_20 = CronSchedule("*/20 2 * * *", BERLIN)
    spring = fires_of(every_20, at(BERLIN, 2026, 3, 28, 20, 0), at(BERLIN, 2026, 3, 29, 20, 0))
    assert spring == [at(BERLIN, 2026, 3, 29, 3, 0)]  # 02:00, 02:20, 02:40 all in the gap
    fall = fires_of(every_20, at(BERLIN, 2026, 10, 24, 20, 0), at(BERLIN, 2026, 10, 25, 20, 0))
    assert fall == [at(BERLIN, 2026, 10, 25, 2, minute, fold=0) for minute in (0, 20, 40)]
    # Read in the overlap's second pass, the latest fire is a first pass's, not yesterday's.
    assert every_20.latest_fire(at(BERLIN, 2026, 10, 25, 2, 10, fold=1)) == at(BERLIN, 2026, 10, 25, 2, 40)


def test_from_an_overlaps_second_pass_the_next_fire_is_its_end():
    every_second = CronSchedule("* * * * * *", BERLIN)
    inside = at(BERLIN, 2026, 10, 25, 2, 10, fold=1)
    assert every_second.next_fire(inside) == at(BERLIN, 2026, 10, 25, 3, 0)
    assert (
        every_second.next_fire(at(BERLIN, 2026, 10, 25, 2, 10, fold=0)) == at(BERLIN, 2026, 10, 25, 2, 10) + 1
    )


def test_weekdays_at_nine_in_new_york_for_two_weeks_across_its_dst_change():
    weekdays = CronSchedule("0 9 * * 1-5", NEW_YORK)
    fired = fires_of(weekdays, at(NEW_YORK, 2026, 3, 1, 0, 0), at(NEW_YORK, 2026, 3, 14, 23, 59))
    days = [2, 3, 4, 5, 6, 9, 10, 11, 12, 13]  # clocks moved on Sunday 8 March
    assert fired == [at(NEW_YORK, 2026, 3, day, 9, 0) for day in days]
    hours_utc = [datetime.fromtimestamp(t, UTC).hour for t in fired]
    assert hours_utc == [14] * 5 + [13] * 5


def test_six_field_cron_has_seconds_first():
    every_15_s = CronSchedule("*/15 * * * * *", zoneinfo.ZoneInfo("UTC"))
    assert every_15_s.next_fire(1_800_000_000) == 1_800_000_015
    assert every_15_s.latest_fire(1_800_000_014) == 1_800_000_000


def test_cron_specs_are_checked_at_creation():
    cron = kind_named("cron")
    now = at(BERLIN, 2026, 6, 1, 12, 0)
    _, first = cron.parse({"cron": "0 9 * * 1-5", "timezone": "Europe/Berlin"}, now)
    assert first == at(BERLIN, 2026, 6, 2, 9, 0)
    for raw, field in [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),  # 30 February never comes
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"cron": "0 9 * * *", "end": int(now) - 1}, "end"),
        ({"cron": "0 9 * * *", "catchUp": "twice"}, "catchUp"),
        # Drawn at random by croniter at each parse: the gateway's and each attester's own schedule.
        ({"cron": "R * * * * *"}, "cron"),
        ({"cron": "0 0 R(29-31) 2 *"}, "cron"),
        ({"cron": "R/30 * * * * *"}, "cron"),
        ({"cron": "H * * * *"}, "cron"),
        ({"cron": "0 9 * * *", "timezone": "America"}, "timezone"),  # a folder of the database
        ({"cron": "0 9 * * *", "start": 2**40}, "start"),
    ]:
        with pytest.raises(TriggerSpecError) as refused:
            cron.parse(raw, now)
        assert refused.value.field == field, raw


def test_specific_times_past_refused_future_each_fire_once():
    specific = kind_named("specific")
    now = 1_800_000_000
    with pytest.raises(TriggerSpecError, match=r"times\[1\]: 1799999999 is not in the future"):
        specific.parse({"times": [now + 60, now - 1]}, now)
    with pytest.raises(TriggerSpecError, match="listed twice"):
        specific.parse({"times": [now + 60, now + 60]}, now)
    spec, first = specific.parse({"times": [now + 600, now + 60, now + 3600]}, now)
    assert first == now + 60
    scheduler = TimeScheduler()
    scheduler.add(7, specific.schedule(spec, now), last_fire=None, now=now)
    assert run_clock(scheduler, now + 10**6) == [Fire(7, now + 60), Fire(7, now + 600), Fire(7, now + 3600)]
    assert scheduler.next_fire_time() is None


def test_an_interval_with_an_end_stops():
    fired = fires_of(IntervalSchedule(every=60, start=0, end=300), -1, 10_000)
    assert fired == [0, 60, 120, 180, 240, 300]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("once", [Fire(1, 3540), Fire(1, 3600), Fire(1, 3660)]), ("skip", [Fire(1, 3600), Fire(1, 3660)])],
)
def test_a_restart_mid_schedule_catches_up_as_the_policy_says(policy, expected):
    every_minute = IntervalSchedule(every=60, start=0)
    # The gateway fired 600 last, went down, and is back at 3570: 660..3540 were missed.
    scheduler = TimeScheduler()
    scheduler.add(1, every_minute, last_fire=600, now=3570, catch_up=policy)
    assert run_clock(scheduler, 3660) == expected
    # Back at once (within MISSED_AFTER): nothing counts as missed, under either policy.
    prompt = TimeScheduler()
    prompt.add(1, every_minute, last_fire=3540, now=3601, catch_up=policy)
    assert run_clock(prompt, 3660) == [Fire(1, 3600), Fire(1, 3660)]


def test_an_update_takes_effect_at_once_and_a_cancel_stops_the_job():
    scheduler = TimeScheduler()
    scheduler.add(1, IntervalSchedule(every=60, start=0), last_fire=None, now=0)
    scheduler.add(2, IntervalSchedule(every=60, start=30), last_fire=None, now=0)
    assert run_clock(scheduler, 60) == [Fire(1, 0), Fire(2, 30), Fire(1, 60)]
    scheduler.add(1, CronSchedule("*/5 * * * *", zoneinfo.ZoneInfo("UTC")), last_fire=60, now=61)  # update
    scheduler.remove(2)  # cancel
    assert run_clock(scheduler, 900) == [Fire(1, 300), Fire(1, 600), Fire(1, 900)]


def test_attesters_accept_exactly_the_fire_times_of_the_signed_trigger():
    cron = kind_named("cron")
    raw = {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    spec = cron.decode(raw)
    signed = cron.trigger_hash(spec)
    honest = at(BERLIN, 2026, 3, 29, 3, 0)  # the gap's fire
    later = honest + 3600 * 24 * 400
    assert cron.check(TriggerFire("cron", raw, honest), signed, now=later) is None
    assert "not a fire time" in cron.check(TriggerFire("cron", raw, honest + 60), signed, now=later)
    assert "not the one the owner signed" in cron.check(
        TriggerFire("cron", {**raw, "timezone": "UTC"}, honest), signed, now=later
    )
    specific = kind_named("specific")
    times = {"times": [1_800_000_060, 1_800_000_600]}
    signed = specific.trigger_hash(specific.decode(times))
    assert specific.check(TriggerFire("specific", times, 1_800_000_600), signed, now=1_800_000_700) is None
    assert "not one of the job's times" in specific.check(
        TriggerFire("specific", times, 1_800_000_601), signed, now=1_800_000_700
    )
