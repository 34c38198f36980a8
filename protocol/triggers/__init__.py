"""Trigger kinds: one module per kind, registered here by name.

Adding a kind is adding its module (a `TriggerKind` subclass: see protocol.triggers.base) and
one `register` line below; docs/architecture.md walks through it.
"""

from __future__ import annotations

from typing import Any

from protocol.triggers import interval
from protocol.triggers.base import Schedule, TriggerFire, TriggerKind, TriggerSpecError

__all__ = [
    "Schedule",
    "TriggerFire",
    "TriggerKind",
    "TriggerSpecError",
    "kind_named",
    "kind_names",
    "register",
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


def kind_names() -> list[str]:
    """The registered kinds' names, sorted."""
    return sorted(_KINDS)


register(interval.KIND)
