"""Signing, sending and confirming transactions from one account.

`TransactionSender.send` prices (EIP-1559), signs and submits a transaction;
`wait` polls for its receipt and, when asked to, replaces a transaction that is
not mined in time by one with the same nonce and higher fees, then reports
whichever of them was mined. `transact` does both and turns a failed receipt
into a `RevertError` with the decoded reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio
from eth_account.signers.local import LocalAccount

from node.chain.errors import (
    ChainError,
    NonceConsumedError,
    ReceiptTimeoutError,
    RevertError,
    RpcError,
    TransportError,
)
from node.chain.nonces import NonceManager
from node.chain.receipts import ReceiptPoller
from node.chain.rpc import RpcClient

# A replacement must raise both fees by at least 10% (geth's rule); 12.5% clears every client.
_BUMP_NUMERATOR, _BUMP_DENOMINATOR = 9, 8
_NONCE_TAKEN = ("nonce too low", "replacement transaction underpriced", "nonce has already been used")
_MAX_SEND_ATTEMPTS = 4


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


@dataclass(frozen=True)
class Receipt:
    """A mined transaction's receipt."""

    tx_hash: str
    block_number: int
    block_hash: str
    status: bool
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    logs: list[dict[str, Any]]

    @classmethod
    def from_rpc(cls, raw: dict[str, Any]) -> Receipt:
        """Build from an `eth_getTransactionReceipt` result."""
        return cls(
            tx_hash=raw["transactionHash"],
            block_number=int(raw["blockNumber"], 16),
            block_hash=raw["blockHash"],
            status=raw["status"] == "0x1",
            gas_used=int(raw["gasUsed"], 16),
            effective_gas_price=int(raw.get("effectiveGasPrice", "0x0"), 16),
            contract_address=raw.get("contractAddress"),
            logs=raw["logs"],
        )


@dataclass
class PendingTransaction:
    """A sent transaction and every replacement of it (all share `nonce`)."""

    nonce: int
    fields: dict[str, Any]
    hashes: list[str]
    last_sent: float = field(default_factory=trio.current_time)

    @property
    def tx_hash(self) -> str:
        """The hash of the latest version sent."""
        return self.hashes[-1]


class TransactionSender:
    """Sends transactions signed by `account`, safe to use from many trio tasks at once.

    Args:
        rpc: the node client.
        account: the signing key (eth-account; fast with coincurve installed).
        chain_id: the chain's id, signed into every transaction (EIP-155).
        nonces: share one `NonceManager` between senders of the same account.
        receipts: share one `ReceiptPoller` between senders on the same node, so that all
            their waiters poll together.
        gas_margin: estimated gas is multiplied by this, because state can change
            between estimation and inclusion.
    """

    def __init__(
        self,
        rpc: RpcClient,
        account: LocalAccount,
        chain_id: int,
        *,
        nonces: NonceManager | None = None,
        receipts: ReceiptPoller | None = None,
        gas_margin: float = 1.2,
        max_poll_interval: float = 0.1,
    ) -> None:
        self.rpc = rpc
        self.account = account
        self.chain_id = chain_id
        self.nonces = nonces or NonceManager(rpc, account.address)
        self.receipts = receipts or ReceiptPoller(rpc)
        self.gas_margin = gas_margin
        self.max_poll_interval = max_poll_interval

    @property
    def address(self) -> str:
        """The sending account's checksummed address."""
        return self.account.address

    async def send(
        self, to: str | None, data: bytes = b"", value: int = 0, gas: int | None = None
    ) -> PendingTransaction:
        """Price, sign and submit a transaction; `to=None` deploys `data` as creation code.

        Raises `RevertError` when gas estimation shows the call would revert (nothing is
        sent then). After a `TransportError`, or a cancel while it was being submitted, the node
        may or may not have the transaction; its nonce is given back, and reusing it is safe
        either way (a node that has it refuses the reuse, and the nonce is read again).
        """
        call = {"from": self.address, "data": _hex(data), "value": hex(value)}
        if to is not None:
            call["to"] = to
        requests: list[tuple[str, list[Any]]] = [
            ("eth_getBlockByNumber", ["latest", False]),
            ("eth_maxPriorityFeePerGas", []),
        ]
        if gas is None:
            requests.append(("eth_estimateGas", [call]))
        block, priority_hex, *estimate = await self.rpc.batch(requests)
        priority = int(priority_hex, 16)
        fields: dict[str, Any] = {
            "type": 2,
            "chainId": self.chain_id,
            "to": to,
            "value": value,
            "data": data,
            "gas": gas if gas is not None else int(int(estimate[0], 16) * self.gas_margin),
            "maxPriorityFeePerGas": priority,
            "maxFeePerGas": 2 * int(block["baseFeePerGas"], 16) + priority,
        }
        if to is None:
            del fields["to"]
        for _ in range(_MAX_SEND_ATTEMPTS):
            nonce = await self.nonces.reserve()
            fields["nonce"] = nonce
            try:
                tx_hash = await self._submit(fields)
            except RpcError as error:
                if not any(text in error.message.lower() for text in _NONCE_TAKEN):
                    self.nonces.release(nonce)
                    raise
                await self.nonces.resync()  # someone else used this nonce; move past it
                continue
            except (ChainError, trio.Cancelled):  # a cancel too: its caller went away mid-send
                self.nonces.release(nonce)
                raise
            return PendingTransaction(nonce=nonce, fields=dict(fields), hashes=[tx_hash])
        raise RpcError("eth_sendRawTransaction", -1, "every nonce tried was already used")

    async def wait(
        self,
        pending: PendingTransaction,
        *,
        timeout: float = 60.0,
        replace_after: float | None = None,
        max_replacements: int = 5,
    ) -> Receipt:
        """Poll until one version of `pending` is mined and return its receipt.

        With `replace_after`, a version not mined within that many seconds is replaced
        by one with the same nonce and higher fees (at most `max_replacements` times);
        `Receipt.tx_hash` tells which version was mined.
        Raises `ReceiptTimeoutError`, or `NonceConsumedError` when the nonce was mined in
        a transaction that is none of ours.
        """
        deadline = trio.current_time() + timeout
        interval = 0.002
        replacements = 0
        watched = list(pending.hashes)
        for tx_hash in watched:
            self.receipts.watch(tx_hash)
        try:
            while True:
                raw = await self.receipts.lookup(pending.hashes)
                if raw is not None:
                    return Receipt.from_rpc(raw)
                now = trio.current_time()
                if now >= deadline:
                    raise ReceiptTimeoutError(pending.hashes, timeout)
                stuck = replace_after is not None and now - pending.last_sent >= replace_after
                if stuck and replacements < max_replacements:
                    replacements += 1
                    if await self._replace(pending):
                        watched.append(pending.tx_hash)
                        self.receipts.watch(pending.tx_hash)
                    else:
                        await self._raise_if_consumed_elsewhere(pending)
                await trio.sleep(min(interval, max(deadline - now, 0)))
                interval = min(interval * 2, self.max_poll_interval)
        finally:
            for tx_hash in watched:
                self.receipts.forget(tx_hash)

    async def transact(
        self,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
        *,
        timeout: float = 60.0,
        replace_after: float | None = None,
    ) -> Receipt:
        """`send` then `wait`; a mined but failed transaction raises `RevertError` with its reason."""
        pending = await self.send(to, data, value, gas)
        receipt = await self.wait(pending, timeout=timeout, replace_after=replace_after)
        if not receipt.status:
            raise await self._revert_reason(pending, receipt)
        return receipt

    async def _submit(self, fields: dict[str, Any]) -> str:
        signed = self.account.sign_transaction(fields)
        tx_hash = _hex(signed.hash)
        try:
            await self.rpc.call("eth_sendRawTransaction", _hex(signed.raw_transaction))
        except RpcError as error:
            if "already known" not in error.message.lower():
                raise
        return tx_hash

    async def _replace(self, pending: PendingTransaction) -> bool:
        """Send `pending` again with bumped fees; False when the nonce is already mined."""
        block, priority_hex = await self.rpc.batch(
            [("eth_getBlockByNumber", ["latest", False]), ("eth_maxPriorityFeePerGas", [])]
        )
        old = pending.fields
        priority = max(
            old["maxPriorityFeePerGas"] * _BUMP_NUMERATOR // _BUMP_DENOMINATOR + 1, int(priority_hex, 16)
        )
        max_fee = max(
            old["maxFeePerGas"] * _BUMP_NUMERATOR // _BUMP_DENOMINATOR + 1,
            2 * int(block["baseFeePerGas"], 16) + priority,
        )
        fields = {**old, "maxPriorityFeePerGas": priority, "maxFeePerGas": max_fee}
        try:
            tx_hash = await self._submit(fields)
        except RpcError as error:
            if "nonce too low" in error.message.lower():
                return False
            raise
        pending.fields = fields
        pending.hashes.append(tx_hash)
        pending.last_sent = trio.current_time()
        return True

    async def _raise_if_consumed_elsewhere(self, pending: PendingTransaction) -> None:
        # The node says the nonce is used. If none of our versions has a receipt even now,
        # another transaction took the nonce and none of ours will ever be mined.
        receipts = await self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in pending.hashes])
        if all(r is None for r in receipts):
            raise NonceConsumedError(pending.nonce, pending.hashes)

    async def _revert_reason(self, pending: PendingTransaction, receipt: Receipt) -> RevertError:
        """Replay a failed transaction as a call on the state before its block to learn why."""
        fields = pending.fields
        call = {
            "from": self.address,
            "data": _hex(fields["data"]),
            "value": hex(fields["value"]),
            "gas": hex(fields["gas"]),
        }
        if "to" in fields:
            call["to"] = fields["to"]
        if receipt.gas_used >= fields["gas"]:
            return RevertError("out of gas", b"", tx_hash=receipt.tx_hash)
        try:
            await self.rpc.call("eth_call", call, hex(receipt.block_number - 1))
        except RevertError as error:
            return RevertError(error.reason, error.data, error.error_name, error.error_args, receipt.tx_hash)
        except TransportError:
            pass
        return RevertError("reverted (a replay did not reproduce it)", b"", tx_hash=receipt.tx_hash)
