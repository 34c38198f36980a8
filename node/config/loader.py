"""Loading the settings: flag > environment variable > config file > default.

Values from the TOML file keep their TOML types and must match exactly; values from the
environment and from flags are text, converted to the setting's type: a list is
comma-separated, and an empty text unsets an optional setting. A relative path in the file is
relative to the file's directory (so a config and its keystores can move together); from the
environment or a flag, to the working directory.

Environment variables that name no setting are ignored: the `TRIGGERX_` prefix is shared with
other tools and with password variables (e.g. `TRIGGERX_BLS_BACKEND`, `TRIGGERX_DEPLOYER_KEY`).
"""

from __future__ import annotations

import argparse
import copy
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from node.config.errors import ConfigError, split_validation_error
from node.config.schema import BY_NAME, PASSWORDS, ROLE_NEEDS, SECTIONS, SETTINGS, Setting, Settings
from node.config.types import dec_hook

DEFAULT = "default"


@dataclass(frozen=True)
class Config:
    """Checked settings and, for each dotted key, where its value came from."""

    settings: Settings
    origins: Mapping[str, str]  # e.g. "from file keeper.toml", "from env TRIGGERX_CHAIN_RPC_URL"

    def value(self, key: str) -> Any:
        """The value of the dotted `key`."""
        section, _, name = key.partition(".")
        return getattr(getattr(self.settings, section), name)

    def error(self, key: str, problem: str) -> ConfigError:
        """A ConfigError about the value of `key`, saying where that value came from."""
        return ConfigError(f"{key}: {problem} ({self.origins[key]})")

    def secret(self, file_key: str, env_key: str, environ: Mapping[str, str]) -> str | None:
        """A secret given as a file (`file_key`: one trailing newline removed) or as the name of
        an environment variable (`env_key`, looked up in `environ`); None if neither is set,
        ConfigError if both are or the one given cannot be read."""
        file: Path | None = self.value(file_key)
        variable: str | None = self.value(env_key)
        if file is not None and variable is not None:
            raise ConfigError(f"{file_key} and {env_key}: both set; give one of them")
        if file is not None:
            try:
                text = file.read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError) as error:
                problem = getattr(error, "strerror", None) or str(error)
                raise self.error(file_key, f"cannot read {file}: {problem}") from None
            return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
        if variable is not None:
            if variable not in environ:
                raise self.error(env_key, f"environment variable {variable} is not set")
            return environ[variable]
        return None


@dataclass(frozen=True)
class _Raw:
    value: Any
    origin: str
    base: Path | None = None  # directory that relative paths are relative to, for file values


def load_config(
    file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Config:
    """The settings from the TOML `file`, the `environ` variables and the `flags` (dotted key to
    text), checked; ConfigError (one line naming the key and the source) for the first problem."""
    environ = environ or {}
    raw: dict[str, _Raw] = {}
    if file is not None:
        raw.update(_read_file(file))
    for setting in SETTINGS:
        if setting.env in environ:
            raw[setting.name] = _Raw(_from_text(setting, environ[setting.env]), f"from env {setting.env}")
    for name, text in (flags or {}).items():
        setting = BY_NAME[name]
        raw[name] = _Raw(_from_text(setting, text), f"from flag {setting.flags[0]}")
    # Values given are checked before any missing one is reported: a bad value is a mistake
    # made, a missing one may just not have been written yet.
    values = {name: _convert(BY_NAME[name], given) for name, given in raw.items()}
    sections: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    origins = {}
    for setting in SETTINGS:
        if setting.name in values:
            sections[setting.section][setting.key] = values[setting.name]
            origins[setting.name] = raw[setting.name].origin
        elif setting.required:
            raise ConfigError(f"{setting.name}: missing; {_where(setting)}")
        else:
            sections[setting.section][setting.key] = copy.copy(setting.default)
            origins[setting.name] = DEFAULT
    settings = Settings(**{name: SECTIONS[name](**fields) for name, fields in sections.items()})
    config = Config(settings, origins)
    _check_passwords(config)
    _check_role(config)
    return config


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add a flag for every setting to `parser`; `flag_values` reads back the ones given."""
    group = parser.add_argument_group(
        "settings",
        "Each also a key of the --config file's [section] and an environment variable; "
        "precedence: flag > environment > file > default.",
    )
    for setting in SETTINGS:
        group.add_argument(
            *setting.flags,
            dest=setting.name,
            metavar=setting.key.upper(),
            default=argparse.SUPPRESS,  # absent from the namespace unless given
            help=f"{setting.help} [{setting.env}]",
        )


def flag_values(args: argparse.Namespace) -> dict[str, str]:
    """The settings given as flags in `args`, by dotted key."""
    given = vars(args)
    return {setting.name: given[setting.name] for setting in SETTINGS if setting.name in given}


CLIENT_SECTION = "client"  # one TOML file may serve a node and the jobs/balance commands


def _read_file(file: Path) -> dict[str, _Raw]:
    try:
        with file.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"config file {file}: cannot read it: {error.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {file}: not valid TOML: {error}") from None
    origin = f"from file {file}"
    found = {}
    for section, table in document.items():
        if section == CLIENT_SECTION:
            continue  # the client commands' own (node.commands.client_options checks its keys)
        if section not in SECTIONS:
            what = "unknown section" if isinstance(table, dict) else "unknown key outside any section"
            raise ConfigError(f"{section}: {what} ({origin})")
        if not isinstance(table, dict):
            raise ConfigError(f"{section}: expected a table [{section}], got {table!r} ({origin})")
        for key, value in table.items():
            name = f"{section}.{key}"
            if name not in BY_NAME:
                raise ConfigError(f"{name}: unknown key ({origin})")
            found[name] = _Raw(value, origin, file.parent)
    return found


def _from_text(setting: Setting, text: str) -> Any:
    if setting.optional and text == "":
        return None
    if typing.get_origin(setting.base_type) is list:
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def _convert(setting: Setting, given: _Raw) -> Any:
    try:
        # TOML values are typed, so they must match exactly; text may be converted (e.g. to int).
        value = msgspec.convert(
            given.value, setting.checked_type, strict=given.base is not None, dec_hook=dec_hook
        )
    except msgspec.ValidationError as error:
        path, problem = split_validation_error(error)
        if typing.get_origin(setting.base_type) is typing.Literal:  # msgspec would say "invalid enum value"
            problem = f"expected {' or '.join(typing.get_args(setting.base_type))}, got {given.value!r}"
        raise ConfigError(f"{setting.name}{path[1:]}: {problem} ({given.origin})") from None
    if isinstance(value, Path) and given.base is not None:
        return given.base / value  # an absolute `value` stays as it is
    return value


def _where(setting: Setting) -> str:
    return f"set it in [{setting.section}] of the config file, in {setting.env} or with {setting.flags[0]}"


def _check_passwords(config: Config) -> None:
    for keystore, file_key, env_key in PASSWORDS:
        given = [key for key in (file_key, env_key) if config.value(key) is not None]
        if config.value(keystore) is not None and not given:
            raise ConfigError(f"{file_key} or {env_key}: missing; {keystore} needs a password")
        if len(given) == 2:
            sources = ", ".join(config.origins[key] for key in given)
            raise ConfigError(f"{file_key} and {env_key}: both set ({sources}); give one of them")


def _check_role(config: Config) -> None:
    role = config.settings.node.role
    for key in ROLE_NEEDS.get(role, ()):
        if config.value(key) is None:
            raise ConfigError(f"{key}: missing; the {role} role needs it: {_where(BY_NAME[key])}")
