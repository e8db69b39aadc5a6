"""The wasm sandbox: small WAT modules under real wasmtime fuel, memory and wall limits."""

from __future__ import annotations

import os
import time

import pytest

from ledger_net.errors import SandboxError
from ledger_net.sandbox.execution import CodeBundle, SandboxExecutorFactory, SandboxLimits, SandboxType
from ledger_net.sandbox.wasm import WasmSandboxExecutor
from tests.support.wasm_modules import HELLO

LIMITS = SandboxLimits(cpu_time_seconds=1, wall_time_seconds=10, memory_bytes=32 * 1024 * 1024,
                       max_output_bytes=64 * 1024)


SPIN = r"""(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"""

GROW = r"""
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $l
      (if (i32.ne (memory.grow (i32.const 16)) (i32.const -1)) (then (br $l))))
    unreachable))
"""

FLOOD = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 65536))
    (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l))))
"""

EXIT3 = r"""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))
"""

# path_open(fd=3 preopen, dirflags=0, path "/etc/passwd" via "../../etc/passwd", ...) must fail:
# WASI resolves paths only beneath the preopened private dir. Exit code = the errno it got.
ESCAPE = r"""
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "../../../../etc/ledger_wasm_escape")
  (func (export "_start")
    (call $exit
      (call $open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 34)
                  (i32.const 1) (i64.const 0x42) (i64.const 0x42) (i32.const 0) (i32.const 128)))))
"""


@pytest.fixture
def wasm() -> WasmSandboxExecutor:
    ex = SandboxExecutorFactory.create(SandboxType.WASM, LIMITS)
    assert isinstance(ex, WasmSandboxExecutor)
    return ex


async def test_wasi_hello_writes_stdout(wasm: WasmSandboxExecutor) -> None:
    result = await wasm.execute(None, CodeBundle("hello.wat", HELLO))
    assert result.success, result
    assert result.stdout == "hello from wasm\n"
    assert 0 < result.usage["fuel_consumed"] < result.usage["fuel_limit"]
    assert result.usage["private_dir_removed"] is True


async def test_binary_module_from_bytes(wasm: WasmSandboxExecutor) -> None:
    import wasmtime

    binary = wasmtime.wat2wasm(HELLO)
    result = await wasm.execute(None, CodeBundle("hello.wasm", files={"hello.wasm": bytes(binary)}))
    assert result.success and result.stdout == "hello from wasm\n"


async def test_infinite_loop_runs_out_of_fuel(wasm: WasmSandboxExecutor) -> None:
    started = time.monotonic()
    result = await wasm.execute(None, CodeBundle("spin.wat", SPIN))
    assert not result.success
    assert result.reason.startswith("cpu time limit exceeded"), result.reason
    assert result.usage["fuel_consumed"] == result.usage["fuel_limit"]
    assert result.timed_out and result.killed
    assert time.monotonic() - started < 8


async def test_wall_limit_interrupts(wasm: WasmSandboxExecutor) -> None:
    limits = LIMITS.with_changes(cpu_time_seconds=1000, wall_time_seconds=0.3)
    result = await wasm.execute(None, CodeBundle("spin.wat", SPIN), limits)
    assert result.reason == "wall time limit exceeded" and result.timed_out
    assert result.runtime < 3


async def test_memory_grower_hits_memory_limit(wasm: WasmSandboxExecutor) -> None:
    result = await wasm.execute(None, CodeBundle("grow.wat", GROW))
    assert not result.success and result.reason == "memory limit exceeded", result
    assert result.usage["memory_bytes"] <= LIMITS.memory_bytes


async def test_output_flood_is_truncated(wasm: WasmSandboxExecutor) -> None:
    result = await wasm.execute(None, CodeBundle("flood.wat", FLOOD))
    assert result.reason == "output limit exceeded" and not result.success
    assert len(result.stdout) == LIMITS.max_output_bytes


async def test_exit_code_is_reported(wasm: WasmSandboxExecutor) -> None:
    result = await wasm.execute(None, CodeBundle("exit.wat", EXIT3))
    assert result.exit_code == 3 and result.reason == "exited with code 3" and not result.success


async def test_path_outside_preopen_is_refused(wasm: WasmSandboxExecutor) -> None:
    result = await wasm.execute(None, CodeBundle("escape.wat", ESCAPE))
    assert result.exit_code not in (0, None), result  # a WASI errno, e.g. 76 (ENOTCAPABLE)
    assert not os.path.exists("/etc/ledger_wasm_escape")


async def test_self_test(wasm: WasmSandboxExecutor) -> None:
    report = await wasm.run_self_test()
    assert report["ok"] and report["checks"] == {"wasi_stdout": True, "fuel_limit": True}


async def test_trap_reason_names_the_cause(wasm: WasmSandboxExecutor) -> None:
    src = '(module (memory (export "memory") 1) (func (export "_start") unreachable))'
    result = await wasm.execute(None, CodeBundle("trap.wat", src))
    assert not result.success and result.exit_code is None
    assert result.reason.startswith("trap:") and "unreachable" in result.reason, result.reason


async def test_bad_modules_raise_sandbox_error(wasm: WasmSandboxExecutor) -> None:
    with pytest.raises(SandboxError, match="invalid WebAssembly"):
        await wasm.execute(None, CodeBundle("bad.wat", "(module (func (export \"_start\") (i32.add)))"))
    with pytest.raises(SandboxError, match="neither .wasm nor .wat"):
        await wasm.execute(None, CodeBundle("x.py", "print(1)"))
    with pytest.raises(SandboxError, match="bytes"):
        await wasm.execute(None, CodeBundle("x.wasm", "not bytes"))
    with pytest.raises(SandboxError, match="_start"):
        await wasm.execute(None, CodeBundle("lib.wat", "(module (memory (export \"memory\") 1))"))
