"""`triggerx-node operator`: a keeper the devnet command did not make joins the running devnet
from `keys new` + `operator register`, is admitted, comes online, executes and attests tasks;
and bad input is one line on stderr with a non-zero exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from node.chain import free_port
from node.cli import build_parser
from node.commands.operator import run_operator
from node.devnet import devnet_demo_job
from node.keys import load_bls_secret

from ..conftest import CLI, keepers_online, rpc, wait_for

pytestmark = pytest.mark.e2e

# The governor of a devnet's contracts: their deployer, anvil's first dev account (the devnet's admin).
GOVERNOR_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
PASSWORD = "a keeper's own password"
ROOT = Path(__file__).resolve().parents[2]


OPERATOR = [CLI, "operator"]


def operator(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`triggerx-node operator *args`, started, its output piped."""
    environment = os.environ | (env or {})
    return subprocess.Popen(
        [*OPERATOR, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        cwd=ROOT,
    )


def succeeds(*args: str, env: dict[str, str] | None = None) -> dict:
    """The JSON report of an operator action that must succeed."""
    process = operator(*args, "--json", env=env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out)


def fail(capsys: pytest.CaptureFixture[str], *cases: tuple[list[str], str]) -> None:
    """Operator actions (their arguments, what they must say) that must each fail with one line
    on stderr saying it and exit code 1; run in this process (the real CLI spends seconds
    importing, each time), through the same parser and run_operator."""
    parser = build_parser()
    for args, says in cases:
        code = run_operator(parser.parse_args(["operator", *args]))
        out, err = capsys.readouterr()
        assert code == 1, (args, out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("triggerx-node: error: operator "), lines
        assert says in lines[0], lines


def new_keys(folder: Path) -> tuple[Path, Path, dict]:
    """`triggerx-node keys new` into `folder`/keys: the key directory, the password file and
    the public identity it prints."""
    password = folder / "password"
    password.write_text(PASSWORD)
    keys = folder / "keys"
    command = [CLI, "keys", "new", "--dir", str(keys), "--password-file", str(password), "--scrypt-n", "16"]
    made = subprocess.run(command, capture_output=True, text=True, check=True)
    return keys, password, json.loads(made.stdout)


def devnet_folder(devnet: dict) -> Path:
    return Path(devnet["configs"]["gateway"]).parents[1]


def keeper_config(folder: Path, devnet: dict, metrics_port: int) -> Path:
    """A keeper's TOML config, as README's "Run a keeper on an existing network" writes it: the
    chain and script source of the network (read off one of its keepers), the keys in `folder`."""
    network = tomllib.loads(Path(devnet["configs"]["keeper-1"]).read_text())
    text = f"""
[node]
role = "keeper"
data_dir = "data"
metrics_listen = "127.0.0.1:{metrics_port}"
script_sources = {json.dumps(network["node"]["script_sources"])}
[chain]
rpc_url = "{network["chain"]["rpc_url"]}"
ws_url = "{network["chain"]["ws_url"]}"
[mesh]
listen = "/ip4/127.0.0.1/tcp/{free_port()}"
[keys]
operator_keystore = "keys/operator.json"
operator_password_file = "password"
bls_keystore = "keys/bls.json"
bls_password_file = "password"
identity = "keys/identity.key"
[genesis]
path = "{devnet_folder(devnet) / "genesis.json"}"
"""
    config = folder / "keeper.toml"
    config.write_text(text)
    return config


def test_a_keeper_from_keys_new_and_register_joins_executes_and_attests(client_devnet, tmp_path, capsys):
    devnet, gateway = client_devnet, client_devnet["gatewayUrl"]
    facts = str(devnet_folder(devnet) / "devnet.json")
    keys, password, identity = new_keys(tmp_path)
    address = identity["address"]
    assert address not in devnet["keepers"].values()
    mine = ["--devnet", facts, "--keys-dir", str(keys), "--password-file", str(password)]
    admin = {"ADMIN_TOKEN": devnet["adminToken"], "GOVERNOR_KEY": GOVERNOR_KEY}

    registered = succeeds("register", *mine, "--name", "a new operator")
    assert registered["operator"] == identity
    assert registered["form"]["status"] == "pending"
    assert registered["form"]["peerId"] == identity["peerId"]
    assert registered["chain"]["sent"] is False  # registerOperator is the governor's
    before = succeeds("status", *mine, "--admin-token-env", "ADMIN_TOKEN", env=admin)
    assert before["chain"]["registered"] is False
    assert before["chain"]["governor"] == Account.from_key(GOVERNOR_KEY).address
    assert before["form"]["status"] == "pending"
    assert before["keeper"] is None

    # The operator's account pays its gas (its tasks' hub transactions, its own deactivation).
    rpc(devnet["rpcUrl"], "anvil_setBalance", address, hex(100 * 10**18))
    # Admission, as the devnet's admin: registerOperator from the form as the governor, form approved.
    admission = ["--devnet", facts, "--admin-token-env", "ADMIN_TOKEN", "--governor-key-env", "GOVERNOR_KEY"]
    admitted = succeeds("admit", address, "--stake", "1000eth", *admission, env=admin)
    assert admitted["chain"]["sent"] is True
    assert admitted["form"]["status"] == "approved"
    operator_id = admitted["chain"]["operatorId"]

    config = keeper_config(tmp_path, devnet, metrics_port := free_port())
    with (tmp_path / "node.log").open("wb") as log:
        keeper = subprocess.Popen([CLI, "--config", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        # Online once the gateway and the aggregator re-read the registry (every 30 s).
        wait_for(lambda: keepers_online(gateway).get(address) is True, timeout=90)
        end = int(time.time()) + 90
        jobs = [httpx.post(f"{gateway}/api/jobs", json=devnet_demo_job(devnet, 2, end)) for _ in range(2)]
        assert all(job.status_code == 201 for job in jobs), [job.text for job in jobs]

        def counts() -> dict:
            return httpx.get(f"{gateway}/api/keepers/address/{address}").json()["keeper"]

        wait_for(lambda: counts()["tasksExecuted"] >= 1 and counts()["tasksAttested"] >= 1, timeout=120)
        tasks = [
            task
            for job in jobs
            for task in httpx.get(f"{gateway}/api/tasks/job/{job.json()['job']['id']}").json()["tasks"]
            if task["status"] == "completed"
        ]
        performed = [t for t in tasks if t["attempts"][-1]["performer"] == address]
        attested = [t for t in tasks if t["attempts"][-1]["performer"] != address]
        assert performed, tasks
        assert any(operator_id in t["attempts"][-1]["signers"] for t in attested), attested

        status = succeeds("status", "--config", str(config), "--devnet", facts)
        assert status["chain"]["active"] is True
        assert status["chain"]["stake"] == str(1000 * 10**18)
        assert status["chain"]["blsPublicKey"] == identity["blsPublicKey"]
        assert status["chain"]["peerId"] == identity["peerId"]
        assert status["keeper"]["online"] is True
        assert status["keeper"]["tasksExecuted"] >= 1
        assert status["health"]["url"] == f"http://127.0.0.1:{metrics_port}/metrics"
        assert status["health"]["up"] is True
        assert status["health"]["tasksExecuted"] >= 1

        fail(
            capsys,
            (["stake", "--add", "500eth", *mine], "updateStake is the governor's"),
            (["deactivate", *mine], "pass --yes"),
        )
        staked = succeeds("stake", "--add", "500eth", *mine, "--governor-key-env", "GOVERNOR_KEY", env=admin)
        assert staked["chain"]["sent"] is True
        left = succeeds("deactivate", "--yes", *mine)  # as the operator itself
        assert left["chain"]["operatorId"] == operator_id
        after = succeeds("status", *mine)
        assert after["chain"]["registered"] is True
        assert after["chain"]["active"] is False
        assert after["chain"]["stake"] == str(1500 * 10**18)
    finally:
        keeper.send_signal(signal.SIGINT)
        keeper.wait(timeout=30)


def test_bad_input_is_one_line_and_a_non_zero_exit(client_devnet, tmp_path, capsys, monkeypatch):
    devnet = client_devnet
    facts = str(devnet_folder(devnet) / "devnet.json")
    keys, password, identity = new_keys(tmp_path)
    mine = ["--devnet", facts, "--keys-dir", str(keys), "--password-file", str(password)]

    (tmp_path / "wrong").write_text("not the password")
    wrong = ["--devnet", facts, "--keys-dir", str(keys), "--password-file", str(tmp_path / "wrong")]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "operator.json").write_text('{"version": 3}')
    unreachable = f"http://127.0.0.1:{free_port()}"
    # An account of its own with keeper-1's BLS key, which the registry holds already.
    folder = devnet_folder(devnet)
    secret = load_bls_secret(folder / "keeper-1" / "keys" / "bls.json", (folder / "password").read_text())
    (tmp_path / "bls-secret").write_text(secret.hex())
    (tmp_path / "operator-key").write_text(Account.create().key.hex())
    imported = tmp_path / "imported"
    command = [CLI, "keys", "import", "--dir", str(imported), "--password-file", str(password)]
    secrets = [
        "--operator-key-file",
        str(tmp_path / "operator-key"),
        "--bls-secret-file",
        str(tmp_path / "bls-secret"),
    ]
    subprocess.run([*command, *secrets, "--scrypt-n", "16"], capture_output=True, check=True)
    on_chain = ["--rpc-url", devnet["rpcUrl"], "--registry", devnet["contracts"]["operatorRegistry"]]
    as_governor = [*on_chain, "--stake", "1eth", "--governor-key-env", "GOVERNOR_KEY"]
    monkeypatch.setenv("GOVERNOR_KEY", GOVERNOR_KEY)

    fail(
        capsys,
        (
            ["status", "--devnet", facts, "--keys-dir", str(tmp_path / "none")],
            "cannot read operator keystore",
        ),
        (["register", *wrong], "wrong password for operator keystore"),
        (["status", "--devnet", facts, "--keys-dir", str(broken)], "not a V3 keystore"),
        (["status", "--devnet", str(tmp_path / "none.json"), "--keys-dir", str(keys)], "cannot read"),
        (["register", *mine, "--gateway", unreachable], f"gateway {unreachable} unreachable"),
        (["register", *mine, "--listen-addr", "/ip4/1.2.3.4/tcp/1"], "HTTP 400"),  # the gateway refuses
        (["admit", identity["address"], "--stake", "1eth", "--devnet", facts], "needs the gateway admin's"),
        (
            ["register", "--keys-dir", str(imported), "--password-file", str(password), *as_governor],
            "registerOperator reverted: KeyAlreadyRegistered",
        ),
    )
