"""Child-side isolation: what a sandboxed process does to itself between fork and exec.

The steps run as ``preexec_fn`` so that the user's interpreter starts already confined:
no network (a private network namespace with no interfaces up), a read-only view of every file
system except the private dir (a private mount namespace), no capabilities, rlimits, and the
seccomp policy that forbids new processes. A failing step is reported to the parent through a
pipe with the step's name, so the parent can raise a SandboxError saying what the kernel refused.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass

from ledger_net.sandbox import linux, seccomp_policy
from ledger_net.sandbox.limits import SandboxLimits


@dataclass(frozen=True)
class IsolationPlan:
    """What the child applies. ``namespaces`` is off only for the bwrap launcher, which does its own."""

    private_dir: str
    limits: SandboxLimits
    namespaces: bool = True
    seccomp: bool = True
    # Seconds between RLIMIT_CPU's soft (SIGXCPU) and hard (SIGKILL) limit; 0 where SIGXCPU
    # would be ignored (a pid-namespace init ignores signals it has no handler for).
    cpu_grace: int = 1


def rlimit_pairs(limits: SandboxLimits, cpu_grace: int = 1) -> list[tuple[int, tuple[int, int]]]:
    """The rlimits for a plan; a separate function so tests and self-test can inspect them."""
    cpu = max(1, int(-(-limits.cpu_time_seconds // 1)))  # ceil: RLIMIT_CPU counts whole seconds
    pairs = [
        # soft limit sends SIGXCPU, the hard one a second later SIGKILL
        (resource.RLIMIT_CPU, (cpu, cpu + cpu_grace)),
        (resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes)),
        (resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes)),
        (resource.RLIMIT_NOFILE, (limits.max_open_files, limits.max_open_files)),
        (resource.RLIMIT_CORE, (0, 0)),
    ]
    # No RLIMIT_NPROC: it counts every process of the uid system-wide and never binds uid 0;
    # process creation is refused by the seccomp policy instead.
    return pairs


def _enter_namespaces(euid: int, egid: int) -> None:
    if euid != 0:
        # An unprivileged node first needs a user namespace to own the new mount/net namespaces.
        linux.unshare(linux.CLONE_NEWUSER)
        linux.write_file("/proc/self/setgroups", "deny")
        linux.write_file("/proc/self/uid_map", f"{euid} {euid} 1")
        linux.write_file("/proc/self/gid_map", f"{egid} {egid} 1")
    linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWNET)


def _read_only_except(private_dir: str) -> None:
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount(private_dir, private_dir, None, linux.MS_BIND | linux.MS_REC)
    prefix = private_dir.rstrip("/") + "/"
    for point, flags in linux.mount_points():
        if point == private_dir or point.startswith(prefix) or flags & linux.MS_RDONLY:
            continue
        try:
            linux.mount(None, point, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | flags)
        except OSError as exc:
            # A mount hidden under another mount cannot be reached by path; it is not visible
            # to the child either, so it is no way out.
            if exc.errno in (errno.ENOENT, errno.EINVAL) and not os.path.ismount(point):
                continue
            raise
    os.chdir(private_dir)  # the old cwd is the underlying, now read-only, directory


def make_preexec(plan: IsolationPlan, error_fd: int) -> Callable[[], None]:
    """Build the ``preexec_fn``; on failure it writes ``step: error`` to ``error_fd`` and raises."""
    euid, egid = os.geteuid(), os.getegid()
    pairs = rlimit_pairs(plan.limits, plan.cpu_grace)
    last_cap = linux.last_capability()

    def preexec() -> None:
        step = "start"
        try:
            step = "parent-death signal"
            linux.set_parent_death_signal(signal.SIGKILL)
            if plan.namespaces:
                step = "network and mount namespaces"
                _enter_namespaces(euid, egid)
                step = "read-only file systems"
                _read_only_except(plan.private_dir)
            step = "rlimits"
            for res, value in pairs:
                resource.setrlimit(res, value)
            if plan.namespaces:
                step = "dropping capabilities"
                linux.drop_all_capabilities(last_cap)
            step = "no_new_privs"
            linux.set_no_new_privs()
            if plan.seccomp:
                step = "seccomp filter"
                seccomp_policy.load_in_this_process(allow_processes=False)
        except BaseException as exc:
            try:
                os.write(error_fd, f"{step}: {exc}".encode(errors="replace")[:4000])
            finally:
                raise

    return preexec


def sandbox_env(private_dir: str, limits: SandboxLimits) -> dict[str, str]:
    """A minimal environment: nothing of the node's own environment leaks into user code."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": private_dir,
        "TMPDIR": private_dir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if limits.env:
        env.update(limits.env)
    return env
