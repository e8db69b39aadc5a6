"""container: the user's Python script inside a bubblewrap namespace sandbox.

Stronger than process_isolation: the program sees a fresh root made of read-only binds of the
system dirs and the interpreter, a private /tmp, its private dir as /sandbox, and nothing else
of the host (no /home, /root, node data, /etc secrets). All namespaces are new (mount, pid, net,
ipc, uts, cgroup), every capability is dropped, and the same seccomp policy and rlimits apply.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

from ledger_net.errors import SandboxError
from ledger_net.sandbox import linux, seccomp_policy
from ledger_net.sandbox.base import SandboxExecutor
from ledger_net.sandbox.bundle import CodeBundle
from ledger_net.sandbox.isolation import IsolationPlan, make_preexec
from ledger_net.sandbox.limits import SandboxLimits, SandboxType
from ledger_net.sandbox.process import (
    BOOTSTRAP,
    check_process_limits,
    check_python_entrypoint,
    run_self_test_bundle,
)
from ledger_net.sandbox.result import SandboxResult
from ledger_net.sandbox.runner import run_confined
from ledger_net.sandbox.verdict import to_result
from ledger_net.sandbox.workspace import PrivateDir

INSIDE_DIR = "/sandbox"
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Only what the dynamic loader, Python and locale/time code read; not the whole /etc.
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
)


def find_bwrap(path: str | None) -> str:
    """Resolve the bwrap binary or raise SandboxError saying how to install it."""
    if path is None:
        found = shutil.which("bwrap")
        if not found:
            raise SandboxError(f"the container sandbox needs bubblewrap, and 'bwrap' is not on PATH: {INSTALL_HINT}")
        return found
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise SandboxError(f"bubblewrap not found or not executable at {path!r}: {INSTALL_HINT}")
    return path


def _system_binds() -> list[str]:
    args: list[str] = []
    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for f in _ETC_FILES:
        args += ["--ro-bind-try", f, f]
    return args


def _python_binds(python: str) -> list[str]:
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    roots.add(os.path.dirname(os.path.dirname(os.path.realpath(python))))
    args: list[str] = []
    for root in sorted(roots):
        if not any(root == d or root.startswith(d + "/") for d in _SYSTEM_DIRS):
            args += ["--ro-bind", root, root]
    return args


class ContainerSandboxExecutor(SandboxExecutor):
    """bubblewrap with --unshare-all, --cap-drop ALL, a read-only root and seccomp."""

    sandbox_type = SandboxType.CONTAINER

    def __init__(self, limits: SandboxLimits | None = None, *, bwrap_path: str | None = None,
                 python: str | None = None, temp_root: str | None = None) -> None:
        super().__init__(limits)
        if not linux.is_linux():
            raise SandboxError("the container sandbox needs Linux namespaces; this is not Linux")
        self.bwrap = find_bwrap(bwrap_path)
        self.python = python or sys.executable
        self.temp_root = temp_root
        seccomp_policy.ensure_available()

    def _argv(self, private_dir: str, entry_inside: str, args: list[str], env: dict[str, str],
              seccomp_fd: int, status_fd: int) -> list[str]:
        argv = [
            self.bwrap,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--as-pid-1",
            "--cap-drop", "ALL",
            "--hostname", "sandbox",
            *_system_binds(),
            *_python_binds(self.python),
            "--proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
            "--bind", private_dir, INSIDE_DIR,
            "--chdir", INSIDE_DIR,
            "--remount-ro", "/",
            "--clearenv",
        ]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += ["--seccomp", str(seccomp_fd), "--json-status-fd", str(status_fd), "--"]
        argv += [os.path.realpath(self.python), "-I", "-B", "-c", BOOTSTRAP, INSIDE_DIR, entry_inside, *args]
        return argv

    async def execute(self, job: Any, code_bundle: CodeBundle, limits: SandboxLimits | None = None) -> SandboxResult:
        """Run the bundle's Python entrypoint in a fresh bubblewrap container."""
        bundle, eff = self._effective(code_bundle, limits)
        check_python_entrypoint(bundle)
        check_process_limits(eff)
        find_bwrap(self.bwrap)  # it may have been removed since construction
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": INSIDE_DIR, "TMPDIR": "/tmp",
               "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        env.update(eff.env or {})
        seccomp_fd = seccomp_policy.export_bpf_file(allow_processes=False)
        status_r, status_w = os.pipe()
        try:
            with PrivateDir(base=self.temp_root) as private:
                private.materialize(bundle, eff)
                plan = IsolationPlan(private_dir=private.path, limits=eff, namespaces=False, seccomp=False,
                                     cpu_grace=0)
                argv = self._argv(private.path, f"{INSIDE_DIR}/{bundle.entrypoint}", bundle.args, env,
                                  seccomp_fd, status_w)
                raw = await run_confined(
                    argv,
                    env={"PATH": "/usr/bin:/bin"},
                    cwd=private.path,
                    make_preexec=lambda fd: make_preexec(plan, fd),
                    stdin=bundle.stdin_bytes(),
                    wall_time=eff.wall_time_seconds,
                    max_output=eff.max_output_bytes,
                    pass_fds=(seccomp_fd, status_w),
                )
                os.close(status_w)
                status_w = -1
                status = _read_status(status_r)
        finally:
            os.close(seccomp_fd)
            os.close(status_r)
            if status_w >= 0:
                os.close(status_w)
        if "child-pid" not in status and not raw.timed_out and not raw.output_exceeded:
            detail = raw.stderr.decode(errors="replace").strip()[-2000:]
            raise SandboxError(f"bubblewrap could not set up the container: {detail or 'no message'}")
        if raw.exit_code is not None and 128 < raw.exit_code <= 128 + 64:
            # bwrap exits with 128+N when the program died of signal N
            raw.term_signal, raw.exit_code = raw.exit_code - 128, None
        result = to_result(raw, eff, self.sandbox_type.value)
        result.usage["private_dir_removed"] = not os.path.lexists(private.path)
        return result

    async def run_self_test(self) -> dict[str, Any]:
        """Fork refused, loopback unreachable, root read-only, private dir writable."""
        return await run_self_test_bundle(self)


def _read_status(fd: int) -> dict[str, Any]:
    """Merge the JSON documents bwrap wrote to its status fd (the write end is closed)."""
    chunks = []
    os.set_blocking(fd, False)  # a leftover holder of the write end must not stall the loop
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    merged: dict[str, Any] = {}
    decoder = json.JSONDecoder()
    text = b"".join(chunks).decode(errors="replace")
    pos = 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        if isinstance(doc, dict):
            merged.update(doc)
    return merged
