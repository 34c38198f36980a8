"""Trigger kinds: one module per kind, registered here by name.

Adding a kind is adding its module (a `TriggerKind` subclass: see protocol.triggers.base) and
one `register` line below; docs/architecture.md walks through it.

Public API: the registry (register, kind_named, kind_names), what every kind declares
(TriggerKind, Schedule, TriggerFire, TriggerSpecError, NotYetVisibleError, Readers, SpecJson,
on_grid, CatchUp) and the time kinds' own (interval, cron, specific: their schedules and signed
triggers); the event, condition and after kinds' are in protocol.triggers.event,
protocol.triggers.condition and protocol.triggers.after.
"""

from __future__ import annotations

from typing import Any

from protocol.triggers import after, condition, cron, event, interval, specific
from protocol.triggers.base import (
    CatchUp,
    NotYetVisibleError,
    Readers,
    Schedule,
    SpecJson,
    TriggerFire,
    TriggerKind,
    TriggerSpecError,
    on_grid,
)
from protocol.triggers.cron import CronSchedule, cron_trigger
from protocol.triggers.interval import IntervalSchedule, interval_trigger
from protocol.triggers.specific import SpecificSchedule, specific_trigger

__all__ = [
    "CatchUp",
    "CronSchedule",
    "IntervalSchedule",
    "NotYetVisibleError",
    "Readers",
    "Schedule",
    "SpecJson",
    "SpecificSchedule",
    "TriggerFire",
    "TriggerKind",
    "TriggerSpecError",
    "chain_contradiction",
    "cron_trigger",
    "interval_trigger",
    "kind_named",
    "kind_names",
    "on_grid",
    "register",
    "specific_trigger",
]

_KINDS: dict[str, TriggerKind[Any]] = {}


def register(kind: TriggerKind[Any]) -> None:
    """Make `kind` known by its name (to the gateway, the keepers and the attesters alike)."""
    if kind.name in _KINDS and _KINDS[kind.name] is not kind:
        raise ValueError(f"a trigger kind named {kind.name!r} is already registered")
    _KINDS[kind.name] = kind


def kind_named(name: str) -> TriggerKind[Any] | None:
    """The kind called `name`, if registered."""
    return _KINDS.get(name)


async def chain_contradiction(fire: TriggerFire, readers: Readers, executed_in: int) -> str | None:
    """What the world says against `fire` executed in block `executed_in` (its kind's
    `check_on_chain`: an event's log not there, or not confirmed then; a condition that did
    not hold), or None; an unknown kind or a malformed spec is a problem too.
    NotYetVisibleError: this node cannot see it."""
    kind = kind_named(fire.kind)
    if kind is None:
        return f"unknown trigger kind {fire.kind!r}"
    try:
        return await kind.check_on_chain(kind.decode(fire.spec), fire, readers, executed_in)
    except (TriggerSpecError, ValueError) as error:
        return f"the fire is malformed: {error}"


def kind_names() -> list[str]:
    """The registered kinds' names, sorted."""
    return sorted(_KINDS)


register(interval.KIND)
register(cron.KIND)
register(specific.KIND)
register(event.KIND)
register(condition.KIND)
register(after.KIND)
