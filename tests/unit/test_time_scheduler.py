"""Interval schedules and the heap scheduler: exact fire times, restarts, cancellation, scale."""

from __future__ import annotations

import pytest

from gateway.triggers import Fire, TimeScheduler
from protocol.triggers import IntervalSchedule


def test_interval_fire_times():
    every_10 = IntervalSchedule(every=10, start=100)
    assert every_10.next_fire(0) == 100
    assert every_10.next_fire(100) == 110
    assert every_10.next_fire(105) == 110
    assert every_10.latest_fire(99) is None
    assert every_10.latest_fire(129) == 120
    ending = IntervalSchedule(every=10, start=100, end=125)
    assert ending.next_fire(120) is None
    assert ending.latest_fire(1000) == 120
    with pytest.raises(ValueError, match="positive"):
        IntervalSchedule(every=0, start=0)


def test_a_new_job_fires_at_its_start_then_keeps_its_rhythm():
    scheduler = TimeScheduler()
    scheduler.add(1, IntervalSchedule(every=2, start=1000), last_fire=None, now=1000)
    assert scheduler.due(999.9) == []
    assert scheduler.due(1000) == [Fire(1, 1000)]
    assert scheduler.next_fire_time() == 1002
    assert scheduler.due(1004.5) == [Fire(1, 1002)]  # 1004 was missed: one fire, not two
    assert scheduler.next_fire_time() == 1006


def test_after_a_restart_a_missed_job_fires_once_for_the_latest_time():
    scheduler = TimeScheduler()
    scheduler.add(1, IntervalSchedule(every=60, start=0), last_fire=600, now=1000)
    assert scheduler.due(1000) == [Fire(1, 960)]
    assert scheduler.next_fire_time() == 1020
    up_to_date = TimeScheduler()
    up_to_date.add(2, IntervalSchedule(every=60, start=0), last_fire=960, now=1000)
    assert up_to_date.due(1000) == []
    assert up_to_date.next_fire_time() == 1020


def test_removed_and_finished_jobs_stop_firing():
    scheduler = TimeScheduler()
    scheduler.add(1, IntervalSchedule(every=1, start=0), last_fire=None, now=0)
    scheduler.add(2, IntervalSchedule(every=1, start=0, end=1), last_fire=None, now=0)
    assert {f.job_id for f in scheduler.due(0)} == {1, 2}
    scheduler.remove(1)
    assert scheduler.due(1) == [Fire(2, 1)]
    assert scheduler.due(10) == []
    assert len(scheduler) == 0
    assert scheduler.next_fire_time() is None


def test_many_jobs_fire_in_time_order():
    scheduler = TimeScheduler()
    for job in range(10_000):
        scheduler.add(job, IntervalSchedule(every=100, start=job % 100), last_fire=None, now=0)
    fired = scheduler.due(49)
    assert len(fired) == 5_000
    assert [f.at for f in fired] == sorted(f.at for f in fired)
    assert scheduler.next_fire_time() == 50
