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


def test_a_job_added_again_before_its_next_time_is_computed_does_not_fire_twice():
    """Between `due` and the rescheduling of what fired, a job can reach the scheduler again
    with a stale last fire (or none): the fire just made still counts."""
    scheduler = TimeScheduler()
    scheduler.add(1, IntervalSchedule(every=10, start=100), last_fire=None, now=100)
    scheduler.add(2, IntervalSchedule(every=10, start=100), last_fire=None, now=100)
    assert scheduler.due(100) == [Fire(1, 100), Fire(2, 100)]
    scheduler.add(1, IntervalSchedule(every=10, start=100), last_fire=None, now=100)
    scheduler.add(1, IntervalSchedule(every=10, start=100), last_fire=None, now=100)
    assert scheduler.due(100) == []
    assert sorted(scheduler.due(110)) == [Fire(1, 110), Fire(2, 110)]
    assert len(scheduler) == 2


def test_jobs_due_at_one_instant_fire_together_and_each_reschedules():
    scheduler = TimeScheduler()
    for job in range(1_000):
        scheduler.add(job, IntervalSchedule(every=60, start=0), last_fire=None, now=0)
    scheduler.remove(7)
    fired = scheduler.due(0)
    assert len(fired) == 999
    assert {f.at for f in fired} == {0}
    assert 7 not in {f.job_id for f in fired}
    assert scheduler.next_fire_time() == 60
    assert len(scheduler.due(60)) == 999


def test_next_fire_changes_are_handed_out_for_the_store():
    scheduler = TimeScheduler()
    scheduler.add(1, IntervalSchedule(every=10, start=100), last_fire=None, now=100)
    scheduler.add(2, IntervalSchedule(every=10, start=100), last_fire=100, now=105, planned=110)
    scheduler.add(3, IntervalSchedule(every=10, start=100, end=100), last_fire=None, now=90)
    assert scheduler.take_changes() == {1: 100, 3: 100}  # job 2's next fire is as recorded
    assert scheduler.take_changes() == {}
    assert scheduler.due(110) == [Fire(1, 100), Fire(3, 100), Fire(2, 110)]
    scheduler.remove(2)
    scheduler.next_fire_time()
    assert scheduler.take_changes() == {1: 120, 2: None, 3: None}  # 110 was due with 100: one fire


def test_fires_are_counted_per_second_for_work_ahead():
    """A caller that starts big bursts early sees how many fires each second holds, as jobs
    are added, removed, fire and are rescheduled."""
    scheduler = TimeScheduler()
    scheduler.add(0, IntervalSchedule(every=1, start=100.5), last_fire=None, now=0)
    for job in range(1, 51):
        scheduler.add(job, IntervalSchedule(every=60, start=120), last_fire=None, now=0)
    assert [scheduler.fires_in_second(s) for s in (100, 119, 120, 121)] == [1, 0, 50, 0]
    scheduler.remove(50)
    assert scheduler.fires_in_second(120) == 49
    assert len(scheduler.due(120)) == 1 + 49  # job 0 once (at 100.5; rescheduled after), the burst
    assert [scheduler.fires_in_second(s) for s in (100, 120, 121, 180)] == [0, 1, 0, 49]  # 120.5, 180
