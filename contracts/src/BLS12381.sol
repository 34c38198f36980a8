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
///      The hot path (hash, then pairing check) builds every precompile input in place in
///      one scratch area past the free memory pointer: gas goes to the precompiles, not
///      to copying.
library BLS12381 {
    /// @dev The base field modulus p as two words (the high word holds its top 16 bytes).
    uint256 private constant _P_HI = 0x1a0111ea397fe69a4b1ba7b6434bacd7;
    uint256 private constant _P_LO = 0x64774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab;
    /// @dev (p - 1) / 2 as two words: y above it is the "lexicographically largest" root.
    uint256 private constant _HALF_HI = 0x0d0088f51cbff34d258dd3db21a5d66b;
    uint256 private constant _HALF_LO = 0xb23ba5c279c2895fb39869507b587b120f55ffff58a9ffffdcff7fffffffd555;
    /// @dev The negated G1 generator, so that e(pk, H(m)) == e(g1, sig) is one product check.
    uint256 private constant _NEG_G1_0 = 0x17f1d3a73197d7942695638c4fa9ac0f;
    uint256 private constant _NEG_G1_1 = 0xc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb;
    uint256 private constant _NEG_G1_2 = 0x114d1d6855d545a8aa7d76c8cf2e21f2;
    uint256 private constant _NEG_G1_3 = 0x67816aef1db507c96655b9d5caac42364e6f38ba0ecb751bad54dcd6b939c2ca;

    uint256 internal constant G1_LENGTH = 128;
    uint256 internal constant G2_LENGTH = 256;

    error PrecompileFailed(address precompile);
    error BadPointLength(uint256 length);

    /// @notice a + b in G1. Reverts if either is not on the curve.
    function g1Add(bytes memory a, bytes memory b) internal view returns (bytes memory sum) {
        if (a.length != G1_LENGTH) revert BadPointLength(a.length);
        if (b.length != G1_LENGTH) revert BadPointLength(b.length);
        sum = new bytes(G1_LENGTH);
        bool ok;
        assembly ("memory-safe") {
            let input := mload(0x40)
            mcopy(input, add(a, 0x20), 128)
            mcopy(add(input, 128), add(b, 0x20), 128)
            ok := staticcall(gas(), 0x0b, input, 256, add(sum, 0x20), 128)
        }
        if (!ok) revert PrecompileFailed(address(0x0b));
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
        compressed = new bytes(48);
        assembly ("memory-safe") {
            mcopy(add(compressed, 0x20), add(a, 0x30), 48)
        }
        if (isInfinity(a)) {
            compressed[0] = 0xc0; // compressed + infinity
            return compressed;
        }
        bool largest = hi > _HALF_HI || (hi == _HALF_HI && lo > _HALF_LO);
        compressed[0] = compressed[0] | (largest ? bytes1(0xa0) : bytes1(0x80));
    }

    /// @notice Whether `a` is the point at infinity (all-zero encoding).
    function isInfinity(bytes memory a) internal pure returns (bool zero) {
        zero = true;
        for (uint256 i = 0; i < a.length; i += 32) {
            bytes32 word;
            assembly ("memory-safe") {
                word := mload(add(add(a, 0x20), i))
            }
            if (word != 0) return false;
        }
    }

    /// @notice A G1 point as three words, without EIP-2537's zero padding: x[0:32] | x[32:48] y[0:16] | y[16:48].
    /// @dev The padding must be zero (the precompiles reject any other encoding).
    function packG1(bytes memory point) internal pure returns (bytes32[3] memory words) {
        if (point.length != G1_LENGTH) revert BadPointLength(point.length);
        assembly ("memory-safe") {
            let p := add(point, 0x20)
            mstore(words, mload(add(p, 16)))
            mstore(add(words, 0x20), or(mload(add(p, 48)), shr(128, mload(add(p, 80)))))
            mstore(add(words, 0x40), mload(add(p, 96)))
        }
    }

    /// @notice The inverse of packG1.
    function unpackG1(bytes32[3] memory words) internal pure returns (bytes memory point) {
        point = new bytes(G1_LENGTH);
        assembly ("memory-safe") {
            let p := add(point, 0x20)
            let middle := mload(add(words, 0x20))
            mstore(add(p, 16), mload(words))
            mstore(add(p, 48), and(middle, not(sub(shl(128, 1), 1))))
            mstore(add(p, 80), shl(128, middle))
            mstore(add(p, 96), mload(add(words, 0x40)))
        }
    }

    /// @notice hash_to_curve(message) in G2 with domain separation tag `dst` (RFC 9380).
    function hashToG2(bytes memory message, bytes memory dst) internal view returns (bytes memory point) {
        point = new bytes(G2_LENGTH);
        uint256 out;
        assembly ("memory-safe") {
            out := add(point, 0x20)
        }
        _hashToG2(message, dst, out);
    }

    /// @notice Whether `signature` (G2) is `publicKey`'s (G1) signature on `message` under `dst`.
    /// @dev The pairing precompile rejects points off their curve or outside the prime-order
    ///      subgroup; this returns false then, as for a wrong signature.
    function verify(bytes memory publicKey, bytes memory message, bytes memory dst, bytes memory signature)
        internal
        view
        returns (bool valid)
    {
        if (publicKey.length != G1_LENGTH) revert BadPointLength(publicKey.length);
        if (signature.length != G2_LENGTH) revert BadPointLength(signature.length);
        uint256 input;
        assembly ("memory-safe") {
            // Reserve the 768-byte pairing input, so that hashing can use the memory after it.
            input := mload(0x40)
            mstore(0x40, add(input, 768))
        }
        _hashToG2(message, dst, input + 128);
        assembly ("memory-safe") {
            mcopy(input, add(publicKey, 0x20), 128)
            mstore(add(input, 384), _NEG_G1_0)
            mstore(add(input, 416), _NEG_G1_1)
            mstore(add(input, 448), _NEG_G1_2)
            mstore(add(input, 480), _NEG_G1_3)
            mcopy(add(input, 512), add(signature, 0x20), 256)
            let ok := staticcall(gas(), 0x0f, input, 768, 0x00, 0x20)
            valid := and(ok, and(eq(returndatasize(), 0x20), eq(mload(0x00), 1)))
        }
    }

    /// @dev Write hash_to_curve(message) to memory at `out` (256 bytes), using scratch memory
    ///      past the free memory pointer.
    function _hashToG2(bytes memory message, bytes memory dst, uint256 out) private view {
        bool ok = true;
        assembly ("memory-safe") {
            let scratch := mload(0x40)
            let uniform := scratch // 256 bytes: expand_message_xmd(message, dst, 256)
            let u := add(scratch, 256) // 256 bytes: u0 = (c0, c1), u1 = (c0, c1), reduced mod p
            let q := add(scratch, 512) // 512 bytes: map(u0) || map(u1)
            let work := add(scratch, 1024) // inputs of sha256 and modexp
            let dstLength := mload(dst)
            let messageLength := mload(message)

            // b0 = H(Z_pad || msg || I2OSP(256, 2) || I2OSP(0, 1) || dst || I2OSP(len(dst), 1))
            mstore(work, 0)
            mstore(add(work, 32), 0)
            mcopy(add(work, 64), add(message, 0x20), messageLength)
            let at := add(add(work, 64), messageLength)
            mstore(at, shl(232, 0x010000))
            mcopy(add(at, 3), add(dst, 0x20), dstLength)
            mstore8(add(add(at, 3), dstLength), dstLength)
            ok := and(ok, staticcall(gas(), 0x02, work, add(68, add(messageLength, dstLength)), 0x00, 0x20))
            let b0 := mload(0x00)

            // b_i = H((b0 xor b_{i-1}) || I2OSP(i, 1) || dst || I2OSP(len(dst), 1)), b_0 xor 0 for i = 1
            mcopy(add(work, 33), add(dst, 0x20), dstLength)
            mstore8(add(add(work, 33), dstLength), dstLength)
            let previous := 0
            for { let i := 1 } lt(i, 9) { i := add(i, 1) } {
                mstore(work, xor(b0, previous))
                mstore8(add(work, 32), i)
                ok := and(ok, staticcall(gas(), 0x02, work, add(34, dstLength), 0x00, 0x20))
                previous := mload(0x00)
                mstore(add(uniform, mul(sub(i, 1), 32)), previous)
            }

            // Each 64-byte chunk mod p: modexp(base = chunk, exponent = 1, modulus = p).
            mstore(work, 64)
            mstore(add(work, 0x20), 1)
            mstore(add(work, 0x40), 64)
            mstore8(add(work, 0xa0), 1)
            mstore(add(work, 0xa1), _P_HI)
            mstore(add(work, 0xc1), _P_LO)
            for { let k := 0 } lt(k, 4) { k := add(k, 1) } {
                mcopy(add(work, 0x60), add(uniform, mul(k, 64)), 64)
                ok := and(ok, staticcall(gas(), 0x05, work, 0xe1, add(u, mul(k, 64)), 64))
            }

            // Map each Fp2 element to G2 (the precompile clears the cofactor; clearing is
            // linear, so the sum equals clear_cofactor(map(u0) + map(u1))), then add.
            ok := and(ok, staticcall(gas(), 0x11, u, 128, q, 256))
            ok := and(ok, staticcall(gas(), 0x11, add(u, 128), 128, add(q, 256), 256))
            ok := and(ok, staticcall(gas(), 0x0d, q, 512, out, 256))
        }
        if (!ok) revert PrecompileFailed(address(0x11));
    }

    function _yWords(bytes memory point) private pure returns (uint256 hi, uint256 lo) {
        assembly ("memory-safe") {
            hi := mload(add(point, 0x60))
            lo := mload(add(point, 0x80))
        }
    }
}
