"""BLS12-381 with the Ethereum consensus ciphersuite: backends, EIP-2537 point encodings,
EIP-2333 key derivation and EIP-2335 keystores."""
