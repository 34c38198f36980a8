"""The condition trigger's spec: values, the `when` expression (exact, bounded), the signed
hash and the evidence, without a chain."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from node.web import parse_json_path
from protocol.triggers import TriggerSpecError, kind_named
from protocol.triggers.condition import KIND, ConditionProgram, ConditionSpec, ReadingEvidence
from protocol.triggers.condition_expression import MAX_COMPARISONS, parse_when
from protocol.triggers.condition_sources import Reading, SourceError, parse_source

FEED = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
HOLDER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def program(*values: str, when: str, **extra) -> ConditionProgram:
    return ConditionProgram.of(ConditionSpec(chain_id=31337, values=list(values), when=when, **extra))


def test_the_kind_is_registered_and_a_spec_parses_from_json():
    assert kind_named("condition") is KIND
    spec, _ = KIND.parse(
        {
            "chainId": 31337,
            "values": [f"price = feed {FEED}"],
            "when": "price < 1800.5",
            "cooldownSeconds": 60,
        },
        now=0,
    )
    assert (spec.cooldown_seconds, spec.max_feed_age_seconds, spec.http_tolerance_bps) == (60, 3600, 100)


@pytest.mark.parametrize(
    ("line", "canonical"),
    [
        (f"whale = balance {HOLDER.lower()}", f"whale = balance {HOLDER}"),
        (f" held=erc20 {FEED} {HOLDER} ", f"held = erc20 {FEED} {HOLDER}"),
        (f"p = feed {FEED}", f"p = feed {FEED}"),
        (
            f"r = call {FEED} getReserves() returns (uint112, uint112,uint32)[1]",
            f"r = call {FEED} getReserves() returns (uint112, uint112, uint32)[1] decimals 0",
        ),
        (
            f"owed = call {FEED} debtOf(address {HOLDER.lower()}, uint 0x10) returns (uint) decimals 6",
            f"owed = call {FEED} debtOf(address {HOLDER}, uint256 16) returns (uint256)[0] decimals 6",
        ),
        (
            "eth = http https://prices.example/eth?x=1 $.data[0].price",
            "eth = http https://prices.example/eth?x=1 $.data[0].price decimals 18",
        ),
    ],
)
def test_each_source_kind_has_one_canonical_line(line, canonical):
    assert parse_source(line, 0).canonical == canonical


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("price feed 0x00", "expected `<name> = <kind> <arguments>`"),
        (f"and = feed {FEED}", "a word of `when`"),
        ("p = feed 0x1234", "is not an address"),
        (f"p = oracle {FEED}", "unknown source 'oracle'"),
        (f"p = erc20 {FEED}", "expected `erc20 <token> <holder>`"),
        (f"p = call {FEED} name() returns (string)", "expected 1 to 16 static types"),
        (f"p = call {FEED} owner() returns (address)", "must pick an integer or bool result"),
        (f"p = call {FEED} f() returns (uint256)[1]", "must pick an integer or bool result"),
        (f"p = call {FEED} f(uint8 300) returns (uint256)", "is not a uint8"),
        (f"p = call {FEED} f(uint256[] 1) returns (uint256)", "expected `<static type> <value>`"),
        ("p = http ftp://x/y $.a", "is not an http(s) URL"),
        ("p = http https://user:pw@x/y $.a", "without credentials"),
        ("p = http https://x/y data.price", "expected `http <url>"),
        ("p = http https://x/y $.a..b", "expected .key or [index]"),
        ("p = http https://x/y $.a decimals 99", "more than 77"),
        ("p = http http://example.com:99999/x $.a", "is not a URL"),
        ("p = http http://⒈.com/ $.a", "write the host in ASCII"),
    ],
)
def test_a_bad_source_is_refused_naming_its_line(line, problem):
    with pytest.raises(TriggerSpecError) as refused:
        parse_source(line, 3)
    assert refused.value.field == "values[3]"
    assert problem in refused.value.problem


def test_when_is_canonical_with_not_over_and_over_or():
    expression = parse_when("a > 1800.50 and not (b between 10 and 20.000 or c == 1) or d<-0.25")
    assert expression.canonical == "((a > 1800.5 and (not (b between 10 and 20 or c == 1))) or d < -0.25)"
    values = {"a": Fraction(1801), "b": Fraction(5), "c": Fraction(0), "d": Fraction(0)}
    assert expression.holds(values)
    assert not expression.holds({**values, "b": Fraction(10)})
    assert expression.holds({**values, "a": Fraction(1), "d": Fraction(-1)})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a >", "ends where a number was expected"),
        ("a > 1 and", "ends where a comparison was expected"),
        ("(" * 9 + "a > 1" + ")" * 9, "nests deeper than 8 levels"),
        ("not " * 9 + "a > 1", "nests deeper than 8 levels"),
        ("a >= b", "expected a decimal number"),
        ("a between 3 and 1", "the high end is below the low end"),
        ("a between 1 2", "`and` is missing"),
        ("and > 1", "expected a value's name"),
        ("a > 1 b", "unexpected 'b'"),
        ("a ~ 1", "cannot read"),
        ("(a > 1", "ends where ) was expected"),
        (" or ".join(["a > 1"] * (MAX_COMPARISONS + 1)), f"at most {MAX_COMPARISONS} comparisons"),
    ],
)
def test_a_bad_expression_is_refused(text, problem):
    with pytest.raises(TriggerSpecError) as refused:
        parse_when(text)
    assert refused.value.field == "when"
    assert problem in refused.value.problem


def test_thresholds_compare_exactly_in_the_values_own_units():
    # 1.5 ether against balances one wei either side; and a threshold no float can hold.
    ether = program(f"b = balance {HOLDER}", when="b >= 1.5")
    assert not ether.holds({"b": Reading(1_500_000_000_000_000_000 - 1, 18)}, 0)
    assert ether.holds({"b": Reading(1_500_000_000_000_000_000, 18)}, 0)
    fine = program(
        f"x = call {FEED} f() returns (uint256) decimals 30", when="x == 1.000000000000000000000000000001"
    )
    assert fine.holds({"x": Reading(10**30 + 1, 30)}, 0)
    assert not fine.holds({"x": Reading(10**30, 30)}, 0)


def test_a_feed_older_than_the_job_allows_has_no_value():
    stale = program(f"p = feed {FEED}", when="p > 0", max_feed_age_seconds=60)
    assert stale.holds({"p": Reading(5, 8, updated_at=1000)}, 1060)
    with pytest.raises(SourceError, match="61 s old, more than the job's 60 s"):
        stale.holds({"p": Reading(5, 8, updated_at=1000)}, 1061)


@pytest.mark.parametrize(
    ("values", "when", "field", "problem"),
    [
        ([f"p = feed {FEED}", f"p = balance {HOLDER}"], "p > 1", "values", "two values have the same name"),
        ([f"p = feed {FEED}"], "q > 1", "when", "no value called 'q'"),
        ([f"p = feed {FEED}", f"q = balance {HOLDER}"], "p > 1", "values", "'q' is not used"),
    ],
)
def test_values_and_when_must_agree(values, when, field, problem):
    with pytest.raises(TriggerSpecError) as refused:
        program(*values, when=when)
    assert (refused.value.field, problem in refused.value.problem) == (field, True)


def test_the_signed_hash_covers_what_attesters_check_and_not_the_gateways_policy():
    base = dict(chain_id=31337, values=[f"p = feed {FEED}"], when="p < 1800.5")
    signed = KIND.trigger_hash(ConditionSpec(**base))
    assert KIND.trigger_hash(ConditionSpec(**{**base, "when": "p<1800.50"})) == signed  # same canonical form
    assert KIND.trigger_hash(ConditionSpec(**base, cooldown_seconds=60, http_every_seconds=10)) == signed
    for change in ({"when": "p < 1800"}, {"confirmations": 3}, {"max_feed_age_seconds": 60}, {"chain_id": 1}):
        assert KIND.trigger_hash(ConditionSpec(**{**base, **change})) != signed


def test_evidence_keeps_negative_values_and_refuses_a_wrong_count():
    two = program(f"p = feed {FEED}", f"b = balance {HOLDER}", when="p < 0 and b > 0")
    evidence = ReadingEvidence(31337, 12, b"\x01" * 32, (-5, 2**256 - 1))
    assert ReadingEvidence.decode(evidence.encode(), two) == evidence
    one = program(f"p = feed {FEED}", when="p < 0")
    with pytest.raises(ValueError, match="reports 2 values, the job has 1"):
        ReadingEvidence.decode(evidence.encode(), one)
    with pytest.raises(ValueError, match="not a condition fire's detail"):
        ReadingEvidence.decode(b"\x00" * 7, one)


def test_web_values_are_exact_and_bounded():
    source = parse_source("v = http https://x/y $.a", 0).source
    assert (
        source.reading(Decimal("9999999999.9999999999999999999")).raw == 9_999_999_999_999_999_999_999_999_999
    )
    assert source.reading(Decimal("-1.0000000000000000019")).raw == -1_000_000_000_000_000_001  # toward zero
    assert (
        source.reading(Decimal("123456789012345678901234567890")).raw
        == 123456789012345678901234567890 * 10**18
    )
    for huge in ("1e999999999", "1e-999999999", "Infinity", "NaN"):
        with pytest.raises(SourceError, match="out of range"):
            source.reading(Decimal(huge))


def test_a_detail_must_be_in_canonical_form():
    one = program(f"p = feed {FEED}", when="p < 0")
    detail = ReadingEvidence(31337, 12, b"\x01" * 32, (-5,)).encode()
    assert ReadingEvidence.decode(detail, one).values == (-5,)
    with pytest.raises(ValueError, match="not in canonical form"):
        ReadingEvidence.decode(detail + bytes(64), one)


def test_json_paths():
    assert parse_json_path("$.data[0].price") == ("data", 0, "price")
    assert parse_json_path("$") == ()
    with pytest.raises(ValueError, match="more than 16 steps"):
        parse_json_path("$" + ".a" * 17)
