"""What users touch (the SDK, the CLI's client commands, the dashboard), end to end on one
devnet that every test of this package shares: none of them disturbs the others."""

from __future__ import annotations

import pytest

from ..conftest import running_devnet


@pytest.fixture(scope="package")
def client_devnet(tmp_path_factory):
    """The package's devnet (its devnet.json), stopped after the package's last test."""
    with running_devnet(tmp_path_factory.mktemp("clients") / "devnet") as facts:
        yield facts
