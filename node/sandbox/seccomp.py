"""The seccomp filter every sandboxed run gets: a classic BPF program, written out here.

It refuses (EPERM) what a script never needs and an escape always does: tracing other
processes, new namespaces, mounts, kernel keyrings, BPF, perf events, io_uring (a large attack
surface whose operations would pass the socket check), personality changes, modules, kexec,
reboot, swap and the kernel log; and what would show a script the host's clock, its load or
fresh randomness (docs/architecture.md, Sandbox, determinism): the raw clock syscalls (libc's
go through node/sandbox/determinism.c), CPU and uptime counters (`times`, `getrusage`,
`sysinfo`), the CPUs it may run on, timers that interrupt it (`alarm`, `setitimer`,
`timer_create`, `timerfd_create`), and anonymous executable files (`memfd_create`).
`clone` is refused only with namespace flags (threads and forks pass; the run's pid limit
bounds them); `clone3` answers ENOSYS (its flags sit in memory a filter cannot read, so libc
falls back to `clone`), and so does `getrandom` (libraries fall back to /dev/urandom, which
reads zeros in the sandbox); `socket` opens AF_UNIX only (the run has no network; the
keeper's HTTP proxy is a unix socket). A syscall of another ABI (x32, i386 on
x86_64) kills the process: its numbers would slip past the list.

Only x86_64 is known here: `filter_program` raises UnsupportedArchitectureError elsewhere, and
the keeper says so at start (docs/architecture.md, Sandbox).
"""

from __future__ import annotations

import errno
import platform
import struct

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian).
_NR, _ARCH, _ARG0 = 0, 4, 16
_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL_PROCESS = 0x7FFF_0000, 0x8000_0000
_ERRNO = 0x0005_0000
_AUDIT_ARCH_X86_64 = 0xC000_003E
_X32_BIT = 0x4000_0000
_AF_UNIX = 1
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME
_NAMESPACE_FLAGS = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000
_NAMESPACE_FLAGS |= 0x4000_0000 | 0x0000_0080

X86_64_REFUSED = {
    "alarm": 37,
    "setitimer": 38,
    "gettimeofday": 96,
    "getrusage": 98,
    "sysinfo": 99,
    "times": 100,
    "ptrace": 101,
    "personality": 135,
    "time": 201,
    "sched_getaffinity": 204,
    "timer_create": 222,
    "clock_gettime": 228,
    "syslog": 103,
    "pivot_root": 155,
    "chroot": 161,
    "acct": 163,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "finit_module": 313,
    "timerfd_create": 283,
    "kexec_file_load": 320,
    "bpf": 321,
    "memfd_create": 319,
    "userfaultfd": 323,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "fspick": 433,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
}
_X86_64_CLONE, _X86_64_CLONE3, _X86_64_SOCKET, _X86_64_GETRANDOM = 56, 435, 41, 318


class UnsupportedArchitectureError(RuntimeError):
    """The filter has no syscall table for this machine."""


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def filter_program(machine: str | None = None) -> bytes:
    """The filter for `machine` (default: this one) as bwrap's `--seccomp` reads it."""
    machine = machine or platform.machine()
    if machine != "x86_64":
        raise UnsupportedArchitectureError(f"the sandbox's seccomp filter knows x86_64 only, not {machine}")
    refused = sorted(X86_64_REFUSED.values())
    deny = _op(_RET, _ERRNO | errno.EPERM)
    # Layout: arch check, nr load, x32 check, one jump per refused syscall, the three checked
    # ones, then the returns. Jumps count instructions forward from the next one.
    head = [
        _op(_LD_ABS, _ARCH),
        _op(_JEQ, _AUDIT_ARCH_X86_64, jt=1),
        _op(_RET, _KILL_PROCESS),
        _op(_LD_ABS, _NR),
        _op(_JGE, _X32_BIT, jt=0, jf=1),
        _op(_RET, _KILL_PROCESS),
    ]
    checks = len(refused)
    # After the refused list: clone (4 ops), clone3 (2), getrandom (2), socket (4), allow, deny.
    body = [_op(_JEQ, nr, jt=checks - i - 1 + 13) for i, nr in enumerate(refused)]
    tail = [
        _op(_JEQ, _X86_64_CLONE, jt=0, jf=3),
        _op(_LD_ABS, _ARG0),
        _op(_JSET, _NAMESPACE_FLAGS, jt=10, jf=0),  # to deny
        _op(_RET, _ALLOW),
        _op(_JEQ, _X86_64_CLONE3, jt=0, jf=1),
        _op(_RET, _ERRNO | errno.ENOSYS),
        _op(_JEQ, _X86_64_GETRANDOM, jt=0, jf=1),
        _op(_RET, _ERRNO | errno.ENOSYS),
        _op(_JEQ, _X86_64_SOCKET, jt=0, jf=3),
        _op(_LD_ABS, _ARG0),
        _op(_JEQ, _AF_UNIX, jt=1, jf=0),
        _op(_RET, _ERRNO | errno.EAFNOSUPPORT),
        _op(_RET, _ALLOW),
        deny,
    ]
    return b"".join(head + body + tail)


def docker_profile() -> dict[str, object]:
    """The same filter as a Docker seccomp profile (JSON), for the docker backend: what
    `filter_program` refuses, refused with the same errors."""
    refuse = {"action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}
    namespace_bits = [1 << bit for bit in range(64) if _NAMESPACE_FLAGS >> bit & 1]
    with_flag = [
        [{"index": 0, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"}] for bit in namespace_bits
    ]
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],  # any other ABI is killed
        "syscalls": [
            {"names": sorted(X86_64_REFUSED), **refuse},
            {"names": ["clone3", "getrandom"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
            *[{"names": ["clone"], **refuse, "args": args} for args in with_flag],
            {
                "names": ["socket"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EAFNOSUPPORT,
                "args": [{"index": 0, "value": _AF_UNIX, "op": "SCMP_CMP_NE"}],
            },
        ],
    }
