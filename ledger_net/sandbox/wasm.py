"""wasm: WebAssembly (WASI) modules under wasmtime with fuel, memory and wall-time limits.

WebAssembly code can only touch what the host hands it: here a WASI context whose sole
preopened dir is the private dir, stdout/stderr captured through bounded callbacks, no sockets.
Fuel bounds the instructions executed (the deterministic CPU limit), the store limiter bounds
linear memory, and epoch interruption stops a run at the wall-time limit, when its output grows
past the limit, or when the files it writes exceed the file limit.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ledger_net.errors import SandboxError
from ledger_net.sandbox.base import SandboxExecutor
from ledger_net.sandbox.bundle import CodeBundle
from ledger_net.sandbox.limits import SandboxLimits, SandboxType
from ledger_net.sandbox.result import (
    REASON_CPU,
    REASON_FILE_SIZE,
    REASON_MEMORY,
    REASON_OUTPUT,
    REASON_WALL,
    SandboxResult,
)
from ledger_net.sandbox.workspace import PrivateDir

INSTALL_HINT = "install the 'wasmtime' Python package (pip install wasmtime)"
GUEST_DIR = "/sandbox"
WASM_PAGE = 65536
# Fuel per second of the cpu_time_seconds limit: wasmtime charges about one unit per
# instruction; a tight loop burns ~1.1e9 units/s on this project's 2-core machines. Fuel keeps
# the limit deterministic (the same module stops at the same point on every worker).
DEFAULT_FUEL_PER_CPU_SECOND = 1_000_000_000
_WATCH_INTERVAL = 0.02


def _wasmtime() -> Any:
    try:
        import wasmtime
    except ImportError as exc:
        raise SandboxError(f"the wasm sandbox needs the wasmtime runtime: {INSTALL_HINT}") from exc
    return wasmtime


@dataclass
class _Capture:
    """A bounded sink for a WASI output stream."""

    cap: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    overflowed: bool = False

    def write(self, data: bytes) -> int:
        room = self.cap - self.size
        if room > 0:
            self.chunks.append(data[:room])
        self.size += len(data)
        if self.size > self.cap:
            self.overflowed = True
            return -errno.EFBIG
        return len(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    """Resolve ``future`` unless it already is (the watchdog may have settled it first)."""
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail ``future`` with ``exc`` unless it is already settled."""
    if not future.done():
        future.set_exception(exc)


def _reason(why: list[str], overflowed: bool, out_of_fuel: bool, trap: str, exit_code: int | None,
            memory_near_limit: bool) -> str:
    """Why a run ended badly, first cause first ("" for a clean exit): the watchdog's reason,
    output overflow, fuel, memory, a trap, a non-zero exit."""
    if why:
        return why[0]
    if overflowed:
        return REASON_OUTPUT
    if out_of_fuel:
        return f"{REASON_CPU} (fuel exhausted)"
    if trap and ("memory" in trap and ("limit" in trap or "minimum" in trap)):
        return REASON_MEMORY
    if exit_code is None and memory_near_limit:
        return REASON_MEMORY  # trapped with memory at the limit: a memory.grow was refused
    if trap:
        return f"trap: {trap}"
    if exit_code != 0:
        return f"exited with code {exit_code}"
    return ""


def _trap_text(exc: BaseException) -> str:
    """The informative part of a wasmtime error (its first line is a generic header)."""
    text = str(exc)
    if "Caused by:" in text:
        causes = [ln.strip() for ln in text.split("Caused by:", 1)[1].splitlines() if ln.strip()]
        return "; ".join(c.split(": ", 1)[1] if c[:1].isdigit() and ": " in c else c for c in causes)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


class WasmSandboxExecutor(SandboxExecutor):
    """Runs a ``.wasm`` (bytes) or ``.wat`` (text) entrypoint's ``_start`` under WASI."""

    sandbox_type = SandboxType.WASM

    def __init__(self, limits: SandboxLimits | None = None, *,
                 fuel_per_cpu_second: int = DEFAULT_FUEL_PER_CPU_SECOND,
                 temp_root: str | None = None) -> None:
        super().__init__(limits)
        self.wasmtime = _wasmtime()
        if fuel_per_cpu_second <= 0:
            raise SandboxError("fuel_per_cpu_second must be positive")
        self.fuel_per_cpu_second = fuel_per_cpu_second
        self.temp_root = temp_root

    def _engine(self) -> Any:
        # One engine per run: an epoch increment interrupts every store of its engine.
        cfg = self.wasmtime.Config()
        cfg.consume_fuel = True
        cfg.epoch_interruption = True
        return self.wasmtime.Engine(cfg)

    def _compile(self, engine: Any, bundle: CodeBundle) -> Any:
        content = bundle.files[bundle.entrypoint]
        if bundle.entrypoint.endswith(".wat"):
            text = content.decode() if isinstance(content, bytes) else content
            source: Any = text
        elif bundle.entrypoint.endswith(".wasm"):
            if not isinstance(content, bytes):
                raise SandboxError(f"{bundle.entrypoint!r} must be given as bytes (a binary module)")
            source = content
        else:
            raise SandboxError(
                f"entrypoint {bundle.entrypoint!r} is neither .wasm nor .wat; the wasm sandbox runs "
                "WebAssembly modules only"
            )
        try:
            return self.wasmtime.Module(engine, source)
        except self.wasmtime.WasmtimeError as exc:
            raise SandboxError(f"invalid WebAssembly module {bundle.entrypoint!r}: {exc}") from exc

    async def execute(self, job: Any, code_bundle: CodeBundle, limits: SandboxLimits | None = None) -> SandboxResult:
        """Compile and run the module in a thread; limits end the run as a failed result."""
        bundle, eff = self._effective(code_bundle, limits)
        engine = self._engine()
        module = self._compile(engine, bundle)
        loop = asyncio.get_running_loop()
        with PrivateDir(prefix="ledger-wasm-", base=self.temp_root) as private:
            private.materialize(bundle, eff)
            done: asyncio.Future[SandboxResult] = loop.create_future()

            def worker() -> None:
                try:
                    res = self._run(engine, module, bundle, eff, private.path)
                    loop.call_soon_threadsafe(_settle, done, res)
                except BaseException as exc:  # delivered to the awaiting coroutine
                    err = exc
                    loop.call_soon_threadsafe(_fail, done, err)

            thread = threading.Thread(target=worker, name="wasm-sandbox", daemon=True)
            thread.start()
            try:
                result = await asyncio.shield(done)
            except asyncio.CancelledError:
                engine.increment_epoch()  # stop the guest; the thread then ends on its own
                raise
        result.usage["private_dir_removed"] = not os.path.lexists(private.path)
        return result

    def _run(self, engine: Any, module: Any, bundle: CodeBundle, limits: SandboxLimits,
             private_dir: str) -> SandboxResult:
        wt = self.wasmtime
        store = wt.Store(engine)
        fuel = int(limits.cpu_time_seconds * self.fuel_per_cpu_second)
        store.set_fuel(fuel)
        store.set_limits(memory_size=limits.memory_bytes)
        store.set_epoch_deadline(1)
        out, err = _Capture(limits.max_output_bytes), _Capture(limits.max_output_bytes)
        wasi = wt.WasiConfig()
        wasi.argv = [bundle.entrypoint, *bundle.args]
        if limits.env:
            wasi.env = list(limits.env.items())
        stdin_path = os.path.join(private_dir, ".stdin")
        with open(stdin_path, "wb") as fh:
            fh.write(bundle.stdin_bytes())
        wasi.stdin_file = stdin_path
        wasi.stdout_custom = out.write
        wasi.stderr_custom = err.write
        wasi.preopen_dir(private_dir, GUEST_DIR)
        store.set_wasi(wasi)
        linker = wt.Linker(engine)
        linker.define_wasi()

        stop = threading.Event()
        why: list[str] = []
        started = time.monotonic()

        def watchdog() -> None:
            # Wakes on a short interval: wall deadline, output overflow, files past the limit.
            deadline = started + limits.wall_time_seconds
            while not stop.wait(_WATCH_INTERVAL):
                if time.monotonic() >= deadline:
                    why.append(REASON_WALL)
                elif out.overflowed or err.overflowed:
                    why.append(REASON_OUTPUT)
                elif _dir_bytes(private_dir) > limits.max_file_bytes:
                    why.append(REASON_FILE_SIZE)
                else:
                    continue
                engine.increment_epoch()
                return

        guard = threading.Thread(target=watchdog, name="wasm-watchdog", daemon=True)
        guard.start()
        cpu0 = time.thread_time()
        exit_code: int | None = 0
        trap: str = ""
        trap_code: Any = None
        memory_bytes = 0
        try:
            instance = linker.instantiate(store, module)
            exports = instance.exports(store)
            mem = exports.get("memory") if hasattr(exports, "get") else None
            start = exports.get("_start") if hasattr(exports, "get") else None
            if start is None:
                raise SandboxError("the module exports no _start function (a WASI command is expected)")
            try:
                start(store)
            finally:
                if isinstance(mem, wt.Memory):
                    memory_bytes = mem.size(store) * WASM_PAGE
        except wt.ExitTrap as exc:
            exit_code = exc.code
        except wt.Trap as exc:
            exit_code, trap, trap_code = None, _trap_text(exc), exc.trap_code
        except wt.WasmtimeError as exc:
            exit_code, trap = None, _trap_text(exc)
        finally:
            stop.set()
            guard.join()
        cpu = time.thread_time() - cpu0
        runtime = time.monotonic() - started
        remaining = store.get_fuel()

        overflowed = out.overflowed or err.overflowed
        out_of_fuel = trap_code == wt.TrapCode.OUT_OF_FUEL
        reason = _reason(why, overflowed, out_of_fuel, trap, exit_code, memory_bytes >= limits.memory_bytes * 0.9)
        stderr = err.text()
        if trap:
            stderr += ("\n" if stderr and not stderr.endswith("\n") else "") + f"{trap}\n"
        return SandboxResult(
            stdout=out.text(),
            stderr=stderr,
            exit_code=exit_code,
            runtime=runtime,
            timed_out=bool(reason) and (reason.startswith(REASON_CPU) or reason == REASON_WALL),
            killed=bool(why) or trap_code in (wt.TrapCode.OUT_OF_FUEL, wt.TrapCode.INTERRUPT),
            usage={
                "sandbox": self.sandbox_type.value,
                "fuel_limit": fuel,
                "fuel_consumed": fuel - remaining,
                "cpu_seconds": round(cpu, 6),
                "wall_seconds": round(runtime, 6),
                "memory_bytes": memory_bytes,
                "stdout_bytes": out.size,
                "stderr_bytes": err.size,
                "limits": limits.to_dict(),
            },
            reason=reason,
        )

    async def run_self_test(self) -> dict[str, Any]:
        """A WASI hello must print; an endless loop must stop by fuel. Raises if not."""
        hello = CodeBundle(entrypoint="hello.wat", source=SELF_TEST_HELLO_WAT)
        res = await self.execute(None, hello, SandboxLimits(cpu_time_seconds=1, wall_time_seconds=10))
        if not res.success or res.stdout != "sandbox ok\n":
            raise SandboxError(f"wasm self-test: hello module failed: {res.reason} {res.stderr!r}")
        spin = CodeBundle(entrypoint="spin.wat", source=SELF_TEST_SPIN_WAT)
        res2 = await self.execute(None, spin, SandboxLimits(cpu_time_seconds=0.05, wall_time_seconds=10))
        if res2.success or not res2.reason.startswith(REASON_CPU):
            raise SandboxError(f"wasm self-test: endless loop was not stopped by fuel: {res2.reason!r}")
        return {"sandbox": self.sandbox_type.value, "ok": True,
                "checks": {"wasi_stdout": True, "fuel_limit": True}, "runtime": res.runtime + res2.runtime}


SELF_TEST_HELLO_WAT = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "sandbox ok\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 11))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

SELF_TEST_SPIN_WAT = r"""
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))
"""
