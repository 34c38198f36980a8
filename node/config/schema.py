"""The node's settings: one Struct per TOML section, the single source of every setting's name,
type, default and help.

A setting `key` of section `section` is `[section] key` in the config file, the environment
variable `TRIGGERX_<SECTION>_<KEY>` and the flag `--<section>-<key>` (underscores become
hyphens); `SETTINGS` derives those names from the Structs, so they are never written twice.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from node.config.types import (
    ChainEndpoint,
    EmailAddress,
    HostName,
    HostPort,
    HttpUrl,
    Multiaddr,
    PeerMultiaddr,
    WsUrl,
)

Role = Literal["keeper", "aggregator", "gateway"]
ROLES: dict[Role, str] = {
    "keeper": "executes tasks assigned to it and attests to other keepers' tasks",
    "aggregator": "collects attesters' BLS votes and submits quorum proofs on chain",
    "gateway": "serves the HTTP API and schedules, dispatches and monitors tasks",
}
LogLevel = Literal["debug", "info", "warning", "error"]

ENV_PREFIX = "TRIGGERX"
_FLAG_ALIASES = {"node.role": "--role"}  # the documented spelling (README), kept as the short form


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A TOML section of the config."""


class NodeSettings(_Section, frozen=True, kw_only=True):
    """[node]: what this node does and where it keeps its state."""

    role: Annotated[Role, Meta(description="the role this node plays: keeper, aggregator or gateway")]
    data_dir: Annotated[Path, Meta(description="directory of the node's database")] = Path("data")
    log_level: Annotated[
        LogLevel, Meta(description="least severe log events written: debug, info, warning or error")
    ] = "info"
    script_sources: Annotated[
        list[HttpUrl],
        Meta(
            description="where jobs' scripts are fetched by CID: URLs a CID is appended to (the "
            "gateway's http://host:port/ipfs/, an IPFS gateway's https://host/ipfs/), tried in order; "
            "the bytes are checked against the CID (comma-separated outside TOML)"
        ),
    ] = []
    private_http_sources: Annotated[
        bool,
        Meta(
            description="whether condition jobs' HTTP sources may be on loopback or private addresses "
            "(a devnet's test servers); never on a public node, which would fetch its own network for "
            "strangers"
        ),
    ] = False
    sandbox: Annotated[
        Literal["bwrap", "docker"],
        Meta(
            description="where jobs' scripts run: bwrap (bubblewrap, the default, the most "
            "deterministic) or docker (the local engine at /var/run/docker.sock)"
        ),
    ] = "bwrap"
    metrics_listen: Annotated[
        HostPort | None,
        Meta(
            description="host:port a keeper or an aggregator serves Prometheus metrics on, at "
            "GET /metrics (docs/architecture.md, Metrics); unset: none served. The gateway "
            "serves /metrics on its HTTP API instead"
        ),
    ] = None


class ChainSettings(_Section, frozen=True, kw_only=True):
    """[chain]: the Ethereum endpoints the node reads and writes through."""

    rpc_url: Annotated[HttpUrl, Meta(description="the chain's JSON-RPC HTTP endpoint")]
    ws_url: Annotated[WsUrl | None, Meta(description="the chain's WebSocket endpoint, for subscriptions")] = (
        None
    )
    watch: Annotated[
        list[ChainEndpoint],
        Meta(
            description="other chains read for event and condition jobs, each `<chain id> <rpc url> "
            "[<ws url>] [confirmations=N] [poll_ms=N]` (defaults: [gateway] event_confirmations and "
            "event_poll_ms; comma-separated outside TOML)"
        ),
    ] = []


class MeshSettings(_Section, frozen=True, kw_only=True):
    """[mesh]: the libp2p mesh."""

    listen: Annotated[Multiaddr, Meta(description="multiaddr the node listens on")] = Multiaddr(
        "/ip4/0.0.0.0/tcp/4001"
    )
    bootstrap: Annotated[
        list[PeerMultiaddr],
        Meta(description="peers to dial first, besides genesis' aggregators (comma-separated outside TOML)"),
    ] = []


class KeySettings(_Section, frozen=True, kw_only=True):
    """[keys]: the operator's three keys (see `triggerx-node keys`)."""

    operator_keystore: Annotated[Path, Meta(description="the operator's ECDSA key, a V3 keystore")]
    operator_password_file: Annotated[
        Path | None, Meta(description="file holding the operator keystore's password")
    ] = None
    operator_password_env: Annotated[
        str | None, Meta(description="environment variable holding the operator keystore's password")
    ] = None
    bls_keystore: Annotated[
        Path | None, Meta(description="the operator's BLS key, an EIP-2335 keystore (keepers need it)")
    ] = None
    bls_password_file: Annotated[
        Path | None, Meta(description="file holding the BLS keystore's password")
    ] = None
    bls_password_env: Annotated[
        str | None, Meta(description="environment variable holding the BLS keystore's password")
    ] = None
    identity: Annotated[Path, Meta(description="the node's libp2p identity key file")]


class GatewaySettings(_Section, frozen=True, kw_only=True):
    """[gateway]: the gateway's HTTP API (only the gateway role uses it)."""

    http_listen: Annotated[HostPort, Meta(description="host:port the HTTP API listens on")] = HostPort(
        "127.0.0.1:8080"
    )
    dispatch_lead_ms: Annotated[
        int,
        Meta(
            ge=0,
            le=5000,
            description="milliseconds before its fire time a time-triggered task is dispatched, so that "
            "its transaction is sent at the fire time, not after it (docs/protocol.md, Lead time); "
            "the default covers the devnet's measured trigger-to-mined p99 (0.4-0.6 s)",
        ),
    ] = 500
    event_confirmations: Annotated[
        int,
        Meta(
            ge=0,
            le=10_000,
            description="blocks on top of a log before it fires an event job that sets no confirmations",
        ),
    ] = 2
    event_poll_ms: Annotated[
        int,
        Meta(ge=100, le=60_000, description="milliseconds between two reads of the chain for event jobs"),
    ] = 1000
    script_jobs: Annotated[
        bool,
        Meta(
            description="take jobs whose arguments a script computes; off by default: a script built "
            "to defeat the sandbox's determinism can get honest performers voted down "
            "(docs/architecture.md, Sandbox)"
        ),
    ] = False
    admin_token_file: Annotated[
        Path | None,
        Meta(description="file holding the admin credential (Authorization: Bearer) of /api/admin"),
    ] = None
    admin_token_env: Annotated[
        str | None, Meta(description="environment variable holding the admin credential of /api/admin")
    ] = None
    api_keys_required: Annotated[
        bool,
        Meta(
            description="whether every /api request needs an X-Api-Key (otherwise keys lift the rate limit)"
        ),
    ] = False
    anonymous_requests_per_minute: Annotated[
        int, Meta(ge=1, le=1_000_000, description="requests per minute from one client address without a key")
    ] = 600
    key_requests_per_minute: Annotated[
        int,
        Meta(
            ge=1, le=1_000_000, description="requests per minute of a new API key (the admin may change it)"
        ),
    ] = 6000
    websockets_per_address: Annotated[
        int, Meta(ge=1, le=100_000, description="WebSocket connections one client address may hold open")
    ] = 32
    faucet_wei: Annotated[
        int,
        Meta(
            ge=0,
            description="wei POST /api/claim-fund sends an address (from the gateway's operator account); "
            "0 turns the faucet off, as on any network whose coins are worth something",
        ),
    ] = 0
    faucet_period_seconds: Annotated[
        float, Meta(gt=0, description="how often one address may claim from the faucet")
    ] = 86_400.0


class AlertSettings(_Section, frozen=True, kw_only=True):
    """[alerts]: messages to the gateway's operator when a task fails for good or a keeper stays
    offline (only the gateway role uses it; gateway/alerts/). Off unless a webhook or an SMTP
    server is set."""

    webhook_url: Annotated[
        HttpUrl | None,
        Meta(
            description="URL alerts are POSTed to as Telegram Bot API sendMessage JSON, e.g. "
            "https://api.telegram.org/bot<token>/sendMessage (it holds the bot token: "
            "prefer TRIGGERX_ALERTS_WEBHOOK_URL to the file)"
        ),
    ] = None
    webhook_chat_id: Annotated[
        int | str | None,
        Meta(description="chat_id sent with each webhook alert, e.g. -1001234567890 or @channel"),
    ] = None
    smtp_host: Annotated[
        HostName | None,
        Meta(description="SMTP server that email alerts go through; needs smtp_from, smtp_to"),
    ] = None
    smtp_port: Annotated[
        int, Meta(description="the SMTP server's port: 587 (submission, STARTTLS), or 25 for a local relay")
    ] = 587
    smtp_starttls: Annotated[
        bool,
        Meta(description="switch SMTP to TLS (certificate checked) first; false only for a trusted relay"),
    ] = True
    smtp_from: Annotated[EmailAddress | None, Meta(description="the From address of email alerts")] = None
    smtp_to: Annotated[
        list[EmailAddress], Meta(description="recipients of email alerts (comma-separated outside TOML)")
    ] = []
    smtp_username: Annotated[
        str | None, Meta(description="SMTP login, if the server wants one (its password: smtp_password_*)")
    ] = None
    smtp_password_file: Annotated[Path | None, Meta(description="file holding the SMTP password")] = None
    smtp_password_env: Annotated[
        str | None, Meta(description="environment variable holding the SMTP password")
    ] = None
    keeper_offline_after_seconds: Annotated[
        float,
        Meta(
            description="alert once when a keeper has been offline (no heartbeat) this long, "
            "and again when it is back; 0 turns keeper alerts off"
        ),
    ] = 600.0
    job_alert_every_seconds: Annotated[
        float,
        Meta(
            ge=0,
            description="at most one failure alert per job this often; the job's failures in "
            "between are summed up in one alert when the time is up; 0: one alert per failure",
        ),
    ] = 3600.0


class GenesisSettings(_Section, frozen=True, kw_only=True):
    """[genesis]: the network definition."""

    path: Annotated[Path, Meta(description="the network's genesis.json")]


class Settings(msgspec.Struct, frozen=True):
    """The whole config, one attribute per section."""

    node: NodeSettings
    chain: ChainSettings
    mesh: MeshSettings
    keys: KeySettings
    gateway: GatewaySettings
    genesis: GenesisSettings
    alerts: AlertSettings


ROLE_NEEDS: dict[str, tuple[str, ...]] = {"keeper": ("keys.bls_keystore",)}
"""Settings optional in general that a role cannot do without: keepers sign BLS votes."""

PASSWORDS: tuple[tuple[str, str, str], ...] = (
    ("keys.operator_keystore", "keys.operator_password_file", "keys.operator_password_env"),
    ("keys.bls_keystore", "keys.bls_password_file", "keys.bls_password_env"),
    ("alerts.smtp_username", "alerts.smtp_password_file", "alerts.smtp_password_env"),
)
"""Each setting that needs a password (the two keystores, the SMTP login) with the two ways of
giving it, of which exactly one must be set when that setting is."""


@dataclass(frozen=True)
class Setting:
    """One setting, with the names it has in each source."""

    section: str
    key: str
    type: Any
    help: str
    required: bool
    default: Any
    checked_type: Any  # `type` with its bounds (Annotated Meta): what values are converted to

    @property
    def name(self) -> str:
        """The dotted name, `section.key`, that errors use."""
        return f"{self.section}.{self.key}"

    @property
    def env(self) -> str:
        """The environment variable, `TRIGGERX_<SECTION>_<KEY>`."""
        return f"{ENV_PREFIX}_{self.section}_{self.key}".upper()

    @property
    def flags(self) -> tuple[str, ...]:
        """The command-line flags, the one errors name first: `--<section>-<key>` and any alias."""
        flag = f"--{self.section}-{self.key}".replace("_", "-")
        alias = _FLAG_ALIASES.get(self.name)
        return (alias, flag) if alias else (flag,)

    @property
    def base_type(self) -> Any:
        """The type without `| None`."""
        kinds = [kind for kind in typing.get_args(self.type) if kind is not type(None)]
        return kinds[0] if self.optional else self.type

    @property
    def optional(self) -> bool:
        """Whether None is a value of this setting."""
        return type(None) in typing.get_args(self.type)


def _settings() -> tuple[Setting, ...]:
    found = []
    for section in msgspec.structs.fields(Settings):
        for field in msgspec.structs.fields(section.type):
            meta = typing.get_args(field.type)[1]
            default = (
                field.default_factory() if field.default_factory is not msgspec.NODEFAULT else field.default
            )
            kind = typing.get_args(field.type)[0]  # the type inside Annotated[...]
            found.append(
                Setting(section.name, field.name, kind, meta.description, field.required, default, field.type)
            )
    return tuple(found)


SETTINGS: tuple[Setting, ...] = _settings()
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
SECTIONS: dict[str, type[_Section]] = {field.name: field.type for field in msgspec.structs.fields(Settings)}
