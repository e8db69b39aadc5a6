"""The seccomp system-call policy shared by every process-based sandbox.

Why seccomp: RLIMIT_NPROC does not bind uid 0, so a node running as root cannot contain a fork
bomb with rlimits. A filter that refuses new processes (while still allowing threads) contains it
for any uid. The same filter closes the calls that would let sandboxed code leave its namespaces,
touch other processes, or reach host services through Unix sockets.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from typing import Any

from ledger_net.errors import SandboxError

CLONE_THREAD = 0x00010000
AF_UNIX = 1

# Calls no sandboxed job needs and each of which could widen its reach.
_FORBIDDEN = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "syslog",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "name_to_handle_at",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "move_mount",
    "open_tree",
    "acct",
    "quotactl",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "iopl",
    "ioperm",
    "pidfd_send_signal",
    "pidfd_getfd",
    "tkill",
)

_PROCESS_CREATION = ("fork", "vfork")


def _module() -> Any:
    try:
        import pyseccomp
    except ImportError as exc:  # pragma: no cover - exercised only where the package is missing
        raise SandboxError(
            "seccomp support is missing: install the 'pyseccomp' Python package and the "
            "'libseccomp2' system package (Debian: apt-get install libseccomp2)"
        ) from exc
    return pyseccomp


def ensure_available() -> None:
    """Fail early, in the parent, with an install hint, instead of inside a forked child."""
    sc = _module()
    try:
        sc.SyscallFilter(sc.ALLOW)
    except Exception as exc:  # libseccomp.so missing or unusable
        raise SandboxError(
            f"libseccomp cannot be used ({exc}); install the 'libseccomp2' system package"
        ) from exc


def build_filter(*, own_pid: int | None, allow_processes: bool) -> Any:
    """Build the filter; ``own_pid`` limits signals to the sandbox itself (None inside a pid ns)."""
    sc = _module()
    deny = sc.ERRNO(errno.EPERM)
    filt = sc.SyscallFilter(sc.ALLOW)
    for name in _FORBIDDEN:
        try:
            filt.add_rule(deny, name)
        except (RuntimeError, ValueError, OSError):
            continue  # this libseccomp/arch does not know the call, so it cannot be made either
    if not allow_processes:
        for name in _PROCESS_CREATION:
            filt.add_rule(deny, name)
        # clone without CLONE_THREAD creates a process; with it, a thread (threads stay allowed,
        # bounded by the address-space limit).
        filt.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, CLONE_THREAD, 0))
        # clone3 passes its flags in memory that seccomp cannot read; ENOSYS makes libc fall back
        # to clone, which the rule above inspects.
        filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    if own_pid is not None:
        # Signals only to the sandbox's own pid: a uid-0 sandbox could otherwise kill the node.
        for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):
            filt.add_rule(deny, name, sc.Arg(0, sc.GT, own_pid))
            filt.add_rule(deny, name, sc.Arg(0, sc.LT, own_pid))
    # Path-bound Unix sockets live outside the network namespace and may lead to host daemons.
    filt.add_rule(sc.ERRNO(errno.EACCES), "socket", sc.Arg(0, sc.EQ, AF_UNIX))
    return filt


def load_in_this_process(*, allow_processes: bool) -> None:
    """Install the filter on the calling process (used in a child right before exec)."""
    filt = build_filter(own_pid=os.getpid(), allow_processes=allow_processes)
    filt.load()


@functools.lru_cache(maxsize=2)
def _compiled_bpf(allow_processes: bool) -> bytes:
    """The filter as classic BPF; compiled once per process (libseccomp takes ~0.3 ms)."""
    filt = build_filter(own_pid=None, allow_processes=allow_processes)
    with tempfile.TemporaryFile() as fh:
        filt.export_bpf(fh)
        fh.flush()
        fh.seek(0)
        return fh.read()


def export_bpf_file(*, allow_processes: bool) -> int:
    """The compiled filter in an unlinked in-memory file, as a readable fd at offset 0.

    bubblewrap's ``--seccomp FD`` reads such a program and applies it to the sandboxed command
    only, after bwrap's own forks are done. Each call gets its own fd: bwrap reads it to the end.
    """
    fd = os.memfd_create("ledger-net-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, _compiled_bpf(allow_processes))
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
