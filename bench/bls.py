"""BLS benchmark: signing and verification with milagro and py_ecc (bench/gas.py has the gas of
the on-chain verification).

    .venv/bin/python bench/bls.py

Crypto: one signature, one verification, and fast-aggregate-verify of one message signed
by 10 and by 100 keys, each backend on the same inputs; then what the aggregator does
instead of fast-aggregate-verify (registered keys are decompressed once and summed, then
one verify), and a VoteCollector checking a fresh batch of 100 votes, aggregating their
signatures included.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.consensus_helpers

from node.bls import BlsBackend, MilagroBackend, PyEccBackend, aggregate_public_keys
from protocol import Decision, Operator, OperatorSet, TaskInfo, Vote, VoteCollector
from tests.consensus_helpers import bls_secret

MESSAGE = b"\x42" * 32
CENTER = "0x" + "c0" * 20
TASK = TaskInfo(task_id=1, job_id=1, attempt=1, performer_id=100, result_hash=b"\x01" * 32)
OPERATORS = OperatorSet(
    {
        i: Operator(i, f"0x{i:040x}", 1, True, PyEccBackend().secret_to_public(bls_secret(i)), b"")
        for i in range(101)
    }
)
# Both backends make the same signatures byte for byte: sign once, with the fast one.
VOTES = [Vote.cast(MilagroBackend(), bls_secret(i), i, TASK, True, 31337, CENTER) for i in range(100)]


def timed(action: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of `action` over `repeat` runs."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def crypto_figures(backend: BlsBackend, repeat: int) -> dict[str, float]:
    secrets = [bls_secret(i) for i in range(100)]
    keys = [backend.secret_to_public(s) for s in secrets]
    signatures = [backend.sign(s, MESSAGE) for s in secrets]
    aggregate = {n: backend.aggregate(signatures[:n]) for n in (10, 100)}
    figures = {
        "sign (ms)": timed(lambda: backend.sign(secrets[0], MESSAGE), repeat),
        "verify (ms)": timed(lambda: backend.verify(keys[0], MESSAGE, signatures[0]), repeat),
    }
    for n in (10, 100):
        figures[f"fast-aggregate-verify, {n} keys (ms)"] = timed(
            lambda n=n: backend.fast_aggregate_verify(keys[:n], MESSAGE, aggregate[n]), repeat
        )
    aggregate_public_keys(keys)  # the aggregator decompresses registered keys once
    for n in (10, 100):
        figures[f"verify against cached key sum, {n} (ms)"] = timed(
            lambda n=n: backend.verify(aggregate_public_keys(keys[:n]), MESSAGE, aggregate[n]), repeat
        )
    figures["VoteCollector: check 100 fresh votes (ms)"] = timed(lambda: check_votes(backend), repeat)
    return figures


def check_votes(backend: BlsBackend) -> None:
    """What the aggregator does with a batch of 100 votes: aggregate, then one check."""
    collector = VoteCollector(TASK, b"", OPERATORS, backend, chain_id=31337, center=CENTER)
    dropped = collector.add(VOTES)
    assert not dropped
    assert collector.decision() is Decision.APPROVE


def main() -> None:
    fast, reference = crypto_figures(MilagroBackend(), 50), crypto_figures(PyEccBackend(), 3)
    print("BLS12-381, BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_ (median)")
    print(f"{'':44}{'milagro':>10}{'py_ecc':>12}{'ratio':>10}")
    for name, ours in fast.items():
        print(f"{name:44}{ours:>10.2f}{reference[name]:>12.1f}{reference[name] / ours:>9.0f}×")


if __name__ == "__main__":
    main()
