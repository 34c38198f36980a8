// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title ECDSA
/// @notice Signer recovery for 65-byte (r, s, v) signatures, refusing malleable ones.
library ECDSA {
    /// @dev Upper half of the secp256k1 order; signatures with a larger `s` are malleable.
    uint256 private constant _HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @notice The signer of `digest`, or zero for a malformed or malleable signature.
    function recover(bytes32 digest, bytes calldata signature) internal pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > _HALF_ORDER || (v != 27 && v != 28)) return address(0);
        return ecrecover(digest, v, r, s);
    }
}
