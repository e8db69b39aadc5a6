"""The launcher's half of isolation: what the process does to itself before bubblewrap runs.

bubblewrap (``sandbox/view.py``) builds the minimal root and the user, PID, IPC, UTS and cgroup
namespaces. Before it starts, this ``preexec_fn`` enters a network namespace with no interface
up (bubblewrap's own would bring loopback up), applies the rlimits, drops a root node's sandbox
to uid/gid 65534, arranges for the kernel to kill it with its node, and sets ``no_new_privs``.
A failing step is reported to the parent through a pipe with the step's name, so the parent
can raise a SandboxError saying what the kernel refused.
"""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass

from ledger_net.sandbox import linux
from ledger_net.sandbox.limits import SandboxLimits
from ledger_net.sandbox.view import SANDBOX_GID, SANDBOX_UID, STAGE_ROOT


@dataclass(frozen=True)
class IsolationPlan:
    """What the launcher applies before bubblewrap takes over."""

    private_dir: str
    limits: SandboxLimits
    # (source, staged path) pairs a root launcher binds before it drops to uid 65534.
    stage: tuple[tuple[str, str], ...] = ()
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


def _enter_network_namespace(euid: int, egid: int) -> None:
    if euid != 0:
        # An unprivileged node first needs a user namespace to own the new network namespace.
        linux.unshare(linux.CLONE_NEWUSER)
        linux.write_file("/proc/self/setgroups", "deny")
        linux.write_file("/proc/self/uid_map", f"{euid} {euid} 1")
        linux.write_file("/proc/self/gid_map", f"{egid} {egid} 1")
    # bubblewrap's own --unshare-net would bring loopback up; this namespace has no interface up.
    linux.unshare(linux.CLONE_NEWNET)


def _stage_binds(stage: tuple[tuple[str, str], ...]) -> None:
    """Bind each source under a fresh tmpfs at STAGE_ROOT, in a mount namespace of our own.

    The sources are opened first (the tmpfs may cover one of them) and bound through their
    descriptors, so uid 65534 reaches them by a path it may walk.
    """
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    fds = [os.open(source, os.O_PATH | os.O_CLOEXEC) for source, _ in stage]  # in this namespace
    linux.mount("tmpfs", STAGE_ROOT, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV)
    for fd, (_source, staged) in zip(fds, stage, strict=False):
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.mkdir(staged, 0o755)
        else:
            os.close(os.open(staged, os.O_WRONLY | os.O_CREAT, 0o644))
        linux.mount(f"/proc/self/fd/{fd}", staged, None, linux.MS_BIND | linux.MS_REC)
        os.close(fd)
    os.chmod(STAGE_ROOT, 0o755)


def _become_unprivileged() -> None:
    """A root node hands its sandboxes to uid/gid 65534, which owns nothing of the node's."""
    os.setgroups([])
    os.setgid(SANDBOX_GID)
    os.setuid(SANDBOX_UID)


def make_preexec(plan: IsolationPlan, error_fd: int) -> Callable[[], None]:
    """Build the ``preexec_fn`` of the bubblewrap launcher.

    It enters a network namespace with no interface up, applies the rlimits, drops to an
    unprivileged uid when the node is root, and sets ``no_new_privs``; bubblewrap then builds
    the view (``sandbox/view.py``), the other namespaces and the seccomp filter. On failure it
    writes ``step: error`` to ``error_fd`` and raises.
    """
    euid, egid = os.geteuid(), os.getegid()
    pairs = rlimit_pairs(plan.limits, plan.cpu_grace)

    def preexec() -> None:
        step = "start"
        try:
            step = "network namespace"
            _enter_network_namespace(euid, egid)
            if euid == 0 and plan.stage:
                step = "staging binds"
                _stage_binds(plan.stage)
            if euid == 0:
                step = "unprivileged uid"
                _become_unprivileged()
                linux.set_dumpable()
            # Last: the node's own descriptors are still open here (subprocess closes them after
            # this function), so an RLIMIT_NOFILE below their numbers would fail the steps above.
            step = "rlimits"
            for res, value in pairs:
                resource.setrlimit(res, value)
            step = "parent-death signal"  # after setuid, which clears it
            linux.set_parent_death_signal(signal.SIGKILL)
            step = "no_new_privs"
            linux.set_no_new_privs()
        except BaseException as exc:
            try:
                os.write(error_fd, f"{step}: {exc}".encode(errors="replace")[:4000])
            finally:
                raise

    return preexec


def prepare_private_dir(path: str) -> None:
    """Hand a host dir that a sandbox writes to over to the sandbox's uid (root nodes only)."""
    if os.geteuid() == 0:
        os.chown(path, SANDBOX_UID, SANDBOX_GID)
