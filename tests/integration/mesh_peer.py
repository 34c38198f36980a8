"""A mesh node in a process of its own, for tests that must freeze (SIGSTOP) or restart a peer.

    python -m tests.integration.mesh_peer [listen multiaddr]

Prints its multiaddr on one line, then runs until killed. Its identity is fixed, so a restart
on the same listen address is the same peer. Its operator is accepted by the tests' registry
(OPERATORS[2] of test_mesh); it trusts every sender itself.
"""

from __future__ import annotations

import sys

import trio
from eth_account import Account

from node.mesh import MeshConfig, MeshNode, identity_from_seed

CHAIN_ID = 31337
SEED = b"\x0b" * 32
OPERATOR_KEY = (3).to_bytes(32, "big")


async def main(listen: str) -> None:
    node = MeshNode(
        identity_from_seed(SEED),
        Account.from_key(OPERATOR_KEY),
        lambda address: True,
        MeshConfig(CHAIN_ID, listen=listen),
    )
    async with node:
        print(node.listen_addrs[0], flush=True)
        await trio.sleep_forever()


if __name__ == "__main__":
    trio.run(main, sys.argv[1] if len(sys.argv) > 1 else MeshConfig(CHAIN_ID).listen)
