"""The node's configuration (TOML file, environment, flags) and the network's genesis.json.

Public API: load_config (with add_flags and flag_values for the CLI) and its Config, the
settings schema (Settings, SETTINGS, ROLES, and ChainEndpoint with its Endpoint: another chain
a node reads), the genesis (load_genesis, parse_genesis and its
parts), prepare_node (a checked config with its keys, as a NodeSetup), sole_instance (one
process per identity) and the errors.
"""

from node.config.errors import ConfigError, GenesisError, split_validation_error
from node.config.genesis import Contracts, Genesis, InitialOperator, Protocol, load_genesis, parse_genesis
from node.config.instance import sole_instance
from node.config.loader import Config, add_flags, flag_values, load_config
from node.config.preflight import NodeSetup, prepare_node
from node.config.schema import ROLES, SETTINGS, Role, Settings
from node.config.types import ChainEndpoint, Endpoint

__all__ = [
    "ROLES",
    "SETTINGS",
    "ChainEndpoint",
    "Config",
    "ConfigError",
    "Contracts",
    "Endpoint",
    "Genesis",
    "GenesisError",
    "InitialOperator",
    "NodeSetup",
    "Protocol",
    "Role",
    "Settings",
    "add_flags",
    "flag_values",
    "load_config",
    "load_genesis",
    "parse_genesis",
    "prepare_node",
    "sole_instance",
    "split_validation_error",
]
