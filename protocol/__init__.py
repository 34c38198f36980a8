"""The protocol every role shares: job terms, assignments, performer selection, mesh messages,
attestation votes, stake-weighted quorums and their aggregation, BLS12-381 (docs/protocol.md)."""
