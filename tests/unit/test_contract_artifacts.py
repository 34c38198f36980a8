"""The committed contract artifacts must match their Solidity sources."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

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


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(root / "scripts" / "compile_contracts"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_artifacts_match_their_sources():
    assert stale_artifacts(SOURCES, ARTIFACTS) == []


def test_a_fresh_compile_reproduces_every_artifact_byte_for_byte():
    result = run_check(ROOT)
    assert result.returncode == 0, result.stderr


def test_a_changed_source_is_reported_stale(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "compile_contracts", tmp_path / "scripts")
    (tmp_path / "scripts" / "toolchain").symlink_to(ROOT / "scripts" / "toolchain")
    shutil.copytree(ROOT / "contracts", tmp_path / "contracts")
    governed = tmp_path / "contracts" / "src" / "Governed.sol"
    governed.write_text(
        governed.read_text().replace(
            "address public pendingGovernor;",
            "address public pendingGovernor;\n    uint256 public constant TERM = 1;",
        )
    )

    stale = stale_artifacts(tmp_path / "contracts" / "src", tmp_path / "contracts" / "out")
    # Governed is abstract; the contracts that inherit it (and AttestationCenter, which
    # imports OperatorRegistry) are the stale ones.
    inheritors = ["AttestationCenter", "OperatorRegistry", "TaskExecutionHub"]
    assert [line.split(":")[0] for line in stale] == inheritors
    result = run_check(tmp_path)
    assert result.returncode == 1
    for name in inheritors:
        assert f"{name}: stale" in result.stderr
    assert "Forwarder" not in result.stderr
