"""Versioned names on the mesh: `/triggerx/<name>/<version>` for topics and protocols.

A version bump makes a new name, so old and new nodes never misread each other's messages:
they simply do not meet on the same topic or protocol.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^/triggerx/[a-z][a-z0-9-]{0,31}/[1-9][0-9]{0,3}$")
_METHOD = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def versioned(name: str, version: int = 1) -> str:
    """`/triggerx/<name>/<version>`; ValueError for a name that does not fit the pattern."""
    return check_name(f"/triggerx/{name}/{version}")


def check_name(name: str) -> str:
    """`name` if it is a versioned TriggerX topic or protocol name, else ValueError."""
    if not _NAME.match(name):
        raise ValueError(f"not a versioned mesh name (/triggerx/<name>/<version>): {name!r}")
    return name


def check_method(method: str) -> str:
    """`method` if it is a valid request method name (lowercase, <= 64 characters), else ValueError."""
    if not _METHOD.match(method):
        raise ValueError(f"not a valid request method name: {method!r}")
    return method


HEARTBEATS = versioned("heartbeats")
RESULTS = versioned("results")
ALL_TOPICS = (HEARTBEATS, RESULTS)
"""Every gossip topic; aggregators join them all so that they relay them all."""

RPC_PROTOCOL = versioned("rpc")
"""Request/response: named methods over one persistent framed stream per peer pair."""


def request_kind(method: str) -> str:
    """The envelope kind of a request for `method`."""
    return f"{RPC_PROTOCOL}/{check_method(method)}"


def reply_kind(method: str) -> str:
    """The envelope kind of a reply to a `method` request."""
    return f"{request_kind(method)}/reply"
