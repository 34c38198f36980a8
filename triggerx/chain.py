"""The owner's gas balance in the hub (TriggerGasRegistry, which the TaskExecutionHub is): read
it, deposit into it, withdraw from it, over a chain's JSON-RPC.

Only these three calls, so a few lines of JSON-RPC rather than a web3 dependency: transactions
are EIP-1559, signed locally by the owner's key, and waited for until mined (a revert is a
ChainError naming the transaction).
"""

from __future__ import annotations

from typing import Any

import anyio
import eth_abi
import httpx
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from triggerx.errors import ChainError, TransportError

RECEIPT_TIMEOUT = 120.0  # seconds to wait for a transaction to be mined


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


class GasBalance:
    """`account`'s balance in the hub at `hub` on the chain at `rpc_url` (chain `chain_id`)."""

    def __init__(self, http: httpx.AsyncClient, rpc_url: str, chain_id: int, hub: str) -> None:
        self._http = http
        self._rpc_url = rpc_url
        self._chain_id = chain_id
        self._hub = hub

    async def of(self, address: str) -> int:
        """`address`'s balance in wei."""
        data = _selector("balanceOf(address)") + eth_abi.encode(["address"], [address])
        answer = await self._rpc("eth_call", {"to": self._hub, "data": "0x" + data.hex()}, "latest")
        return int(answer, 16)

    async def deposit(self, account: LocalAccount, wei: int) -> str:
        """Add `wei` from `account` to its balance; the mined transaction's hash."""
        return await self._transact(account, _selector("deposit()"), wei)

    async def withdraw(self, account: LocalAccount, wei: int, to: str) -> str:
        """Send `wei` of `account`'s balance to `to`; the mined transaction's hash."""
        data = _selector("withdraw(uint256,address)") + eth_abi.encode(["uint256", "address"], [wei, to])
        return await self._transact(account, data, 0)

    async def _transact(self, account: LocalAccount, data: bytes, value: int) -> str:
        call = {"from": account.address, "to": self._hub, "data": "0x" + data.hex(), "value": hex(value)}
        gas = int(await self._rpc("eth_estimateGas", call), 16)  # a revert shows here, before any fee
        block = await self._rpc("eth_getBlockByNumber", "latest", False)
        priority = int(await self._rpc("eth_maxPriorityFeePerGas"), 16)
        transaction = {
            "type": 2,
            "chainId": self._chain_id,
            "nonce": int(await self._rpc("eth_getTransactionCount", account.address, "pending"), 16),
            "to": self._hub,
            "value": value,
            "data": data,
            "gas": gas * 5 // 4,
            "maxPriorityFeePerGas": priority,
            "maxFeePerGas": 2 * int(block["baseFeePerGas"], 16) + priority,
        }
        raw = account.sign_transaction(transaction).raw_transaction
        tx_hash = await self._rpc("eth_sendRawTransaction", "0x" + bytes(raw).hex())
        with anyio.move_on_after(RECEIPT_TIMEOUT):
            while True:
                receipt = await self._rpc("eth_getTransactionReceipt", tx_hash)
                if receipt is not None:
                    break
                await anyio.sleep(0.25)  # polled: a node need not push receipts
            if int(receipt["status"], 16) != 1:
                raise ChainError(f"transaction {tx_hash} reverted")
            return tx_hash
        raise ChainError(f"transaction {tx_hash} not mined within {RECEIPT_TIMEOUT:.0f} s")

    async def _rpc(self, method: str, *params: Any) -> Any:
        """The result of JSON-RPC `method`; ChainError for the node's error, TransportError when
        it cannot be reached."""
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
        try:
            answer = (await self._http.post(self._rpc_url, json=body)).json()
        except (httpx.HTTPError, ValueError) as error:
            raise TransportError(f"the chain at {self._rpc_url} did not answer {method}: {error}") from None
        if "error" in answer:
            raise ChainError(f"{method}: {answer['error'].get('message', answer['error'])}")
        return answer.get("result")
