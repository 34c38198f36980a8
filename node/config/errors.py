"""Errors of the node config and of genesis.json, each one line naming what is wrong."""

from __future__ import annotations

import re

import msgspec

_AT_PATH = re.compile(r"(?P<problem>.*) - at `(?P<path>\$[^`]*)`$", re.DOTALL)
_FIELD = re.compile(r"Object (?P<what>contains unknown|missing required) field `(?P<field>[^`]*)`")


class ConfigError(Exception):
    """A setting is missing or invalid.

    The message is one line: the dotted key (e.g. `chain.rpc_url`), the problem, and where the
    value came from (the config file, an environment variable or a flag).
    """


class GenesisError(Exception):
    """genesis.json cannot be read or breaks its schema; the message is one line naming the
    file and the JSON path of the bad field (e.g. `$.protocol.offlineAfterSeconds`)."""


def split_validation_error(error: msgspec.ValidationError) -> tuple[str, str]:
    """The JSON path (`$`, `$.a.b[2]`) of the field a msgspec error is about, and its problem.

    msgspec names an unknown or missing field only in its message, at the path of the object
    holding it; the path returned here ends at the field itself.
    """
    text = " ".join(str(error).split())  # one line, whatever a decoder put in the message
    match = _AT_PATH.fullmatch(text)
    path, problem = (match["path"], match["problem"]) if match else ("$", text)
    field = _FIELD.fullmatch(problem)
    if field:
        problem = "unknown field" if field["what"] == "contains unknown" else "missing"
        path = f"{path}.{field['field']}"
    return path, problem[:1].lower() + problem[1:]
