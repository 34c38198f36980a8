"""EIP-712 typed messages: one definition of the domain, signing, recovery and digest.

Everything a contract or a peer verifies is signed this way (docs/protocol.md), never as JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

Fields = list[dict[str, str]]


@dataclass(frozen=True)
class Domain:
    """An EIP-712 domain; `verifying_contract` is None for messages no contract checks."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str | None = None

    def as_typed(self) -> tuple[Fields, dict[str, Any]]:
        """The domain's EIP-712 type fields and values."""
        fields = [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
        ]
        values: dict[str, Any] = {"name": self.name, "version": self.version, "chainId": self.chain_id}
        if self.verifying_contract is not None:
            fields.append({"name": "verifyingContract", "type": "address"})
            values["verifyingContract"] = self.verifying_contract
        return fields, values


@dataclass(frozen=True)
class TypedMessage:
    """A message of type `primary_type` (fields `fields`) in `domain`; `struct_types` defines
    the struct types its fields refer to."""

    domain: Domain
    primary_type: str
    fields: Fields
    message: dict[str, Any]
    struct_types: dict[str, Fields] = field(default_factory=dict)

    def full(self) -> dict[str, Any]:
        """The message in eth-account's `full_message` form."""
        domain_fields, domain_values = self.domain.as_typed()
        return {
            "types": {"EIP712Domain": domain_fields, self.primary_type: self.fields, **self.struct_types},
            "primaryType": self.primary_type,
            "domain": domain_values,
            "message": self.message,
        }

    def signable(self) -> SignableMessage:
        """The message as eth-account signs it."""
        return encode_typed_data(full_message=self.full())

    def digest(self) -> bytes:
        """The 32-byte hash that is signed (what a contract computes)."""
        signable = self.signable()
        return keccak(b"\x19" + signable.version + signable.header + signable.body)

    def sign(self, account: LocalAccount) -> bytes:
        """`account`'s 65-byte signature (r, s, v with v in {27, 28})."""
        return bytes(account.sign_message(self.signable()).signature)

    def signer(self, signature: bytes) -> str:
        """The address that produced `signature`; ValueError for a malformed signature."""
        try:
            return Account.recover_message(self.signable(), signature=signature)
        except Exception as error:  # eth-account raises several types for malformed signatures
            raise ValueError(f"not a valid signature: {error}") from None


class TypedStruct(ABC):
    """A struct signed as EIP-712 typed data in a verifying contract's domain: a subclass says
    how it is typed (`typed`), and gets its digest, signing and signer recovery."""

    @abstractmethod
    def typed(self, chain_id: int, verifying_contract: str) -> TypedMessage:
        """The struct as the EIP-712 message the contract at `verifying_contract` checks."""

    def digest(self, chain_id: int, verifying_contract: str) -> bytes:
        """The 32-byte EIP-712 hash that is signed."""
        return self.typed(chain_id, verifying_contract).digest()

    def sign(self, account: LocalAccount, chain_id: int, verifying_contract: str) -> bytes:
        """`account`'s 65-byte signature (r, s, v with v in {27, 28})."""
        return self.typed(chain_id, verifying_contract).sign(account)

    def signer(self, signature: bytes, chain_id: int, verifying_contract: str) -> str:
        """The address that produced `signature`; ValueError for a malformed signature."""
        return self.typed(chain_id, verifying_contract).signer(signature)


def struct_hash(primary_type: str, fields: Fields, message: dict[str, Any]) -> bytes:
    """The EIP-712 `hashStruct` of `message` (what a contract stores or nests; no domain enters it)."""
    full = {
        "types": {"EIP712Domain": [], primary_type: fields},
        "primaryType": primary_type,
        "domain": {},
        "message": message,
    }
    return bytes(encode_typed_data(full_message=full).body)
