"""The quorum rule in exact integers (the contract's side is in tests/integration/test_quorum_property.py)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from protocol import APPROVE, REJECT, Decision, decide


def test_boundaries_are_exact():
    assert APPROVE.met(200, 300)
    assert not APPROVE.met(199, 300)
    assert REJECT.met(100, 300)
    assert not REJECT.met(99, 300)
    assert not APPROVE.met(0, 0)
    # No floating point: a huge total is still exact.
    total = 3 * 10**40 + 1
    assert not APPROVE.met(2 * 10**40, total)
    assert APPROVE.met(2 * 10**40 + 1, total)


@given(st.integers(0, 10**30), st.integers(1, 10**30))
def test_thresholds_equal_rational_comparison(signed, total):
    assert APPROVE.met(signed, total) == (Fraction(signed, total) >= Fraction(2, 3))
    assert REJECT.met(signed, total) == (Fraction(signed, total) >= Fraction(1, 3))


def test_decisions():
    assert decide(approving=300, rejecting=0, outstanding=0, total=400) is Decision.APPROVE
    # A rejection by half: the last quarter could still prove it (two thirds), so it waits...
    assert decide(approving=0, rejecting=200, outstanding=100, total=400) is Decision.REJECT_UNPROVEN
    # ...unless nothing can prove it any more, or it is proven.
    assert decide(approving=100, rejecting=200, outstanding=0, total=400) is Decision.REJECT
    assert decide(approving=0, rejecting=300, outstanding=100, total=400) is Decision.REJECT
    assert decide(approving=200, rejecting=0, outstanding=100, total=400) is Decision.PENDING
    # Half approves and half rejects of what voted, 2/4 abstained for good: neither can win.
    assert decide(approving=100, rejecting=50, outstanding=0, total=400) is Decision.IMPOSSIBLE
    # At the exact boundary both hold; the approval is the one to submit.
    assert decide(approving=200, rejecting=100, outstanding=0, total=300) is Decision.APPROVE


@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=20), st.data())
def test_a_decision_never_contradicts_itself(stakes, data):
    total = sum(stakes)
    votes = data.draw(
        st.lists(st.sampled_from([True, False, None]), min_size=len(stakes), max_size=len(stakes))
    )
    approving = sum(s for s, v in zip(stakes, votes, strict=True) if v is True)
    rejecting = sum(s for s, v in zip(stakes, votes, strict=True) if v is False)
    outstanding = total - approving - rejecting
    decision = decide(approving, rejecting, outstanding, total)
    if decision is Decision.IMPOSSIBLE:
        assert not APPROVE.met(approving + outstanding, total)
        assert not REJECT.met(rejecting + outstanding, total)
    if decision is Decision.REJECT_UNPROVEN:
        assert REJECT.met(rejecting, total)
        assert not APPROVE.met(rejecting, total)
        assert APPROVE.met(rejecting + outstanding, total)
    if decision is Decision.REJECT:
        assert APPROVE.met(rejecting, total) or not APPROVE.met(rejecting + outstanding, total)
        assert not APPROVE.met(approving, total)
