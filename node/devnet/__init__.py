"""The local network in one command: anvil, contracts, keys, configs and the node processes."""
