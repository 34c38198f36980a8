"""triggerx-node: the node program. Its entry point is `node.cli` (the `triggerx-node` command);
the libraries (chain, mesh, store, config, keys), the keeper and the roles are its subpackages.

Public API: none here; each subpackage states its own.
"""

__all__: list[str] = []
