"""The committed contract artifacts must match their Solidity sources."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ..conftest import ROOT

SOURCES = ROOT / "contracts" / "src"
ARTIFACTS = ROOT / "contracts" / "out"


def stale_artifacts(sources: Path, artifacts: Path) -> list[str]:
    """Artifacts whose recorded source hash differs from the sources on disk, and sources without one."""
    problems = []
    covered = set()
    for path in sorted(artifacts.glob("*.json")):
        artifact = json.loads(path.read_text())
        covered.add(artifact["source"])
        digest = hashlib.sha256()
        for source in artifact["sources"]:
            text = (sources / source).read_bytes() if (sources / source).exists() else b"<missing>"
            digest.update(f"{source}\n{hashlib.sha256(text).hexdigest()}\n".encode())
        if digest.hexdigest() != artifact["sourceHash"]:
            problems.append(f"{path.stem}: built from other sources than {', '.join(artifact['sources'])}")
    for source in sorted(sources.rglob("*.sol")):
        relative = source.relative_to(sources).as_posix()
        text = source.read_text()
        if relative not in covered and "\ncontract " in text:
            problems.append(f"{relative}: no artifact")
    return problems


def start_check(root: Path) -> subprocess.Popen[str]:
    """`scripts/compile_contracts --check` in `root`, started (a fresh compile takes ~25 s)."""
    return subprocess.Popen(
        ["node", str(root / "scripts" / "compile_contracts"), "--check"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(check: subprocess.Popen[str]) -> tuple[int, str]:
    """The exit code and stderr of a started check."""
    _, stderr = check.communicate(timeout=180)
    return check.returncode, stderr


@pytest.fixture(scope="module")
def checks(tmp_path_factory) -> dict[str, subprocess.Popen[str] | Path]:
    """Both checks this module makes, started together: each compiles every contract, and on
    two cores the two compiles take the time of one (CI's time budget)."""
    changed = tmp_path_factory.mktemp("changed")
    (changed / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "compile_contracts", changed / "scripts")
    (changed / "scripts" / "toolchain").symlink_to(ROOT / "scripts" / "toolchain")
    shutil.copytree(ROOT / "contracts", changed / "contracts")
    governed = changed / "contracts" / "src" / "Governed.sol"
    governed.write_text(
        governed.read_text().replace(
            "address public pendingGovernor;",
            "address public pendingGovernor;\n    uint256 public constant TERM = 1;",
        )
    )
    return {"fresh": start_check(ROOT), "changed": start_check(changed), "changed root": changed}


def test_artifacts_match_their_sources():
    assert stale_artifacts(SOURCES, ARTIFACTS) == []


def test_a_fresh_compile_reproduces_every_artifact_byte_for_byte(checks):
    returncode, stderr = finished(checks["fresh"])
    assert returncode == 0, stderr


def test_a_changed_source_is_reported_stale(checks):
    changed = checks["changed root"]
    stale = stale_artifacts(changed / "contracts" / "src", changed / "contracts" / "out")
    # Governed is abstract; the contracts that inherit it (and AttestationCenter, which
    # imports OperatorRegistry) are the stale ones.
    inheritors = ["AttestationCenter", "OperatorRegistry", "TaskExecutionHub"]
    assert [line.split(":")[0] for line in stale] == inheritors
    returncode, stderr = finished(checks["changed"])
    assert returncode == 1
    for name in inheritors:
        assert f"{name}: stale" in stderr
    assert "Forwarder" not in stderr
