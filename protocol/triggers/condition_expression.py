"""A condition job's `when`: comparisons of its named values, under and / or / not.

    price > 1800.5 and not (reserve between 10 and 20 or paused == 1)

- A comparison is `<value> <op> <number>` with op one of `>`, `<`, `>=`, `<=`, `==`, `!=`, or
  `<value> between <low> and <high>` (both ends included).
- Numbers are decimal (`-3`, `1800.5`) and compare exactly with the value in its own units
  (a balance of 1.5 ether is `1.5` when its source has 18 decimals): rationals, never floats.
- `not` binds tighter than `and`, which binds tighter than `or`; parentheses group. At most
  MAX_COMPARISONS comparisons and MAX_DEPTH levels of nesting.

Canonical form (what the owner signs): every `and` / `or` / `not` group in parentheses,
single spaces, numbers in shortest decimal form (`1800.50` is `1800.5`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from protocol.triggers.base import TriggerSpecError

MAX_COMPARISONS = 16
MAX_DEPTH = 8
_TOKEN = re.compile(r"\s*(>=|<=|==|!=|>|<|\(|\)|-?[0-9]{1,78}(?:\.[0-9]{1,78})?|[A-Za-z_][A-Za-z0-9_]*)")
_OPS = (">=", "<=", "==", "!=", ">", "<")
_KEYWORDS = ("and", "or", "not", "between")


@dataclass(frozen=True)
class Comparison:
    """`name op number`, or `name between low and high` (op `between`, both bounds)."""

    name: str
    op: str
    low: Fraction
    high: Fraction | None = None

    @property
    def canonical(self) -> str:
        """As the owner signs it."""
        if self.high is not None:
            return f"{self.name} between {_number(self.low)} and {_number(self.high)}"
        return f"{self.name} {self.op} {_number(self.low)}"

    def holds(self, values: Mapping[str, Fraction]) -> bool:
        """Whether the comparison holds for `values` (by name)."""
        value = values[self.name]
        if self.high is not None:
            return self.low <= value <= self.high
        low = self.low
        return {
            ">": value > low,
            "<": value < low,
            ">=": value >= low,
            "<=": value <= low,
            "==": value == low,
            "!=": value != low,
        }[self.op]


@dataclass(frozen=True)
class Group:
    """`and` or `or` over two or more parts, or `not` over one."""

    op: str
    parts: tuple[Expression, ...]

    @property
    def canonical(self) -> str:
        """As the owner signs it."""
        if self.op == "not":
            return f"(not {self.parts[0].canonical})"
        return "(" + f" {self.op} ".join(part.canonical for part in self.parts) + ")"

    def holds(self, values: Mapping[str, Fraction]) -> bool:
        """Whether the group holds for `values` (by name)."""
        if self.op == "not":
            return not self.parts[0].holds(values)
        results = (part.holds(values) for part in self.parts)
        return all(results) if self.op == "and" else any(results)


Expression = Comparison | Group


def comparisons(expression: Expression) -> list[Comparison]:
    """Every comparison in `expression`, left to right."""
    if isinstance(expression, Comparison):
        return [expression]
    return [leaf for part in expression.parts for leaf in comparisons(part)]


def parse_when(text: str) -> Expression:
    """The expression in `text`; TriggerSpecError (field `when`) when it is not one."""
    tokens = _tokens(text)
    parser = _Parser(tokens)
    expression = parser.either(0)
    if parser.position != len(tokens):
        raise TriggerSpecError("when", f"unexpected {tokens[parser.position]!r}")
    if len(comparisons(expression)) > MAX_COMPARISONS:
        raise TriggerSpecError("when", f"at most {MAX_COMPARISONS} comparisons")
    return expression


def _tokens(text: str) -> list[str]:
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise TriggerSpecError("when", f"cannot read {text[position:].strip()[:20]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over the tokens, nesting bounded by MAX_DEPTH."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, what: str) -> str:
        token = self.peek()
        if token is None:
            raise TriggerSpecError("when", f"ends where {what} was expected")
        self.position += 1
        return token

    def either(self, depth: int) -> Expression:
        return self._joined("or", self.both, depth)

    def both(self, depth: int) -> Expression:
        return self._joined("and", self.negated, depth)

    def _joined(self, op: str, part: Callable[[int], Expression], depth: int) -> Expression:
        parts = [part(depth)]
        while self.peek() == op:
            self.position += 1
            parts.append(part(depth))
        return parts[0] if len(parts) == 1 else Group(op, tuple(parts))

    def negated(self, depth: int) -> Expression:
        if depth > MAX_DEPTH:
            raise TriggerSpecError("when", f"nests deeper than {MAX_DEPTH} levels")
        token = self.take("a comparison")
        if token == "not":
            return Group("not", (self.negated(depth + 1),))
        if token == "(":
            inner = self.either(depth + 1)
            if self.take(")") != ")":
                raise TriggerSpecError("when", "a ( is not closed")
            return inner
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", token) or token in _KEYWORDS:
            raise TriggerSpecError("when", f"expected a value's name, found {token!r}")
        op = self.take("a comparison operator")
        if op == "between":
            low = self.number()
            if self.take("and") != "and":
                raise TriggerSpecError("when", f"{token} between <low> and <high>: `and` is missing")
            high = self.number()
            if high < low:
                raise TriggerSpecError("when", f"{token} between: the high end is below the low end")
            return Comparison(token, op, low, high)
        if op not in _OPS:
            raise TriggerSpecError("when", f"{op!r} is not a comparison ({', '.join(_OPS)} or between)")
        return Comparison(token, op, self.number())

    def number(self) -> Fraction:
        token = self.take("a number")
        if not re.fullmatch(r"-?[0-9.]+", token):
            raise TriggerSpecError("when", f"expected a decimal number, found {token!r}")
        return Fraction(Decimal(token))


def _number(value: Fraction) -> str:
    """The shortest decimal text of `value`, exactly (its denominator divides a power of ten:
    it was written in decimal)."""
    digits = 0
    while 10**digits % value.denominator:
        digits += 1
    whole, part = divmod(abs(value.numerator) * 10**digits // value.denominator, 10**digits)
    text = f"{whole}.{part:0{digits}d}" if digits else str(whole)
    return "-" + text if value < 0 else text
