"""The local network in one command: anvil, contracts, keys, configs and the node processes.

Public API: run_devnet (the `devnet` command), Devnet (the running network) with its demo
job (devnet_demo_job), provision (contracts and funded, staked keepers on a chain, with their
KeeperKeys) and REPO_GENESIS (the repository's genesis.json, the devnet's template).
"""

from node.devnet.chain import KeeperKeys, provision
from node.devnet.demo import devnet_demo_job
from node.devnet.nodes import REPO_GENESIS
from node.devnet.run import Devnet, run_devnet

__all__ = [
    "REPO_GENESIS",
    "Devnet",
    "KeeperKeys",
    "devnet_demo_job",
    "provision",
    "run_devnet",
]
