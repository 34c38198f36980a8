"""Consensus: BLS12-381 signatures, stake-weighted quorums, attestation votes and their aggregation."""
