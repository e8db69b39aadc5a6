"""The node decides the floor: which sandbox types it offers and the weakest it accepts.

A task may ask for a stronger type than the floor, never a weaker one; one asking for a type
no node offers gets no bid, and its owner reads why in the task's status. A node that cannot
build the isolation it promises refuses to start with one clear line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger_net.core.task import Task
from ledger_net.errors import SandboxError
from ledger_net.execution.executor import ChunkExecutor
from ledger_net.main import ComputeNetwork
from ledger_net.sandbox.bundle import CodeBundle
from ledger_net.sandbox.limits import SandboxType, effective_type, offered_types
from tests.support.tasks import run_task
from tests.support.wasm_modules import HELLO

pytestmark = pytest.mark.timeout(120)

ALL = ["process_isolation", "wasm", "container"]


def test_offered_types_keep_nothing_below_the_floor() -> None:
    assert offered_types(ALL, "process_isolation") == ALL
    assert offered_types(ALL, "wasm") == ["wasm"]
    assert offered_types(ALL, "container") == ALL  # one view, one strength; wasm is stronger
    assert offered_types(ALL, "process_isolation", ["wasm"]) == ["wasm"]
    with pytest.raises(SandboxError, match="cannot be built on this machine"):
        offered_types(["process_isolation"], "process_isolation", ["wasm"])
    with pytest.raises(SandboxError, match="unknown sandbox type"):
        offered_types(ALL, "chroot")


def test_effective_type_is_the_floor_unless_asked_for_stronger() -> None:
    assert effective_type(None, "process_isolation") is SandboxType.PROCESS_ISOLATION
    assert effective_type(None, "wasm") is SandboxType.WASM
    assert effective_type("wasm", "container") is SandboxType.WASM
    with pytest.raises(SandboxError, match="below this node's floor 'wasm'"):
        effective_type("process_isolation", "wasm")


async def test_a_chunk_below_the_floor_is_refused_by_the_executor(tmp_path: Path) -> None:
    executor = ChunkExecutor(workers=1, work_dir=tmp_path / "work", sandbox_floor="wasm")
    try:
        payload = {"bundle": {"entrypoint": "x.py", "source": "print(1)"}}
        outcome = await executor.run("code", payload, {}, {"sandbox_type": "process_isolation"})
        assert not outcome.ok and "below this node's floor" in (outcome.error or "")
    finally:
        await executor.close()


def test_a_bad_floor_is_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="unknown sandbox type"):
        ComputeNetwork(port=0, data_dir=tmp_path / "n", sandbox_floor="nothing")



async def test_a_wasm_floor_node_bids_only_on_wasm_and_says_why(tmp_path: Path) -> None:
    net = ComputeNetwork(port=0, data_dir=tmp_path / "n", initial_credits=100.0, workers=1, sandbox_floor="wasm")
    await net.start()
    try:
        assert net.node.capabilities.sandbox_types == ["wasm"]
        weak = Task.create_code(net.ledger.node_id, CodeBundle("x.py", "print(1)"),
                                {"timeout_seconds": 5, "sandbox_type": "process_isolation"}, {"max_price": 1.0})
        status = await run_task(net, weak)
        assert status["status"] == "failed", status
        assert "no known node offers sandbox 'process_isolation'" in status["error"], status["error"]
        assert status["paid"] == 0 and status["refund"] == status["escrow"]
        strong = Task.create_code(net.ledger.node_id, CodeBundle("hello.wat", HELLO),
                                  {"timeout_seconds": 5, "sandbox_type": "wasm"}, {"max_price": 1.0})
        status = await run_task(net, strong)
        assert status["status"] == "completed", status
        assert (await net.get_task_result(status["task_id"]))["stdout"] == "hello from wasm\n"
    finally:
        await net.stop()


def test_a_node_without_bubblewrap_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    os.symlink(sys.executable, bare / "python")
    env = {**os.environ, "PATH": str(bare)}
    proc = subprocess.run([sys.executable, "-m", "ledger_net.cli", "node", "--data-dir", str(tmp_path / "n"),
                           "--port", "0"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "bubblewrap" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
