"""What the sandbox costs per run: bwrap (and docker, when an engine runs) beside a bare
subprocess of the same interpreter, for Python and Node, in the same run.

    .venv/bin/python bench/sandbox.py [--runs 100]

Each run is a whole script execution as a keeper does it: start, read a JSON document on
stdin, print the arguments, exit, reaped. Bare is the same interpreter, flags, environment
and resource limits without bwrap: the difference is what the namespaces, mounts, seccomp
filter and determinism library cost. Printed: wall time p50/p99 per run, and the
sandbox's overhead over bare (p50 and p99 differences); docker's p50/p99 when an engine answers
at /var/run/docker.sock (else "skipped", with the reason).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import trio

PROGRAMS = {
    "python": b"import json, sys\nprint(json.dumps({'args': [json.load(sys.stdin)['n'] + 1]}))\n",
    "javascript": (
        b"let s = ''; process.stdin.on('data', d => s += d)"
        b".on('end', () => console.log(JSON.stringify({args: [JSON.parse(s).n + 1]})))\n"
    ),
}
STDIN = b'{"n": 41}'


async def timed(run: object, runs: int) -> list[float]:
    """Wall seconds of `runs` calls of `run` (after two warm-ups)."""
    for _ in range(2):
        await run()  # type: ignore[operator]
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        result = await run()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
        assert result.status == "ok", result.reason
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


async def main(runs: int) -> None:
    from node.sandbox import BwrapSandbox, DockerSandbox, DockerUnavailableError, RunLimits, Script
    from node.sandbox.files import ENVIRONMENT, INTERPRETERS
    from node.sandbox.runner import run_process, script_file, set_limits

    sandbox, limits = BwrapSandbox(), RunLimits()
    docker: DockerSandbox | None = DockerSandbox()
    try:
        await docker.prepare()
    except DockerUnavailableError as error:
        print(f"docker: skipped ({error})")
        docker = None
    print(f"{runs} runs each; wall time per run (ms): p50 / p99, and overhead over bare (p50 / p99)")
    print(f"{'':22}{'bare':>16}{'bwrap':>16}{'overhead':>16}{'docker':>16}")
    for language, source in PROGRAMS.items():
        with script_file(source) as path:

            async def bare(path: str = path, language: str = language) -> object:
                # The interpreter and its flags, but Node's prelude: it is a file of the sandbox's.
                argv = [*(flag for flag in INTERPRETERS[language] if "/sandbox/" not in flag), path]
                return await run_process(argv, [], STDIN, limits, lambda: set_limits(limits), ENVIRONMENT)

            async def boxed(language: str = language, source: bytes = source) -> object:
                return await sandbox.run(Script(language, source, STDIN), limits)  # type: ignore[arg-type]

            async def contained(language: str = language, source: bytes = source) -> object:
                return await docker.run(Script(language, source, STDIN), limits)  # type: ignore[arg-type, union-attr]

            plain, wrapped = await timed(bare, runs), await timed(boxed, runs)
            in_docker = await timed(contained, max(10, runs // 5)) if docker else []
        row = [1000 * statistics.median(plain), 1000 * percentile(plain, 0.99)]
        row += [1000 * statistics.median(wrapped), 1000 * percentile(wrapped, 0.99)]
        shown = "skipped"
        if in_docker:
            shown = f"{1000 * statistics.median(in_docker):.1f} / {1000 * percentile(in_docker, 0.99):.1f}"
        print(
            f"{language:22}{row[0]:>8.1f} /{row[1]:>6.1f}{row[2]:>8.1f} /{row[3]:>6.1f}"
            f"{row[2] - row[0]:>8.1f} /{row[3] - row[1]:>6.1f}{shown:>16}"
        )
    if docker:
        await docker.aclose()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    trio.run(main, parser.parse_args().runs)
