"""The performer choice is deterministic, per task, skips tried keepers and over-weighted ones."""

from __future__ import annotations

from protocol import Operator, choose_performer, rank


def keeper(i: int, stake: int = 10) -> Operator:
    return Operator(i, f"0x{i + 1:040x}", stake, True, b"", b"")


KEEPERS = [keeper(i) for i in range(6)]
TOTAL = sum(k.stake for k in KEEPERS)


def test_the_choice_is_the_best_rank_and_repeatable():
    first = choose_performer(7, KEEPERS, (), TOTAL)
    assert first == min(KEEPERS, key=lambda k: rank(7, k.account))
    assert choose_performer(7, list(reversed(KEEPERS)), (), TOTAL) == first


def test_tasks_spread_over_keepers():
    chosen = {choose_performer(task, KEEPERS, (), TOTAL).id for task in range(60)}
    assert len(chosen) >= 5


def test_every_retry_goes_to_another_keeper_until_none_is_left():
    tried: list[str] = []
    for _ in KEEPERS:
        performer = choose_performer(3, KEEPERS, tried, TOTAL)
        assert performer.account not in tried
        tried.append(performer.account)
    assert choose_performer(3, KEEPERS, tried, TOTAL) is None


def test_a_keeper_holding_over_a_third_is_never_chosen():
    whale = keeper(9, stake=100)
    others = KEEPERS[:2]
    total = whale.stake + sum(k.stake for k in others)
    for task in range(20):
        assert choose_performer(task, [whale, *others], (), total) != whale
