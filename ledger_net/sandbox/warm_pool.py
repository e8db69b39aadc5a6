"""A pool of long-lived, sandboxed worker processes for small built-in operations.

Why: a fresh interpreter costs 11-19 ms here, so launching one per chunk caps a node far below
the ~500 tiny operations per second the task engine needs. Each worker is started once inside the
same minimal root as process_isolation (``sandbox/view.py``: fresh user, PID, mount and network
namespaces, uid 65534, no capabilities, seccomp without process creation, rlimits), seeing only
the interpreter, the modules of its registered functions, its own private dir and a read-only
input dir and then serves jobs
``(function_name, payload_bytes) -> result bytes`` over its pipes. Only functions registered by
import path at pool creation can be called. A job past its wall timeout kills and replaces its
worker; a crashed worker is replaced and its job reported failed with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from types import TracebackType

from ledger_net.errors import SandboxError
from ledger_net.sandbox import linux, seccomp_policy, view
from ledger_net.sandbox.isolation import IsolationPlan, make_preexec, prepare_private_dir
from ledger_net.sandbox.limits import SandboxLimits
from ledger_net.sandbox.result import REASON_CPU, REASON_MEMORY, REASON_OUTPUT, REASON_WALL, signal_reason
from ledger_net.sandbox.warm_worker import BOOT, READY, REQUEST, RESPONSE, STATUS_FATAL, STATUS_OK
from ledger_net.sandbox.workspace import PrivateDir

_STDERR_TAIL = 8192
_START_TIMEOUT = 30.0


class WarmJobError(SandboxError):
    """A pool job failed; ``reason`` says why (limit hit, crash, or the function's exception)."""

    def __init__(self, name: str, reason: str, stderr: str = "") -> None:
        super().__init__(f"warm job {name!r} failed: {reason}")
        self.name = name
        self.reason = reason
        self.stderr = stderr


class _Worker:
    """One confined worker process and its private dir."""

    def __init__(self, proc: asyncio.subprocess.Process, private: PrivateDir) -> None:
        self.proc = proc
        self.private = private
        self.stderr_tail = bytearray()
        self.cpu_seconds = 0.0
        self.jobs = 0
        self._drain = asyncio.ensure_future(self._drain_stderr())

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while True:
            data = await self.proc.stderr.read(65536)
            if not data:
                return
            self.stderr_tail += data
            del self.stderr_tail[:-_STDERR_TAIL]

    async def read_response(self, max_body: int) -> tuple[int, bytes]:
        assert self.proc.stdout is not None
        status, cpu, length = RESPONSE.unpack(await self.proc.stdout.readexactly(RESPONSE.size))
        self.cpu_seconds = cpu
        if length > max_body:
            raise OverflowError(length)
        return status, await self.proc.stdout.readexactly(length)

    async def kill(self) -> int | None:
        """Kill the worker's whole group, reap it and remove its private dir."""
        # Only os.killpg: Process.kill() polls the Popen first, and that waitpid would reap the
        # child behind asyncio's child watcher, which then reports a bogus exit code 255.
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        # asyncio's Process.wait() returns only once every pipe is closed, and a stdout left
        # unread (e.g. an oversized result) stays paused: read both to EOF, which a dead
        # process reaches at once.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(self._drain_stdout(), self._drain), timeout=5.0)
        code = await self.proc.wait()
        self.private.remove()
        return code

    async def _drain_stdout(self) -> None:
        assert self.proc.stdout is not None
        while await self.proc.stdout.read(1 << 16):
            pass

    def stderr_text(self) -> str:
        return bytes(self.stderr_tail).decode(errors="replace")


class WarmWorkerPool:
    """``await pool.run(name, payload, timeout=...)`` on N warm sandboxed workers.

    ``functions`` maps job names to ``"package.module:function"`` paths; each function takes the
    payload bytes and returns bytes. ``limits`` applies per worker (memory, files) and per job
    (cpu_time_seconds, wall_time_seconds as the default timeout, max_output_bytes for results).
    A worker is replaced after ``max_jobs_per_worker`` jobs or when its lifetime CPU budget
    (``lifetime_cpu_seconds``) is nearly spent.
    """

    def __init__(self, functions: Mapping[str, str], *, size: int = 2, limits: SandboxLimits | None = None,
                 python: str | None = None, temp_root: str | None = None,
                 lifetime_cpu_seconds: float = 3600.0, max_jobs_per_worker: int = 100_000,
                 input_dir: str | None = None, bwrap_path: str | None = None) -> None:
        if not linux.is_linux():
            raise SandboxError("the warm pool needs Linux namespaces and seccomp; this is not Linux")
        if not isinstance(functions, Mapping) or not functions:
            raise SandboxError("the warm pool needs a non-empty mapping of name -> 'module:function'")
        for name, path in functions.items():
            if not isinstance(name, str) or not name or len(name.encode()) > 65535:
                raise SandboxError(f"bad function name {name!r}")
            module, sep, attr = str(path).partition(":")
            if not sep or not module or not attr:
                raise SandboxError(f"function path {path!r} for {name!r} is not 'package.module:function'")
        if not isinstance(size, int) or size < 1:
            raise SandboxError(f"pool size must be a positive integer, got {size!r}")
        self.functions = dict(functions)
        self.size = size
        self.limits = limits or SandboxLimits(cpu_time_seconds=5, wall_time_seconds=10)
        if self.limits.max_processes != 1:
            raise SandboxError("warm workers refuse process creation: max_processes must be 1")
        if lifetime_cpu_seconds < self.limits.cpu_time_seconds:
            raise SandboxError("lifetime_cpu_seconds must be at least the per-job cpu_time_seconds")
        self.python = python or sys.executable
        self.temp_root = temp_root
        self.lifetime_cpu_seconds = lifetime_cpu_seconds
        self.max_jobs_per_worker = max_jobs_per_worker
        # Read-only files the node links in for jobs (shown at view.INPUT_DIR), and the only
        # code a worker sees: the modules of its registered functions and ledger_net itself.
        self.input_dir = input_dir
        self.bwrap = view.find_bwrap(bwrap_path)
        self.code_paths = view.module_roots([*self.functions.values(), "ledger_net:__name__"])
        seccomp_policy.ensure_available()
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._started = False
        self._closed = False
        self.stats = {"jobs": 0, "failed": 0, "respawned": 0}

    async def start(self) -> WarmWorkerPool:
        """Start all workers (concurrently); raises SandboxError if isolation or imports fail."""
        if self._closed:
            raise SandboxError("the warm pool is closed")
        if self._started:
            return self
        self._started = True
        try:
            workers = await asyncio.gather(*(self._spawn() for _ in range(self.size)))
        except BaseException:
            await self.close()
            raise
        for w in workers:
            self._idle.put_nowait(w)
        return self

    async def _spawn(self) -> _Worker:
        private = PrivateDir(prefix="ledger-warm-", base=self.temp_root).__enter__()
        try:
            prepare_private_dir(private.path)
            root = view.build_view(self.python, work_dir_bytes=self.limits.max_disk_bytes, private_dir=private.path,
                                   code_paths=self.code_paths, input_dir=self.input_dir)
        except (OSError, SandboxError) as exc:
            private.remove()
            raise SandboxError(f"warm worker view could not be built: {exc}") from exc
        lifetime = IsolationPlan(private_dir=private.path,
                                 limits=self.limits.with_changes(cpu_time_seconds=self.lifetime_cpu_seconds),
                                 cpu_grace=0, stage=tuple(root.stage))
        argv = [self.bwrap, *view.namespace_args(hostname="worker"), *root.args,
                "--chdir", view.WORK_DIR, "--remount-ro", "/", "--clearenv"]
        for key, value in view.inherited_env(self.limits.env).items():
            argv += ["--setenv", key, value]
        paths = [p for p in sys.path if p]
        error_r, error_w = os.pipe()
        seccomp_fd = seccomp_policy.export_bpf_file(allow_processes=False)
        argv += ["--seccomp", str(seccomp_fd), "--", self.python, "-I", "-B", "-c", BOOT,
                 json.dumps(paths), json.dumps(self.functions), str(self.limits.cpu_time_seconds)]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env={"PATH": "/usr/bin:/bin"}, cwd="/",
                preexec_fn=make_preexec(lifetime, error_w), start_new_session=True,
                pass_fds=(seccomp_fd,), limit=2**16,
            )
        except subprocess.SubprocessError as exc:
            detail = ""
            os.set_blocking(error_r, False)
            with contextlib.suppress(OSError):
                detail = os.read(error_r, 4096).decode(errors="replace")
            private.remove()
            raise SandboxError(f"warm worker isolation could not be set up ({detail or exc})") from exc
        except OSError as exc:
            private.remove()
            raise SandboxError(f"cannot start warm worker {self.python!r}: {exc}") from exc
        finally:
            os.close(error_r)
            os.close(error_w)
            os.close(seccomp_fd)
        worker = _Worker(proc, private)
        self._all.add(worker)
        try:
            status, body = await asyncio.wait_for(worker.read_response(65536), timeout=_START_TIMEOUT)
        except (TimeoutError, asyncio.IncompleteReadError, OverflowError) as exc:
            await self._retire(worker)
            raise SandboxError(f"warm worker did not start: {type(exc).__name__}: "
                               f"{worker.stderr_text()[-2000:]}") from exc
        if status != STATUS_OK or body != READY:
            await self._retire(worker)
            why = body.decode(errors="replace") if status == STATUS_FATAL else repr(body[:200])
            raise SandboxError(f"warm worker could not load its functions: {why}")
        return worker

    async def _retire(self, worker: _Worker) -> int | None:
        self._all.discard(worker)
        return await worker.kill()

    async def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` and put a fresh one in its place (unless the pool is closing)."""
        await self._retire(worker)
        if self._closed:
            return
        self.stats["respawned"] += 1
        fresh = await self._spawn()
        if self._closed:
            await self._retire(fresh)
            return
        self._idle.put_nowait(fresh)

    def _crash_reason(self, worker: _Worker, code: int | None) -> str:
        if code is not None and 128 < code <= 128 + 64:
            code = 128 - code  # bwrap exits with 128+N when the worker died of signal N
        if code is not None and code < 0:
            sig = -code
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and worker.cpu_seconds >= self.lifetime_cpu_seconds):
                return REASON_CPU
            return f"worker crashed: {signal_reason(sig)}"
        if "MemoryError" in worker.stderr_text():
            return REASON_MEMORY
        return f"worker crashed: exited with code {code}"

    async def run(self, name: str, payload: bytes, timeout: float | None = None) -> bytes:
        """Run registered function ``name`` on ``payload`` in a warm worker; returns its bytes.

        Raises WarmJobError (a SandboxError) with a reason when the job fails.
        """
        body, _ = await self.run_in_dir(name, payload, timeout)
        return body

    async def run_in_dir(self, name: str, payload: bytes, timeout: float | None = None) -> tuple[bytes, str]:
        """:meth:`run`, also naming the worker's private dir, where the job may have left files
        (big results: a file costs one write, a pipe ~6 ms per MiB). Take them before the
        next ``await``: the dir lives only as long as its worker."""
        if self._closed:
            raise SandboxError("the warm pool is closed")
        if name not in self.functions:
            raise SandboxError(f"function {name!r} is not registered in this warm pool")
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise SandboxError(f"payload must be bytes, got {type(payload).__name__}")
        payload = bytes(payload)
        if len(payload) >= 2**32:
            raise SandboxError("payload too large for one job (4 GiB frame limit)")
        wall = self.limits.wall_time_seconds if timeout is None else timeout
        if wall <= 0:
            raise SandboxError(f"timeout must be positive, got {timeout!r}")
        if not self._started:
            await self.start()
        worker = await self._idle.get()
        self.stats["jobs"] += 1
        encoded = name.encode()
        assert worker.proc.stdin is not None
        try:
            worker.proc.stdin.write(REQUEST.pack(len(encoded), len(payload)) + encoded + payload)
            status, body = await asyncio.wait_for(self._send_and_read(worker), timeout=wall)
        except TimeoutError:
            self.stats["failed"] += 1
            await self._replace(worker)
            raise WarmJobError(name, REASON_WALL) from None
        except OverflowError:
            self.stats["failed"] += 1
            await self._replace(worker)
            raise WarmJobError(name, REASON_OUTPUT) from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            self.stats["failed"] += 1
            code = await self._retire(worker)
            reason = self._crash_reason(worker, code)
            stderr = worker.stderr_text()
            if not self._closed:
                self.stats["respawned"] += 1
                self._idle.put_nowait(await self._spawn())
            raise WarmJobError(name, reason, stderr) from None
        except BaseException:
            await self._replace(worker)  # cancelled mid-job: the worker's state is unknown
            raise
        worker.jobs += 1
        if self._closed:
            await self._retire(worker)
        elif worker.jobs >= self.max_jobs_per_worker or worker.cpu_seconds > 0.8 * self.lifetime_cpu_seconds:
            asyncio.ensure_future(self._replace(worker))
        else:
            self._idle.put_nowait(worker)
        if status != STATUS_OK:
            self.stats["failed"] += 1
            text = body.decode(errors="replace")
            reason = REASON_MEMORY if text.startswith("MemoryError") else f"function raised {text}"
            raise WarmJobError(name, reason)
        return body, worker.private.path

    async def _send_and_read(self, worker: _Worker) -> tuple[int, bytes]:
        assert worker.proc.stdin is not None
        await worker.proc.stdin.drain()
        return await worker.read_response(self.limits.max_output_bytes)

    async def close(self) -> None:
        """Stop every worker and remove their private dirs."""
        self._closed = True
        workers = list(self._all)
        self._all.clear()
        await asyncio.gather(*(w.kill() for w in workers), return_exceptions=True)

    async def __aenter__(self) -> WarmWorkerPool:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
