"""One node process per identity (node.config.instance)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from node.config import ConfigError, sole_instance

HOLD = """
import sys, time
from pathlib import Path
from node.config import sole_instance
with sole_instance(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def identity(tmp_path):
    key = tmp_path / "identity.key"
    key.write_bytes(b"key")
    return key


def test_a_second_process_with_the_same_identity_is_refused_until_the_first_dies(identity):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(identity)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ConfigError) as refused, sole_instance(identity):
            pass
        assert str(refused.value).startswith("keys.identity: another node is running with the identity")
    finally:
        holder.kill()  # SIGKILL: the kernel releases the lock of a process however it dies
        holder.wait()
    with sole_instance(identity):
        pass


def test_the_lock_is_released_when_the_node_stops(identity):
    with sole_instance(identity), pytest.raises(ConfigError), sole_instance(identity):
        pass
    with sole_instance(identity):
        pass


def test_another_path_to_the_same_key_is_the_same_identity(identity, tmp_path):
    link = tmp_path / "elsewhere.key"
    link.symlink_to(identity)
    with sole_instance(identity), pytest.raises(ConfigError), sole_instance(link):
        pass


def test_a_read_only_key_folder_is_no_obstacle(identity):
    identity.chmod(0o400)
    identity.parent.chmod(0o500)
    try:
        with sole_instance(identity):
            assert sorted(os.listdir(identity.parent)) == ["identity.key"]  # nothing created beside it
    finally:
        identity.parent.chmod(0o700)


def test_a_missing_key_is_a_config_error(tmp_path):
    with (
        pytest.raises(ConfigError, match=r"keys\.identity: cannot open .*No such file"),
        sole_instance(tmp_path / "missing.key"),
    ):
        pass
