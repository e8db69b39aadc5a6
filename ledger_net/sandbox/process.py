"""process_isolation: the user's Python script in a confined child of this interpreter."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from ledger_net.errors import SandboxError
from ledger_net.sandbox import linux, seccomp_policy
from ledger_net.sandbox.base import SandboxExecutor
from ledger_net.sandbox.bundle import CodeBundle
from ledger_net.sandbox.isolation import IsolationPlan, make_preexec, sandbox_env
from ledger_net.sandbox.limits import SandboxLimits, SandboxType
from ledger_net.sandbox.result import SandboxResult
from ledger_net.sandbox.runner import run_confined
from ledger_net.sandbox.verdict import to_result
from ledger_net.sandbox.workspace import PrivateDir

# -I drops the environment, the user site and the script dir from sys.path; the bundle's own
# dir is put back so multi-file bundles can import their modules.
BOOTSTRAP = (
    "import sys, runpy; sys.path.insert(0, sys.argv[1]); sys.argv = sys.argv[2:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)

# Probes whose every line must come out as expected on a machine where isolation works.
SELF_TEST_SCRIPT = r"""
import json, os, socket, sys
checks = {}
try:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    checks["fork_refused"] = False
except OSError:
    checks["fork_refused"] = True
s = socket.socket()
s.settimeout(1)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    checks["network_blocked"] = False
except OSError:
    checks["network_blocked"] = True
try:
    with open("/ledger_net_sandbox_escape", "w") as fh:
        fh.write("x")
    checks["root_fs_read_only"] = False
except OSError:
    checks["root_fs_read_only"] = True
with open("scratch.txt", "w") as fh:
    fh.write("ok")
checks["private_dir_writable"] = open("scratch.txt").read() == "ok"
print(json.dumps(checks))
"""


def check_python_entrypoint(bundle: CodeBundle) -> None:
    """Both process-based sandboxes run Python entrypoints only."""
    if not bundle.entrypoint.endswith(".py"):
        raise SandboxError(
            f"entrypoint {bundle.entrypoint!r} is not a .py file; this sandbox runs Python scripts "
            "(use the wasm sandbox for .wasm/.wat modules)"
        )


def check_process_limits(limits: SandboxLimits) -> None:
    """Refuse limits this machine cannot enforce instead of silently ignoring them."""
    if limits.max_processes != 1:
        raise SandboxError(
            f"max_processes={limits.max_processes} cannot be enforced by this sandbox: child "
            "processes are refused outright by seccomp (RLIMIT_NPROC counts the whole uid and "
            "never binds root); use max_processes=1 (threads stay allowed)"
        )


async def run_self_test_bundle(executor: SandboxExecutor) -> dict[str, Any]:
    """Run SELF_TEST_SCRIPT in ``executor`` against a live loopback listener and check every probe."""
    import asyncio

    connected = asyncio.Event()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        bundle = CodeBundle(entrypoint="self_test.py", source=SELF_TEST_SCRIPT, args=[str(port)])
        limits = SandboxLimits(cpu_time_seconds=10, wall_time_seconds=30)
        result = await executor.execute(None, bundle, limits)
    finally:
        server.close()
        await server.wait_closed()
    if not result.success:
        raise SandboxError(f"sandbox self-test failed to run: {result.reason}: {result.stderr[-2000:]}")
    try:
        checks = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise SandboxError(f"sandbox self-test printed no verdict: {result.stdout[-500:]!r}") from exc
    checks["listener_untouched"] = not connected.is_set()
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise SandboxError(f"sandbox self-test: isolation checks failed: {', '.join(failed)}")
    return {"sandbox": executor.sandbox_type.value, "ok": True, "checks": checks, "runtime": result.runtime}


class ProcessSandboxExecutor(SandboxExecutor):
    """rlimits + private mount/net namespaces + seccomp, running ``python -I`` in a private dir.

    Writes land only in the private dir (every other mount is read-only in the child's mount
    namespace); the dir is removed after the run. Reads of world-readable files stay possible:
    use the container sandbox when the code must not see the host's files.
    """

    sandbox_type = SandboxType.PROCESS_ISOLATION

    def __init__(self, limits: SandboxLimits | None = None, *, python: str | None = None,
                 temp_root: str | None = None) -> None:
        super().__init__(limits)
        if not linux.is_linux():
            raise SandboxError("process_isolation needs Linux namespaces and seccomp; this is not Linux")
        self.python = python or sys.executable
        if not self.python or not os.access(self.python, os.X_OK):
            raise SandboxError(f"Python interpreter {self.python!r} is not executable")
        self.temp_root = temp_root
        seccomp_policy.ensure_available()

    async def execute(self, job: Any, code_bundle: CodeBundle, limits: SandboxLimits | None = None) -> SandboxResult:
        """Run the bundle's Python entrypoint confined; limit hits come back as failed results."""
        bundle, eff = self._effective(code_bundle, limits)
        check_python_entrypoint(bundle)
        check_process_limits(eff)
        with PrivateDir(base=self.temp_root) as private:
            entry = private.materialize(bundle, eff)
            plan = IsolationPlan(private_dir=private.path, limits=eff)
            raw = await run_confined(
                [self.python, "-I", "-B", "-c", BOOTSTRAP, private.path, entry, *bundle.args],
                env=sandbox_env(private.path, eff),
                cwd=private.path,
                make_preexec=lambda fd: make_preexec(plan, fd),
                stdin=bundle.stdin_bytes(),
                wall_time=eff.wall_time_seconds,
                max_output=eff.max_output_bytes,
            )
        result = to_result(raw, eff, self.sandbox_type.value)
        result.usage["private_dir"] = private.path
        result.usage["private_dir_removed"] = not os.path.lexists(private.path)
        return result

    async def run_self_test(self) -> dict[str, Any]:
        """Fork refused, loopback unreachable, root fs read-only, private dir writable."""
        return await run_self_test_bundle(self)
