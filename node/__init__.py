"""triggerx-node: the node program (CLI, chain client, and later mesh, store and services)."""
