"""process_isolation: the user's Python script in a confined child of this interpreter."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from ledger_net.errors import SandboxError
from ledger_net.sandbox import linux, seccomp_policy, view
from ledger_net.sandbox.base import SandboxExecutor
from ledger_net.sandbox.bundle import CodeBundle
from ledger_net.sandbox.isolation import IsolationPlan, make_preexec
from ledger_net.sandbox.limits import SandboxLimits, SandboxType
from ledger_net.sandbox.result import SandboxResult
from ledger_net.sandbox.runner import run_confined
from ledger_net.sandbox.verdict import to_result
from ledger_net.sandbox.workspace import PrivateDir

# -I drops the environment, the user site and the script dir from sys.path; -S skips the site
# module, whose .pth hooks (editable installs, certifi, ...) a task never needs and which cost a
# fresh interpreter 20-40 ms. The bundle's dir and the node's site-packages (argv[2], joined by
# os.pathsep) are put on sys.path by hand, so numpy and the bundle's own modules import as usual.
BOOTSTRAP = (
    "import sys, runpy; sys.path.insert(0, sys.argv[1]); "
    "sys.path.extend(p for p in sys.argv[2].split(':') if p); sys.argv = sys.argv[3:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def site_paths() -> str:
    """The node's site-packages dirs (inside the Python prefix the view binds), joined."""
    return os.pathsep.join(p for p in sys.path if p.endswith(("site-packages", "dist-packages")))

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
    """The user's Python script in a fresh minimal root (``sandbox/view.py``) under bubblewrap.

    The script sees its bundle in a size-bounded tmpfs working dir, read-only binds of the
    system libraries and the Python prefix, and nothing else of the host: not the node's data
    dir, not /home or /root, not other processes, not any network. It runs as uid 65534 with
    no capabilities, ``no_new_privs``, the seccomp policy and the rlimits of its limits.
    """

    sandbox_type = SandboxType.PROCESS_ISOLATION

    def __init__(self, limits: SandboxLimits | None = None, *, python: str | None = None,
                 temp_root: str | None = None, bwrap_path: str | None = None) -> None:
        super().__init__(limits)
        if not linux.is_linux():
            raise SandboxError(f"the {self.sandbox_type.value} sandbox needs Linux namespaces and seccomp; "
                               "this is not Linux")
        self.bwrap = view.find_bwrap(bwrap_path)
        self.python = python or sys.executable
        if not self.python or not os.access(self.python, os.X_OK):
            raise SandboxError(f"Python interpreter {self.python!r} is not executable")
        self.temp_root = temp_root
        seccomp_policy.ensure_available()

    def _argv(self, bundle: CodeBundle, root: view.View, env: dict[str, str], file_fds: dict[str, int],
              seccomp_fd: int, status_fd: int) -> list[str]:
        argv = [self.bwrap, *view.namespace_args(), *root.args]
        made: set[str] = set()
        for name, fd in file_fds.items():
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                sub = "/".join(parts[:i])
                if sub not in made:
                    made.add(sub)
                    argv += ["--dir", f"{view.WORK_DIR}/{sub}"]
            argv += ["--file", str(fd), f"{view.WORK_DIR}/{name}"]
        argv += ["--chdir", view.WORK_DIR, "--remount-ro", "/", "--clearenv"]
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += ["--seccomp", str(seccomp_fd), "--json-status-fd", str(status_fd), "--"]
        argv += [self.python, "-I", "-S", "-B", "-c", BOOTSTRAP, view.WORK_DIR, site_paths(),
                 f"{view.WORK_DIR}/{bundle.entrypoint}", *bundle.args]
        return argv

    async def execute(self, job: Any, code_bundle: CodeBundle, limits: SandboxLimits | None = None) -> SandboxResult:
        """Run the bundle's Python entrypoint confined; limit hits come back as failed results."""
        bundle, eff = self._effective(code_bundle, limits)
        check_python_entrypoint(bundle)
        check_process_limits(eff)
        view.find_bwrap(self.bwrap)  # it may have been removed since construction
        if bundle.total_bytes() > min(eff.max_file_bytes, eff.max_disk_bytes):
            raise SandboxError(f"code bundle is {bundle.total_bytes()} bytes, above the sandbox's "
                               f"file or disk limit ({min(eff.max_file_bytes, eff.max_disk_bytes)})")
        env = view.inherited_env(eff.env)
        seccomp_fd = seccomp_policy.export_bpf_file(allow_processes=False)
        status_r, status_w = os.pipe()
        root = view.build_view(self.python, work_dir_bytes=eff.max_disk_bytes)
        file_fds: dict[str, int] = {}
        try:
            with PrivateDir(base=self.temp_root) as private:
                private.materialize(bundle, eff)
                for name in bundle.files:
                    fd = os.open(os.path.join(private.path, name), os.O_RDONLY | os.O_CLOEXEC)
                    file_fds[name] = fd
                plan = IsolationPlan(private_dir=private.path, limits=eff, stage=tuple(root.stage))
                argv = self._argv(bundle, root, env, file_fds, seccomp_fd, status_w)
                raw = await run_confined(
                    argv,
                    env={"PATH": "/usr/bin:/bin"},
                    cwd="/",
                    make_preexec=lambda fd: make_preexec(plan, fd),
                    stdin=bundle.stdin_bytes(),
                    wall_time=eff.wall_time_seconds,
                    max_output=eff.max_output_bytes,
                    pass_fds=(seccomp_fd, status_w, *file_fds.values()),
                )
                os.close(status_w)
                status_w = -1
                status = read_status(status_r)
        finally:
            for fd in (seccomp_fd, status_r, status_w, *file_fds.values()):
                if fd >= 0:
                    os.close(fd)
        if "child-pid" not in status and not raw.timed_out and not raw.output_exceeded:
            detail = raw.stderr.decode(errors="replace").strip()[-2000:]
            raise SandboxError(f"bubblewrap could not set up the sandbox: {detail or 'no message'}")
        if raw.exit_code is not None and 128 < raw.exit_code <= 128 + 64:
            # bwrap exits with 128+N when the program died of signal N
            raw.term_signal, raw.exit_code = raw.exit_code - 128, None
        result = to_result(raw, eff, self.sandbox_type.value)
        result.usage["private_dir"] = view.WORK_DIR
        result.usage["private_dir_removed"] = not os.path.lexists(private.path)
        return result

    async def run_self_test(self) -> dict[str, Any]:
        """Fork refused, loopback unreachable, root read-only, private dir writable, host hidden."""
        return await run_self_test_bundle(self)


def read_status(fd: int) -> dict[str, Any]:
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
