"""Running a job's script in isolation: one interface, backends that wrap the interpreter.

A run gets the script's stdin and nothing else: no network, a read-only root, a private /tmp,
a seccomp filter, an unprivileged uid, and limits on wall time, CPU, memory, processes and
output (docs/architecture.md, Sandbox).

Public API: Sandbox, with BwrapSandbox and DockerSandbox (DockerUnavailableError); Script,
RunLimits and RunResult; filter_program (the seccomp filter) and UnsupportedArchitectureError.
"""

from node.sandbox.bwrap import BwrapSandbox
from node.sandbox.docker import DockerSandbox, DockerUnavailableError
from node.sandbox.runner import RunLimits, RunResult, Sandbox, Script
from node.sandbox.seccomp import UnsupportedArchitectureError, filter_program

__all__ = [
    "BwrapSandbox",
    "DockerSandbox",
    "DockerUnavailableError",
    "RunLimits",
    "RunResult",
    "Sandbox",
    "Script",
    "UnsupportedArchitectureError",
    "filter_program",
]
