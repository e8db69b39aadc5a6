"""container: the same minimal root as process_isolation, under the seed's name.

Since issue #9 both Python sandbox types build one view (``sandbox/view.py``) with bubblewrap:
a fresh root of read-only system and interpreter binds, a tmpfs working dir, fresh user, PID,
IPC, UTS, cgroup and network namespaces, no capabilities, seccomp and rlimits. ``container``
stays a separate type so that a task can ask for it by the seed's name, and so that a node can
offer it (or not) on its own.
"""

from __future__ import annotations

from ledger_net.sandbox.limits import SandboxType
from ledger_net.sandbox.process import ProcessSandboxExecutor
from ledger_net.sandbox.view import INSTALL_HINT, find_bwrap

__all__ = ["INSTALL_HINT", "ContainerSandboxExecutor", "find_bwrap"]


class ContainerSandboxExecutor(ProcessSandboxExecutor):
    """bubblewrap with every namespace new, no capabilities, a read-only root and seccomp."""

    sandbox_type = SandboxType.CONTAINER
