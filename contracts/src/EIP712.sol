// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @notice The EIP-712 domain of a contract (name, version, chain id, this address). The
///         separator is cached at deployment and recomputed if the chain id ever changes
///         (a fork), so signatures made for the other fork never verify here.
abstract contract EIP712 {
    bytes32 private constant _DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    bytes32 private immutable _nameHash;
    bytes32 private immutable _versionHash;
    uint256 private immutable _cachedChainId;
    bytes32 private immutable _cachedSeparator;

    constructor(string memory name, string memory version) {
        _nameHash = keccak256(bytes(name));
        _versionHash = keccak256(bytes(version));
        _cachedChainId = block.chainid;
        _cachedSeparator = _separator();
    }

    function domainSeparator() public view returns (bytes32) {
        return block.chainid == _cachedChainId ? _cachedSeparator : _separator();
    }

    /// @dev The digest a signer signs for a struct whose EIP-712 hash is `structHash`.
    function _typedDigest(bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    function _separator() private view returns (bytes32) {
        return keccak256(abi.encode(_DOMAIN_TYPEHASH, _nameHash, _versionHash, block.chainid, address(this)));
    }
}
