"""The node's configuration (TOML file, environment, flags) and the network's genesis.json."""

from node.config.errors import ConfigError, GenesisError
from node.config.genesis import Genesis, load_genesis, parse_genesis
from node.config.loader import Config, add_flags, flag_values, load_config
from node.config.preflight import NodeSetup, prepare_node
from node.config.schema import SETTINGS, Settings

__all__ = [
    "SETTINGS",
    "Config",
    "ConfigError",
    "Genesis",
    "GenesisError",
    "NodeSetup",
    "Settings",
    "add_flags",
    "flag_values",
    "load_config",
    "load_genesis",
    "parse_genesis",
    "prepare_node",
]
