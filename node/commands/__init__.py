"""The `triggerx-node` commands that act through a gateway: jobs, balance, operator.

What they share: `CommandError`, a request that cannot be carried out, printed as one line;
`read_secret`, a key or token from the file or the environment variable its flags name."""

from __future__ import annotations

import os
from pathlib import Path


class CommandError(Exception):
    """What the user asked for cannot be done; printed as one line."""


def read_secret(file: Path | None, env: str | None, what: str) -> str | None:
    """A secret from the file `--<what>-file` names or the variable `--<what>-env` names, if given."""
    if file is not None:
        try:
            return file.read_text().strip()
        except OSError as error:
            raise CommandError(f"--{what}-file: cannot read {file}: {error.strerror}") from None
    if env is not None:
        value = os.environ.get(env, "").strip()
        if not value:
            raise CommandError(f"--{what}-env: environment variable {env} is not set")
        return value
    return None


__all__ = ["CommandError", "read_secret"]
