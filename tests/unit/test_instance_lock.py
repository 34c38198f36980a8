"""One node process per identity (node.config.instance)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from node.config import ConfigError
from node.config.instance import sole_instance

HOLD = """
import sys, time
from pathlib import Path
from node.config.instance import sole_instance
with sole_instance(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_process_with_the_same_identity_is_refused_until_the_first_dies(tmp_path):
    identity = tmp_path / "identity.key"
    identity.write_bytes(b"key")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(identity)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ConfigError) as refused, sole_instance(identity):
            pass
        assert str(refused.value).startswith("keys.identity: another node is running with the identity")
        assert f"(pid {holder.pid})" in str(refused.value)
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock of a process however it dies
        holder.wait()
    with sole_instance(identity):
        pass


def test_the_lock_is_released_when_the_node_stops(tmp_path):
    identity = tmp_path / "identity.key"
    with sole_instance(identity), pytest.raises(ConfigError), sole_instance(identity):
        pass
    with sole_instance(identity):
        pass


def test_an_unwritable_key_folder_is_a_config_error(tmp_path):
    with (
        pytest.raises(ConfigError, match=r"keys\.identity: cannot create the lock file"),
        sole_instance(tmp_path / "missing" / "identity.key"),
    ):
        pass
