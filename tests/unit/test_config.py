"""The node config: precedence of its sources, derived names, and one-line errors naming the key."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from node.config import ROLES, SETTINGS, ConfigError, Role, load_config

PEER = "12D3KooWGFyHXVuMi1aNmbe3YiBW2tDXDgorssTz2WfdhqczWxRE"

KEEPER = """\
[node]
role = "keeper"

[chain]
rpc_url = "http://file.example:8545"

[keys]
operator_keystore = "keys/operator.json"
operator_password_file = "password"
bls_keystore = "/abs/bls.json"
bls_password_env = "BLS_PASSWORD"
identity = "keys/identity.key"

[genesis]
path = "genesis.json"
"""


def write(tmp_path: Path, text: str = KEEPER) -> Path:
    path = tmp_path / "keeper.toml"
    path.write_text(text)
    return path


def error_of(
    tmp_path: Path, text: str = KEEPER, env: dict[str, str] | None = None, flags: dict[str, str] | None = None
) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env or {}, flags or {})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_file_alone_gives_its_values_and_the_defaults(tmp_path):
    config = load_config(write(tmp_path), {}, {})
    settings = config.settings
    assert settings.node.role == "keeper"
    assert settings.chain.rpc_url == "http://file.example:8545"
    assert settings.chain.ws_url is None
    assert settings.node.log_level == "info"
    assert settings.mesh.listen == "/ip4/0.0.0.0/tcp/4001"
    assert settings.mesh.bootstrap == []
    assert settings.gateway.http_listen == "127.0.0.1:8080"
    assert config.origins["chain.rpc_url"] == f"from file {tmp_path / 'keeper.toml'}"
    assert config.origins["node.log_level"] == "default"


@pytest.mark.parametrize(
    ("env", "flags", "expected", "origin"),
    [
        ({}, {}, "http://file.example:8545", "from file"),
        (
            {"TRIGGERX_CHAIN_RPC_URL": "http://env.example"},
            {},
            "http://env.example",
            "from env TRIGGERX_CHAIN_RPC_URL",
        ),
        (
            {"TRIGGERX_CHAIN_RPC_URL": "http://env.example"},
            {"chain.rpc_url": "http://flag.example"},
            "http://flag.example",
            "from flag --chain-rpc-url",
        ),
        ({}, {"chain.rpc_url": "http://flag.example"}, "http://flag.example", "from flag --chain-rpc-url"),
    ],
)
def test_a_flag_beats_the_environment_which_beats_the_file(tmp_path, env, flags, expected, origin):
    config = load_config(write(tmp_path), env, flags)
    assert config.settings.chain.rpc_url == expected
    assert config.origins["chain.rpc_url"].startswith(origin)


def test_the_config_can_come_from_the_environment_and_flags_alone():
    env = {
        "TRIGGERX_NODE_ROLE": "aggregator",
        "TRIGGERX_CHAIN_RPC_URL": "https://rpc.example",
        "TRIGGERX_KEYS_OPERATOR_KEYSTORE": "operator.json",
        "TRIGGERX_KEYS_OPERATOR_PASSWORD_ENV": "OPERATOR_PASSWORD",
        "TRIGGERX_KEYS_IDENTITY": "identity.key",
        "TRIGGERX_MESH_BOOTSTRAP": f"/ip4/10.0.0.1/tcp/4001/p2p/{PEER}, /dns4/agg/tcp/4001/p2p/{PEER}",
    }
    config = load_config(None, env, {"genesis.path": "genesis.json", "node.log_level": "debug"})
    settings = config.settings
    assert settings.node.role == "aggregator"
    assert settings.node.log_level == "debug"
    assert settings.keys.bls_keystore is None  # aggregators sign no votes
    assert settings.mesh.bootstrap == [f"/ip4/10.0.0.1/tcp/4001/p2p/{PEER}", f"/dns4/agg/tcp/4001/p2p/{PEER}"]
    assert settings.keys.operator_keystore == Path("operator.json")  # relative to the working directory


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path):
    keys = load_config(write(tmp_path), {}, {}).settings.keys
    assert keys.operator_keystore == tmp_path / "keys/operator.json"
    assert keys.operator_password_file == tmp_path / "password"
    assert keys.bls_keystore == Path("/abs/bls.json")


def test_an_empty_text_unsets_an_optional_setting(tmp_path):
    text = KEEPER.replace("[chain]\n", '[chain]\nws_url = "wss://file.example"\n')
    assert load_config(write(tmp_path, text), {}, {}).settings.chain.ws_url == "wss://file.example"
    config = load_config(write(tmp_path, text), {"TRIGGERX_CHAIN_WS_URL": ""}, {})
    assert config.settings.chain.ws_url is None


def test_names_are_derived_from_the_schema():
    names = {setting.name: setting for setting in SETTINGS}
    password = names["keys.operator_password_file"]
    assert password.env == "TRIGGERX_KEYS_OPERATOR_PASSWORD_FILE"
    assert password.flags == ("--keys-operator-password-file",)
    assert names["node.role"].flags == ("--role", "--node-role")
    assert len({s.env for s in SETTINGS}) == len({f for s in SETTINGS for f in s.flags[-1:]}) == len(SETTINGS)
    assert all(setting.help for setting in SETTINGS)
    assert set(typing.get_args(Role)) == set(ROLES)


def test_other_chains_to_watch_come_as_one_line_each(tmp_path):
    text = KEEPER.replace("[chain]\n", '[chain]\nwatch = ["31338  http://b.example:8545 poll_ms=250"]\n')
    [watched] = load_config(write(tmp_path, text), {}, {}).settings.chain.watch
    assert watched == "31338 http://b.example:8545 poll_ms=250"
    assert (watched.endpoint.chain_id, watched.endpoint.ws_url, watched.endpoint.poll_ms) == (
        31338,
        None,
        250,
    )
    env = {"TRIGGERX_CHAIN_WATCH": "5 http://a.example,6 http://b.example wss://b.example"}
    watched = load_config(write(tmp_path), env, {}).settings.chain.watch
    assert [w.endpoint.chain_id for w in watched] == [5, 6]


def test_ipv6_listen_addresses_need_brackets():
    env = {"TRIGGERX_GATEWAY_HTTP_LISTEN": "[::1]:0"}
    flags = {
        "node.role": "gateway",
        "chain.rpc_url": "http://127.0.0.1:8545",
        "keys.operator_keystore": "o.json",
        "keys.operator_password_env": "P",
        "keys.identity": "id.key",
        "genesis.path": "genesis.json",
    }
    assert load_config(None, env, flags).settings.gateway.http_listen == "[::1]:0"
    with pytest.raises(
        ConfigError, match=r"^gateway.http_listen: expected host:port, got '::1:80' \(from env"
    ):
        load_config(None, {"TRIGGERX_GATEWAY_HTTP_LISTEN": "::1:80"}, flags)


def test_other_triggerx_variables_are_not_settings(tmp_path):
    env = {"TRIGGERX_DEPLOYER_KEY": "0x01", "TRIGGERX_BLS_BACKEND": "py_ecc", "TRIGGERX_KEYS_PASSWORD": "x"}
    assert load_config(write(tmp_path), env, {}).settings.node.role == "keeper"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'rpc_url = "http://file.example:8545"\n',
            "",
            "chain.rpc_url: missing; set it in [chain] of the config file, in TRIGGERX_CHAIN_RPC_URL "
            "or with --chain-rpc-url",
        ),
        (
            'rpc_url = "http://file.example:8545"',
            "rpc_url = 8545",
            "chain.rpc_url: expected an http(s) URL, got 8545 (from file {file})",
        ),
        (
            'rpc_url = "http://file.example:8545"',
            'rpc_url = "ftp://file.example"',
            "chain.rpc_url: expected an http(s) URL, got 'ftp://file.example' (from file {file})",
        ),
        (
            'role = "keeper"',
            'role = "boss"',
            "node.role: expected keeper or aggregator or gateway, got 'boss' (from file {file})",
        ),
        (
            "[chain]\n",
            '[chain]\nws_url = ""\n',
            "chain.ws_url: expected a ws(s) URL, got '' (from file {file})",
        ),
        (
            "[chain]\n",
            '[mesh]\nbootstrap = "/ip4/1.2.3.4/tcp/1"\n[chain]\n',
            "mesh.bootstrap: expected `array`, got `str` (from file {file})",
        ),
        (
            "[chain]\n",
            f'[mesh]\nbootstrap = ["/ip4/1.2.3.4/tcp/1/p2p/{PEER}", "/ip4/1.2.3.4/tcp/1"]\n[chain]\n',
            "mesh.bootstrap[1]: expected a multiaddr ending in /p2p/<peer id>, got '/ip4/1.2.3.4/tcp/1' "
            "(from file {file})",
        ),
        (
            "[chain]\n",
            '[chain]\nwatch = ["31338 http://b.example ws://b.example confirmations=99999"]\n',
            "chain.watch[0]: 'confirmations=99999' in '31338 http://b.example ws://b.example "
            "confirmations=99999': expected confirmations in [0, 10000], poll_ms in [100, 60000] "
            "(from file {file})",
        ),
        (
            "[chain]\n",
            '[chain]\nwatch = ["http://b.example"]\n',
            "chain.watch[0]: expected `<chain id> <http(s) rpc url> [<ws url>] [confirmations=N] "
            "[poll_ms=N]`, got 'http://b.example' (from file {file})",
        ),
        ("[chain]\n", "[chain]\nrpcurl = 1\n", "chain.rpcurl: unknown key (from file {file})"),
        ("[chain]\n", "[chains]\n", "chains: unknown section (from file {file})"),
        ("[node]\n", 'role = "keeper"\n[node]\n', "role: unknown key outside any section (from file {file})"),
        (
            "[node]\n",
            'gateway = "127.0.0.1:80"\n[node]\n',
            "gateway: expected a table [gateway], got '127.0.0.1:80' (from file {file})",
        ),
        (
            'bls_password_env = "BLS_PASSWORD"\n',
            "",
            "keys.bls_password_file or keys.bls_password_env: missing; keys.bls_keystore needs a password",
        ),
        (
            'bls_password_env = "BLS_PASSWORD"\n',
            'bls_password_env = "BLS_PASSWORD"\nbls_password_file = "x"\n',
            "keys.bls_password_file and keys.bls_password_env: both set "
            "(from file {file}, from file {file}); give one of them",
        ),
        (
            'bls_keystore = "/abs/bls.json"\n',
            "",
            "keys.bls_keystore: missing; the keeper role needs it: set it in [keys] of the config file, "
            "in TRIGGERX_KEYS_BLS_KEYSTORE or with --keys-bls-keystore",
        ),
        (
            "[node]",
            "[node",
            "config file {file}: not valid TOML: "
            "Expected ']' at the end of a table declaration (at line 1, column 6)",
        ),
    ],
)
def test_a_bad_file_is_one_line_naming_the_key_and_the_source(tmp_path, old, new, message):
    assert old in KEEPER
    file = tmp_path / "keeper.toml"
    assert error_of(tmp_path, KEEPER.replace(old, new)) == message.format(file=file)


def test_a_bad_value_is_reported_before_a_missing_one(tmp_path):
    text = KEEPER.replace('role = "keeper"', "").replace('"genesis.json"', "1")
    assert error_of(tmp_path, text).startswith("genesis.path: expected a path, got 1 (from file")


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        (
            {"TRIGGERX_NODE_ROLE": "boss"},
            {},
            "node.role: expected keeper or aggregator or gateway, got 'boss' (from env TRIGGERX_NODE_ROLE)",
        ),
        (
            {"TRIGGERX_NODE_ROLE": "boss"},
            {"node.role": "chief"},
            "node.role: expected keeper or aggregator or gateway, got 'chief' (from flag --role)",
        ),
        (
            {},
            {"mesh.listen": "tcp/4001"},
            "mesh.listen: expected a multiaddr (like /ip4/127.0.0.1/tcp/4001), got 'tcp/4001' "
            "(from flag --mesh-listen)",
        ),
        (
            {"TRIGGERX_MESH_LISTEN": "/ip4/999.0.0.1/tcp/1"},
            {},
            "mesh.listen: expected a multiaddr, got '/ip4/999.0.0.1/tcp/1': "
            "base address '999.0.0.1' is not IPv4 (from env TRIGGERX_MESH_LISTEN)",
        ),
        (
            {"TRIGGERX_GATEWAY_HTTP_LISTEN": "localhost:99999"},
            {},
            "gateway.http_listen: port 99999 in 'localhost:99999' is not in [0, 65535] "
            "(from env TRIGGERX_GATEWAY_HTTP_LISTEN)",
        ),
        (  # bounds are checked (the Meta bounds were dropped with the Annotated wrapper until 2026-12)
            {"TRIGGERX_GATEWAY_DISPATCH_LEAD_MS": "3600000"},
            {},
            "gateway.dispatch_lead_ms: expected `int` <= 5000 (from env TRIGGERX_GATEWAY_DISPATCH_LEAD_MS)",
        ),
        (
            {},
            {"keys.bls_keystore": ""},
            "keys.bls_keystore: missing; the keeper role needs it: set it in [keys] of the config file, "
            "in TRIGGERX_KEYS_BLS_KEYSTORE or with --keys-bls-keystore",
        ),
    ],
)
def test_a_bad_environment_variable_or_flag_is_one_line_naming_it(tmp_path, env, flags, message):
    assert error_of(tmp_path, env=env, flags=flags) == message


@pytest.mark.parametrize(
    ("name", "problem"), [("missing.toml", "No such file or directory"), ("", "Is a directory")]
)
def test_an_unreadable_file_is_one_line(tmp_path, name, problem):
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / name, {}, {})
    assert str(caught.value) == f"config file {tmp_path / name}: cannot read it: {problem}"


def test_the_metrics_address_is_optional_and_checked(tmp_path):
    assert load_config(write(tmp_path), {}, {}).settings.node.metrics_listen is None  # none served
    text = KEEPER.replace('role = "keeper"\n', 'role = "keeper"\nmetrics_listen = "127.0.0.1:9101"\n')
    assert load_config(write(tmp_path, text), {}, {}).settings.node.metrics_listen == "127.0.0.1:9101"
    env = {"TRIGGERX_NODE_METRICS_LISTEN": "[::1]:0"}
    assert load_config(write(tmp_path), env, {}).settings.node.metrics_listen == "[::1]:0"
    assert error_of(tmp_path, flags={"node.metrics_listen": "9101"}) == (
        "node.metrics_listen: expected host:port, got '9101' (from flag --node-metrics-listen)"
    )
    bad = KEEPER.replace('role = "keeper"\n', 'role = "keeper"\nmetrics_listen = "localhost:70000"\n')
    assert error_of(tmp_path, bad) == (
        f"node.metrics_listen: port 70000 in 'localhost:70000' is not in [0, 65535] "
        f"(from file {tmp_path / 'keeper.toml'})"
    )
