"""Trio-native access to Ethereum-compatible chains.

Layers, bottom up: `rpc` (JSON-RPC over httpx with batching and bounded retries),
`subscriptions` (eth_subscribe over WebSocket with reconnect), `nonces` and
`transactions` (signing, sending, receipts, stuck-transaction replacement),
`abi` (an offline codec) and `contracts` (our contracts from their artifacts).
"""
