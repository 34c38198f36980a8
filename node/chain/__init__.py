"""Trio-native access to Ethereum-compatible chains.

Layers, bottom up: `rpc` (JSON-RPC over httpx with batching and bounded retries),
`subscriptions` (eth_subscribe over WebSocket with reconnect), `nonces` and
`transactions` (signing, sending, receipts, stuck-transaction replacement),
`abi` (an offline codec) and `contracts` (our contracts from their artifacts).

Public API: RpcClient (with Call, one call of a batch), TransactionSender (with Receipt),
subscribe, Contract and the artifacts (load_artifact, deploy, deploy_core, deploy_consensus),
the chain errors, EIP-712 typed data (Domain, TypedMessage, TypedStruct), the ABI checks, and
Anvil for local chains.
"""

from node.chain.abi import RevertDecoder, canonical_type, check_bytes, check_uint, checksum_address, signature
from node.chain.anvil import Anvil, anvil_binary, free_port
from node.chain.contracts import Artifact, Contract, deploy, load_artifact, revert_decoder
from node.chain.deployment import ConsensusContracts, CoreContracts, deploy_consensus, deploy_core
from node.chain.eip712 import Domain, Fields, TypedMessage, TypedStruct, struct_hash
from node.chain.errors import ChainError, RevertError, RpcError, TransportError
from node.chain.rpc import Call, RpcClient
from node.chain.subscriptions import subscribe
from node.chain.transactions import Receipt, TransactionSender

__all__ = [
    "Anvil",
    "Artifact",
    "Call",
    "ChainError",
    "ConsensusContracts",
    "Contract",
    "CoreContracts",
    "Domain",
    "Fields",
    "Receipt",
    "RevertDecoder",
    "RevertError",
    "RpcClient",
    "RpcError",
    "TransactionSender",
    "TransportError",
    "TypedMessage",
    "TypedStruct",
    "anvil_binary",
    "canonical_type",
    "check_bytes",
    "check_uint",
    "checksum_address",
    "deploy",
    "deploy_consensus",
    "deploy_core",
    "free_port",
    "load_artifact",
    "revert_decoder",
    "signature",
    "struct_hash",
    "subscribe",
]
