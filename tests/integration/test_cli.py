"""The `triggerx-node` console script, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

CLI = str(Path(sys.executable).with_name("triggerx-node"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_roles_and_subcommands():
    result = run("--help")
    assert result.returncode == 0
    for word in ("keeper", "aggregator", "gateway", "deploy"):
        assert word in result.stdout


def test_deploy_prints_working_addresses(anvil, accounts, tmp_path):
    out = tmp_path / "addresses.json"
    result = run(
        "deploy",
        "--rpc-url",
        anvil.http_url,
        "--dispatcher",
        accounts[1].address.lower(),
        "--out",
        str(out),
        env={"TRIGGERX_DEPLOYER_KEY": anvil.private_keys[0]},
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == json.loads(out.read_text())
    assert printed["dispatcher"] == accounts[1].address
    assert printed["governor"] == accounts[0].address
    for name in ("taskExecutionHub", "operatorRegistry", "attestationCenter"):
        reply = httpx.post(
            anvil.http_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_getCode", "params": [printed[name], "latest"]},
        )
        assert len(reply.json()["result"]) > 100, name


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--dispatcher", "0x" + "11" * 20],
            {"TRIGGERX_DEPLOYER_KEY": ""},
            "no deployer key: set TRIGGERX_DEPLOYER_KEY",
        ),
        (
            ["--dispatcher", "0x" + "11" * 20],
            {"TRIGGERX_DEPLOYER_KEY": "0xnothex"},
            "not a valid hex private key",
        ),
        (["--dispatcher", "nope"], {}, "not an Ethereum address: 'nope'"),
        (["--dispatcher", "0x" + "11" * 20, "--key-file", "/no/such/file"], {}, "--key-file: cannot read"),
    ],
)
def test_bad_deploy_input_is_one_clear_line(anvil, args, env, message):
    result = run("deploy", "--rpc-url", anvil.http_url, *args, env=env)
    assert result.returncode == 2
    # One error line, last, after argparse's usage lines when the arguments themselves are wrong.
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("triggerx-node")
    assert message in last
    assert "Traceback" not in result.stderr


def test_unreachable_chain_is_one_clear_line():
    result = run(
        "deploy",
        "--rpc-url",
        "http://127.0.0.1:9",
        "--dispatcher",
        "0x" + "11" * 20,
        env={"TRIGGERX_DEPLOYER_KEY": "0x" + "01" * 32},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("triggerx-node: error: http://127.0.0.1:9: ConnectError")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_role_without_a_config_names_what_is_missing():
    result = run("--role", "keeper")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("triggerx-node: error: ")
    assert "missing" in lines[0]
    assert "Traceback" not in result.stderr
