"""`triggerx-node keys ...` and `--role ... --config ...`, run as a user runs them.

Keystores are made with `--scrypt-n 16` so the tests stay fast; the loaders accept any work
factor up to 2**20.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account
from libp2p.crypto.ed25519 import create_new_key_pair

from node.bls import Keystore, choose_backend
from node.keys import (
    KeyDirectory,
    KeyFileError,
    WrongPasswordError,
    decode_identity,
    encrypt_operator_key,
    load_bls_secret,
    load_identity,
    load_operator_account,
    peer_id,
)

CLI = str(Path(sys.executable).with_name("triggerx-node"))
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
FAST = ("--scrypt-n", "16")


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Settings in the developer's own environment must not leak into these runs.
    clean = {name: value for name, value in os.environ.items() if not name.startswith("TRIGGERX_")}
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=120, check=False, env={**clean, **(env or {})}
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed run."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("triggerx-node: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyDirectory:
    """A key directory made by `keys new`, its password in `password` next to it."""
    root = tmp_path_factory.mktemp("operator")
    (root / "password").write_text(PASSWORD + "\n")
    result = run("keys", "new", "--dir", str(root / "keys"), "--password-file", str(root / "password"), *FAST)
    assert result.returncode == 0, result.stderr
    return KeyDirectory(root / "keys")


def test_keys_new_writes_three_private_files_that_show_prints(keys):
    assert keys.root.stat().st_mode & 0o777 == 0o700
    for path in keys.files():
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert not [path for path in keys.root.iterdir() if path not in keys.files()]  # no temporary left
    result = run("keys", "show", "--dir", str(keys.root))  # no password needed
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["address"] == load_operator_account(keys.operator, PASSWORD).address
    secret = load_bls_secret(keys.bls, PASSWORD)
    assert shown["blsPublicKey"] == "0x" + choose_backend().secret_to_public(secret).hex()
    assert shown["peerId"] == str(peer_id(load_identity(keys.identity)))
    assert shown["peerId"].startswith("12D3KooW")
    assert Keystore.load(keys.bls).path == "m/12381/3600/0/0/0"


def test_keys_new_refuses_to_overwrite_unless_forced(keys, tmp_path):
    before = {path: path.read_bytes() for path in keys.files()}
    result = run(
        "keys", "new", "--dir", str(keys.root), "--password-env", "PASSWORD", *FAST, env={"PASSWORD": "x"}
    )
    assert one_error_line(result) == (
        f"triggerx-node: error: {keys.operator} already exists (pass --force to overwrite it)"
    )
    assert {path: path.read_bytes() for path in keys.files()} == before

    forced = KeyDirectory(tmp_path / "keys")
    args = ("keys", "new", "--dir", str(forced.root), "--password-env", "PASSWORD", *FAST)
    first = json.loads(run(*args, env={"PASSWORD": "one"}).stdout)
    second = run(*args, "--force", env={"PASSWORD": "two"})
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["address"] != first["address"]
    assert load_operator_account(forced.operator, "two").address == json.loads(second.stdout)["address"]


def test_keys_import_stores_existing_secrets(keys, tmp_path):
    operator_key, bls_secret = "0x" + "11" * 32, (7).to_bytes(32, "big")
    (tmp_path / "operator.hex").write_text(operator_key + "\n")
    (tmp_path / "bls.hex").write_text(bls_secret.hex())
    result = run(
        "keys", "import", "--dir", str(tmp_path / "keys"), "--password-env", "PASSWORD", *FAST,
        "--operator-key-file", str(tmp_path / "operator.hex"),
        "--bls-secret-file", str(tmp_path / "bls.hex"),
        "--identity-key-file", str(keys.identity),
        env={"PASSWORD": PASSWORD},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["address"] == Account.from_key(operator_key).address
    assert shown["blsPublicKey"] == "0x" + choose_backend().secret_to_public(bls_secret).hex()
    assert shown["peerId"] == str(peer_id(load_identity(keys.identity)))
    assert load_bls_secret(tmp_path / "keys" / "bls.json", PASSWORD) == bls_secret


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["show"], {}, "cannot read operator keystore {dir}/operator.json: No such file or directory"),
        (
            ["new", "--password-env", "UNSET"],
            {},
            "environment variable UNSET (the keystore password) is not set",
        ),
        (
            ["new", "--password-env", "EMPTY"],
            {"EMPTY": ""},
            "the password is empty: it would protect nothing",
        ),
    ],
)
def test_bad_keys_input_is_one_line(tmp_path, args, env, message):
    result = run("keys", args[0], "--dir", str(tmp_path), *args[1:], env=env)
    assert one_error_line(result) == "triggerx-node: error: " + message.format(dir=tmp_path)


KEEPER = """\
[node]
role = "keeper"
[chain]
rpc_url = {rpc_url}
[keys]
operator_keystore = "{keydir}/operator.json"
operator_password_file = "{password}"
bls_keystore = "{keydir}/bls.json"
bls_password_env = "BLS_PASSWORD"
identity = "{keydir}/identity.key"
[genesis]
path = "{genesis}"
"""


def keeper_config(tmp_path: Path, keys: KeyDirectory, **changes: str) -> Path:
    fields = {
        "rpc_url": '"http://127.0.0.1:8545"',
        "keydir": str(keys.root),
        "password": str(keys.root.parent / "password"),
        "genesis": str(ROOT / "genesis.json"),
    }
    path = tmp_path / "keeper.toml"
    path.write_text(KEEPER.format(**{**fields, **changes}))
    return path


def test_a_valid_config_with_an_unreachable_chain_stops_with_one_line(keys, tmp_path):
    config = keeper_config(tmp_path, keys)
    result = run("--role", "keeper", "--config", str(config), env={"BLS_PASSWORD": PASSWORD})
    assert result.returncode == 2
    line = one_error_line(result)
    assert line.startswith("triggerx-node: error: TransportError: ")
    assert "ConnectError" in line


@pytest.mark.parametrize(
    ("changes", "env", "message"),
    [
        (
            {"rpc_url": '"http://x"\n[mesh]\nlisten = 4001'},
            {},
            "mesh.listen: expected a multiaddr, got 4001 (from file {config})",
        ),
        ({"rpc_url": "8545"}, {}, "chain.rpc_url: expected an http(s) URL, got 8545 (from file {config})"),
        (
            {},
            {"TRIGGERX_CHAIN_RPC_URL": "localhost"},
            "chain.rpc_url: expected an http(s) URL, got 'localhost' (from env TRIGGERX_CHAIN_RPC_URL)",
        ),
        (
            {"rpc_url": '"http://x"\nbogus = 1'},
            {},
            "chain.bogus: unknown key (from file {config})",
        ),
        (
            {"genesis": "nowhere.json"},
            {},
            "genesis.path: genesis {dir}/nowhere.json: cannot read it: No such file or directory "
            "(from file {config})",
        ),
        (
            {"keydir": "{dir}"},
            {},
            "keys.operator_keystore: cannot read operator keystore {dir}/operator.json: "
            "No such file or directory (from file {config})",
        ),
        (
            {},
            {"BLS_PASSWORD": "wrong"},
            "keys.bls_password_env: wrong password for BLS keystore {keys}/bls.json (from file {config})",
        ),
        (
            {"password": "{dir}/missing"},
            {},
            "keys.operator_password_file: cannot read password file {dir}/missing: No such file or directory "
            "(from file {config})",
        ),
    ],
)
def test_a_bad_config_is_one_clear_line(keys, tmp_path, changes, env, message):
    changes = {name: value.format(dir=tmp_path) for name, value in changes.items()}
    config = keeper_config(tmp_path, keys, **changes)
    result = run("--config", str(config), env={"BLS_PASSWORD": PASSWORD, **env})
    expected = message.format(config=config, dir=tmp_path, keys=keys.root)
    assert one_error_line(result) == f"triggerx-node: error: {expected}"


def test_a_missing_setting_is_one_clear_line(tmp_path):
    config = tmp_path / "keeper.toml"
    config.write_text('[node]\nrole = "keeper"\n')
    result = run("--config", str(config))
    assert one_error_line(result) == (
        "triggerx-node: error: chain.rpc_url: missing; set it in [chain] of the config file, "
        "in TRIGGERX_CHAIN_RPC_URL or with --chain-rpc-url"
    )


def test_the_loaders_raise_one_line_errors(keys, tmp_path):
    with pytest.raises(WrongPasswordError, match=r"^wrong password for operator keystore .*operator.json$"):
        load_operator_account(keys.operator, "wrong")
    with pytest.raises(WrongPasswordError, match=r"^wrong password for BLS keystore .*bls.json$"):
        load_bls_secret(keys.bls, "wrong")
    hostile = json.loads(encrypt_operator_key(b"\x01" * 32, "pw", scrypt_n=16))
    hostile["crypto"]["kdfparams"]["n"] = 2**30  # would need 1 TiB
    (tmp_path / "hostile.json").write_text(json.dumps(hostile))
    with pytest.raises(
        KeyFileError, match=r"not a V3 keystore: Expected `int` <= 1048576 - at `\$.crypto.kdfparams.n`"
    ):
        load_operator_account(tmp_path / "hostile.json", "pw")
    (tmp_path / "identity.key").write_bytes(b"\x08\x01\x12\x03abc")
    with pytest.raises(KeyFileError, match=r"^identity .*: expected a 32- or 64-byte Ed25519 key, got 3$"):
        load_identity(tmp_path / "identity.key")


def test_an_identity_in_py_libp2ps_own_encoding_loads():
    pair = create_new_key_pair()
    loaded = decode_identity(pair.private_key.serialize(), "py-libp2p key")
    assert peer_id(loaded) == peer_id(pair)
