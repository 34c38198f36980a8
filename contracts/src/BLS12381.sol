// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title BLS12381
/// @notice BLS signature verification with the EIP-2537 precompiles, for the Ethereum
///         ciphersuite BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_ (public keys in G1,
///         signatures in G2).
/// @dev Points use the EIP-2537 encoding: an Fp element is 64 bytes (16 zero bytes, then
///      48 big-endian bytes); a G1 point is x || y (128 bytes); a G2 point is
///      x.c0 || x.c1 || y.c0 || y.c1 (256 bytes); the point at infinity is all zeros.
///      hashToG2 follows RFC 9380 (expand_message_xmd with SHA-256, hash_to_field with
///      m = 2, L = 64, count = 2), so it equals py_ecc's hash_to_G2 for the same DST.
library BLS12381 {
    address private constant _MODEXP = address(0x05);
    address private constant _G1_ADD = address(0x0b);
    address private constant _G2_ADD = address(0x0d);
    address private constant _PAIRING_CHECK = address(0x0f);
    address private constant _MAP_FP2_TO_G2 = address(0x11);

    /// @dev The base field modulus p in EIP-2537 encoding, and as two words.
    bytes private constant _P =
        hex"000000000000000000000000000000001a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab";
    uint256 private constant _P_HI = 0x1a0111ea397fe69a4b1ba7b6434bacd7;
    uint256 private constant _P_LO = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;
    /// @dev (p - 1) / 2 as two words: y above it is the "lexicographically largest" root.
    uint256 private constant _HALF_HI = 0x0d0088f51cbff34d258dd3db21a5d66b;
    uint256 private constant _HALF_LO = 0xb23ba5c279c2895fb39869507b587b120f55ffff58a9ffffdcff7fffffffd555;
    /// @dev The negated G1 generator, so that e(pk, H(m)) == e(g1, sig) becomes one product check.
    bytes private constant _NEG_G1 =
        hex"0000000000000000000000000000000017f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb00000000000000000000000000000000114d1d6855d545a8aa7d76c8cf2e21f267816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca";

    uint256 internal constant G1_LENGTH = 128;
    uint256 internal constant G2_LENGTH = 256;

    error PrecompileFailed(address precompile);
    error BadPointLength(uint256 length);

    /// @notice a + b in G1. Reverts if either is not on the curve.
    function g1Add(bytes memory a, bytes memory b) internal view returns (bytes memory) {
        return _call(_G1_ADD, bytes.concat(a, b), G1_LENGTH);
    }

    /// @notice -a in G1 (y replaced by p - y; the point at infinity stays itself).
    function g1Negate(bytes memory a) internal pure returns (bytes memory negated) {
        if (a.length != G1_LENGTH) revert BadPointLength(a.length);
        (uint256 hi, uint256 lo) = _yWords(a);
        negated = bytes.concat(a); // copy
        if (hi == 0 && lo == 0) return negated;
        uint256 borrow = lo > _P_LO ? 1 : 0;
        unchecked {
            lo = _P_LO - lo; // wraps modulo 2^256 exactly when borrowing
            hi = _P_HI - hi - borrow;
        }
        assembly ("memory-safe") {
            mstore(add(negated, 0x60), hi)
            mstore(add(negated, 0x80), lo)
        }
    }

    /// @notice The 48-byte compressed (ZCash) serialisation of a G1 point, as py_ecc writes it.
    function g1Compress(bytes memory a) internal pure returns (bytes memory compressed) {
        if (a.length != G1_LENGTH) revert BadPointLength(a.length);
        (uint256 hi, uint256 lo) = _yWords(a);
        if (_isZero(a)) {
            compressed = new bytes(48);
            compressed[0] = 0xc0; // compressed + infinity
            return compressed;
        }
        compressed = new bytes(48);
        for (uint256 i = 0; i < 48; ++i) {
            compressed[i] = a[16 + i];
        }
        bool largest = hi > _HALF_HI || (hi == _HALF_HI && lo > _HALF_LO);
        compressed[0] = compressed[0] | (largest ? bytes1(0xa0) : bytes1(0x80));
    }

    /// @notice Whether `a` is the point at infinity (all-zero encoding).
    function isInfinity(bytes memory a) internal pure returns (bool) {
        return _isZero(a);
    }

    /// @notice hash_to_curve(message) in G2 with domain separation tag `dst` (RFC 9380).
    function hashToG2(bytes memory message, bytes memory dst) internal view returns (bytes memory) {
        bytes memory uniform = _expandMessageXmd(message, dst);
        bytes memory u0 = bytes.concat(_reduce(uniform, 0), _reduce(uniform, 64));
        bytes memory u1 = bytes.concat(_reduce(uniform, 128), _reduce(uniform, 192));
        // The precompile maps and clears the cofactor; clearing is linear, so the sum of
        // the two cleared points equals clear_cofactor(map(u0) + map(u1)).
        bytes memory q0 = _call(_MAP_FP2_TO_G2, u0, G2_LENGTH);
        bytes memory q1 = _call(_MAP_FP2_TO_G2, u1, G2_LENGTH);
        return _call(_G2_ADD, bytes.concat(q0, q1), G2_LENGTH);
    }

    /// @notice Whether `signature` (G2) is `publicKey`'s (G1) signature on the point `messagePoint` (G2).
    /// @dev The pairing precompile checks that every point is on its curve and in the
    ///      prime-order subgroup, and reverts the call otherwise; this returns false then.
    function verify(bytes memory publicKey, bytes memory messagePoint, bytes memory signature)
        internal
        view
        returns (bool)
    {
        if (publicKey.length != G1_LENGTH) revert BadPointLength(publicKey.length);
        if (signature.length != G2_LENGTH) revert BadPointLength(signature.length);
        (bool ok, bytes memory out) =
            _PAIRING_CHECK.staticcall(bytes.concat(publicKey, messagePoint, _NEG_G1, signature));
        return ok && out.length == 32 && uint256(bytes32(out)) == 1;
    }

    /// @dev expand_message_xmd(message, dst, 256) with SHA-256 (RFC 9380 section 5.3.1).
    function _expandMessageXmd(bytes memory message, bytes memory dst) private pure returns (bytes memory out) {
        bytes memory dstPrime = bytes.concat(dst, bytes1(uint8(dst.length)));
        bytes32 b0 = sha256(bytes.concat(new bytes(64), message, hex"010000", dstPrime));
        bytes32 bi = sha256(bytes.concat(b0, hex"01", dstPrime));
        out = new bytes(256);
        assembly ("memory-safe") {
            mstore(add(out, 0x20), bi)
        }
        for (uint256 i = 2; i <= 8; ++i) {
            bi = sha256(bytes.concat(b0 ^ bi, bytes1(uint8(i)), dstPrime));
            assembly ("memory-safe") {
                mstore(add(out, mul(i, 0x20)), bi)
            }
        }
    }

    /// @dev The 64 bytes of `uniform` at `offset`, reduced modulo p, as an EIP-2537 Fp element.
    function _reduce(bytes memory uniform, uint256 offset) private view returns (bytes memory) {
        bytes memory chunk = new bytes(64);
        assembly ("memory-safe") {
            mstore(add(chunk, 0x20), mload(add(add(uniform, 0x20), offset)))
            mstore(add(chunk, 0x40), mload(add(add(uniform, 0x40), offset)))
        }
        // modexp(base = chunk, exponent = 1, modulus = p) is chunk mod p, 64 bytes wide.
        return _call(_MODEXP, bytes.concat(bytes32(uint256(64)), bytes32(uint256(1)), bytes32(uint256(64)), chunk, hex"01", _P), 64);
    }

    function _yWords(bytes memory point) private pure returns (uint256 hi, uint256 lo) {
        assembly ("memory-safe") {
            hi := mload(add(point, 0x60))
            lo := mload(add(point, 0x80))
        }
    }

    function _isZero(bytes memory data) private pure returns (bool) {
        for (uint256 i = 0; i < data.length; i += 32) {
            bytes32 word;
            assembly ("memory-safe") {
                word := mload(add(add(data, 0x20), i))
            }
            if (word != 0) return false;
        }
        return true;
    }

    function _call(address precompile, bytes memory input, uint256 outputLength) private view returns (bytes memory) {
        (bool ok, bytes memory out) = precompile.staticcall(input);
        if (!ok || out.length != outputLength) revert PrecompileFailed(precompile);
        return out;
    }
}
