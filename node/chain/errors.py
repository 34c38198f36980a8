"""The errors the chain client raises, so callers can tell *where* a failure happened."""

from __future__ import annotations

from typing import Any


class ChainError(Exception):
    """Base of every error the chain client raises."""


class TransportError(ChainError):
    """The node could not be reached, or did not answer with JSON-RPC, after every retry."""

    def __init__(self, url: str, detail: str, attempts: int) -> None:
        super().__init__(f"{url}: {detail} (after {attempts} attempt{'s' * (attempts > 1)})")
        self.url = url
        self.detail = detail
        self.attempts = attempts


class RpcError(ChainError):
    """The node answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{method}: {message} (code {code})")
        self.method = method
        self.code = code
        self.message = message
        self.data = data


class RevertError(ChainError):
    """Execution reverted; `reason` is the decoded revert data, readable by a person.

    `error_name` and `error_args` are set when the data matched a known Solidity error
    (`Error(string)`, `Panic(uint256)` or a custom error of a registered ABI).
    """

    def __init__(
        self,
        reason: str,
        data: bytes,
        error_name: str | None = None,
        error_args: dict[str, Any] | None = None,
        tx_hash: str | None = None,
    ) -> None:
        where = f" (transaction {tx_hash})" if tx_hash else ""
        super().__init__(f"execution reverted: {reason}{where}")
        self.reason = reason
        self.data = data
        self.error_name = error_name
        self.error_args = error_args or {}
        self.tx_hash = tx_hash


class ReceiptTimeoutError(ChainError):
    """No transaction of a nonce was mined in time."""

    def __init__(self, tx_hashes: list[str], waited: float) -> None:
        super().__init__(f"no receipt after {waited:.1f}s for {', '.join(tx_hashes)}")
        self.tx_hashes = tx_hashes
        self.waited = waited


class NonceConsumedError(ChainError):
    """The account's nonce was used by a transaction this client did not send."""

    def __init__(self, nonce: int, tx_hashes: list[str]) -> None:
        super().__init__(f"nonce {nonce} was mined in a transaction other than ours ({', '.join(tx_hashes)})")
        self.nonce = nonce
        self.tx_hashes = tx_hashes
