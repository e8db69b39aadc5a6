"""Run one confined process from asyncio: bounded output, wall-time kill, exact resource usage.

The process is spawned directly (not through asyncio's child watcher) so that it can be reaped
with ``wait4``, which gives the kernel's own CPU and peak-memory figures for the usage report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger_net.errors import SandboxError

# After the process exits, how long to wait for its pipes to drain.
_DRAIN_SECONDS = 2.0


@dataclass
class RawOutcome:
    """What the kernel reported about a finished run, before any interpretation."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    term_signal: int | None = None
    timed_out: bool = False
    output_exceeded: bool = False
    runtime: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)


class _CappedReader(asyncio.Protocol):
    """Keeps at most ``cap`` bytes; reports overflow once so the run can be killed."""

    def __init__(self, cap: int, on_overflow: Callable[[], None]) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflowed = False
        self.closed = asyncio.get_running_loop().create_future()
        self._on_overflow = on_overflow

    def data_received(self, data: bytes) -> None:
        room = self.cap - self.size
        if room > 0:
            self.chunks.append(data[:room])
        self.size += len(data)
        if self.size > self.cap and not self.overflowed:
            self.overflowed = True
            self._on_overflow()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    """Resolve ``future`` unless it already is (a reader or thread may fire after a timeout)."""
    if not future.done():
        future.set_result(value)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


async def _wait_exit(pid: int) -> tuple[int, Any]:
    """Wait for ``pid`` without blocking the loop and reap it with its rusage."""
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        _, status, usage = await asyncio.to_thread(os.wait4, pid, 0)
        return status, usage
    try:
        exited = loop.create_future()
        loop.add_reader(pidfd, lambda: _settle(exited, None))
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
        _, status, usage = os.wait4(pid, 0)
        return status, usage
    finally:
        os.close(pidfd)


def _spawn(argv: Sequence[str], env: dict[str, str], cwd: str, preexec: Callable[[], None],
           error_r: int, pass_fds: Sequence[int]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
            preexec_fn=preexec,
            start_new_session=True,
            close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    except subprocess.SubprocessError as exc:
        detail = b""
        with contextlib.suppress(OSError):
            os.set_blocking(error_r, False)
            detail = os.read(error_r, 4096)
        text = detail.decode(errors="replace") or str(exc)
        raise SandboxError(f"sandbox isolation could not be set up ({text})") from exc
    except OSError as exc:
        raise SandboxError(f"cannot start sandboxed program {argv[0]!r}: {exc}") from exc


async def run_confined(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str,
    make_preexec: Callable[[int], Callable[[], None]],
    stdin: bytes,
    wall_time: float,
    max_output: int,
    pass_fds: Sequence[int] = (),
) -> RawOutcome:
    """Spawn ``argv`` with the given preexec isolation and supervise it to the end."""
    loop = asyncio.get_running_loop()
    error_r, error_w = os.pipe()
    try:
        started = time.monotonic()
        proc = _spawn(argv, env, cwd, make_preexec(error_w), error_r, pass_fds)
    finally:
        os.close(error_w)
        os.close(error_r)
    pid = proc.pid
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    overflow = asyncio.Event()

    def on_overflow() -> None:
        overflow.set()
        _kill_group(pid)

    out_t, out_p = await loop.connect_read_pipe(lambda: _CappedReader(max_output, on_overflow), proc.stdout)
    err_t, err_p = await loop.connect_read_pipe(lambda: _CappedReader(max_output, on_overflow), proc.stderr)
    in_t, _ = await loop.connect_write_pipe(asyncio.Protocol, proc.stdin)
    if stdin:
        in_t.write(stdin)
    in_t.close()  # EOF after the data; a program that does not read just gets EPIPE-free EOF

    timed_out = False
    waiter = asyncio.ensure_future(_wait_exit(pid))
    try:
        try:
            status, rusage = await asyncio.wait_for(asyncio.shield(waiter), timeout=wall_time)
        except TimeoutError:
            timed_out = not overflow.is_set()
            _kill_group(pid)
            status, rusage = await waiter
    except BaseException:
        _kill_group(pid)  # cancelled: never leave the program running
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(waiter, timeout=5)
        for t in (out_t, err_t, in_t):
            t.close()
        raise
    runtime = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; stop Popen from waiting
    _kill_group(pid)  # any leftover member of its session (bwrap helpers) goes too
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(out_p.closed, err_p.closed), timeout=_DRAIN_SECONDS)
    for t in (out_t, err_t, in_t):
        t.close()
    outcome = RawOutcome(
        stdout=out_p.data(),
        stderr=err_p.data(),
        timed_out=timed_out,
        output_exceeded=overflow.is_set(),
        runtime=runtime,
        usage={
            "cpu_user_seconds": round(rusage.ru_utime, 6),
            "cpu_system_seconds": round(rusage.ru_stime, 6),
            "cpu_seconds": round(rusage.ru_utime + rusage.ru_stime, 6),
            "max_rss_bytes": int(rusage.ru_maxrss) * 1024,
            "wall_seconds": round(runtime, 6),
            "stdout_bytes": out_p.size,
            "stderr_bytes": err_p.size,
        },
    )
    if os.WIFSIGNALED(status):
        outcome.term_signal = os.WTERMSIG(status)
    elif os.WIFEXITED(status):
        outcome.exit_code = os.WEXITSTATUS(status)
    return outcome
