"""Containment at the network level: hostile `code` tasks submitted to a running node.

Each hostile program (infinite loop, memory bomb, bounded fork bomb, huge output,
a write outside its temp dir, a connection to a loopback listener this test
opens) must end as a *failed task* whose `error` says why, while the node keeps
serving: a normal task submitted right after completes with the right answer.
One code task also runs under each sandbox type (process_isolation, wasm,
container). One node is a whole network: it quotes on, runs and pays for its own
tasks, all as signed events.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ledger_net.core.task import Task
from ledger_net.main import ComputeNetwork
from ledger_net.network.client import PeerClient
from ledger_net.sandbox.bundle import CodeBundle
from tests.support.nodes import started_network
from tests.support.tasks import run_task
from tests.support.wasm_modules import HELLO

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

TIMEOUT = 4  # seconds a hostile chunk may run


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def async_node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ComputeNetwork]:
    """One funded node with one worker for the module: every hostile task runs on it."""
    async with started_network(tmp_path_factory.mktemp("containment") / "node", initial_credits=1000.0,
                               workers=1) as net:
        yield net



def code_task(net: ComputeNetwork, name: str, source: str, **requirements: Any) -> Task:
    return Task.create_code(net.ledger.node_id, CodeBundle(name, source),
                            {"timeout_seconds": TIMEOUT, "ram_gb": 0.25, **requirements}, {"max_price": 1.0})


async def still_serving(net: ComputeNetwork) -> None:
    """The node answers HTTP and runs a normal task to the right answer, paid from escrow."""
    async with PeerClient(net.server.url, timeout=5) as client:
        assert (await client.info())["node_id"] == net.ledger.node_id
    status = await run_task(net, Task.create_range_reduce(net.ledger.node_id, 1, 10_000, "sum", {},
                                                          {"max_price": 0.5}))
    assert status["status"] == "completed", status
    assert await net.get_task_result(status["task_id"]) == 50_005_000
    status = await run_task(net, code_task(net, "fine.py", "print(sum(range(10)))\n"))
    assert status["status"] == "completed", status
    assert (await net.get_task_result(status["task_id"]))["stdout"] == "45\n"


async def expect_failure(net: ComputeNetwork, task: Task, *reasons: str) -> dict[str, Any]:
    started = time.monotonic()
    status = await run_task(net, task)
    assert status["status"] == "failed", status
    error = status["error"] or ""
    assert any(r in error for r in reasons), error
    assert status["paid"] == 0 and status["refund"] == status["escrow"]  # nobody is paid for a failed chunk
    assert time.monotonic() - started < TIMEOUT + 10
    await still_serving(net)
    return status


async def test_infinite_loop_fails_on_its_time_limit(async_node: ComputeNetwork) -> None:
    await expect_failure(async_node, code_task(async_node, "spin.py", "while True:\n    pass\n"),
                         "cpu time limit exceeded", "wall time limit exceeded")


async def test_memory_bomb_fails_on_its_memory_limit(async_node: ComputeNetwork) -> None:
    await expect_failure(async_node, code_task(async_node, "bomb.py", "blocks = []\nwhile True:\n"
                                                          "    blocks.append(bytearray(64 * 1024 * 1024))\n"),
                         "memory limit exceeded")


async def test_fork_bomb_is_refused(async_node: ComputeNetwork) -> None:
    source = ("import os, time\n"
              "for i in range(64):\n"
              "    if os.fork() == 0:\n"
              "        time.sleep(30)\n"
              "        os._exit(0)\n"
              "print('forked')\n")
    await expect_failure(async_node, code_task(async_node, "forks.py", source), "process creation refused")


async def test_huge_output_fails_on_its_output_limit(async_node: ComputeNetwork) -> None:
    source = "import sys\nblock = 'x' * 65536\nwhile True:\n    sys.stdout.write(block)\n"
    await expect_failure(async_node, code_task(async_node, "flood.py", source), "output limit exceeded")


async def test_write_outside_the_temp_dir_is_refused(async_node: ComputeNetwork, tmp_path: Path) -> None:
    target = tmp_path / "escaped.txt"
    source = f"open({str(target)!r}, 'w').write('out')\nprint('wrote')\n"
    # The host's tmp dir is not in the sandbox's view at all, so the open fails.
    await expect_failure(async_node, code_task(async_node, "escape.py", source),
                         "write outside the sandbox dir refused", "No such file or directory")
    assert not target.exists()


async def test_network_connect_to_a_loopback_listener_is_refused(async_node: ComputeNetwork) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[Any] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        source = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                  "s.sendall(b'leak')\nprint('connected')\n")
        await expect_failure(async_node, code_task(async_node, "dial.py", source), "network access refused")
        # The listener is reachable from the node's own process: only the sandbox is cut off.
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass
        deadline = time.monotonic() + 5
        while not accepted and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(accepted) == 1  # exactly the test's own connection, none from the sandbox
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn, _ in accepted:
            conn.close()
        listener.close()




@pytest.mark.parametrize("kind", ["process_isolation", "container"])
async def test_code_task_runs_under_python_sandbox_types(async_node: ComputeNetwork, kind: str) -> None:
    status = await run_task(async_node, code_task(async_node, "answer.py", "import sys\nprint(6 * 7, sys.argv[1:])\n",
                                            sandbox_type=kind))
    assert status["status"] == "completed", status
    result = await async_node.get_task_result(status["task_id"])
    assert result == {"stdout": "42 []\n", "stderr": "", "exit_code": 0}
    assert status["paid"] > 0


async def test_code_task_runs_under_wasm(async_node: ComputeNetwork) -> None:
    status = await run_task(async_node, code_task(async_node, "hello.wat", HELLO, sandbox_type="wasm"))
    assert status["status"] == "completed", status
    assert await async_node.get_task_result(status["task_id"]) == {"stdout": "hello from wasm\n", "stderr": "",
                                                             "exit_code": 0}


async def test_container_keeps_the_same_containment(async_node: ComputeNetwork) -> None:
    # The container's root is the host's, read-only: a write into /usr is refused by the kernel.
    target = Path("/usr/ledger-net-containment-marker")
    await expect_failure(async_node, code_task(async_node, "escape.py", f"open({str(target)!r}, 'w').write('out')\n",
                                         sandbox_type="container"),
                         "write outside the sandbox dir refused")
    assert not target.exists()
    spin = code_task(async_node, "spin.py", "while True:\n    pass\n", sandbox_type="container")
    await expect_failure(async_node, spin, "cpu time limit exceeded", "wall time limit exceeded")


async def test_wasm_spin_fails_on_its_fuel(async_node: ComputeNetwork) -> None:
    spin = r"""(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))"""
    await expect_failure(async_node, code_task(async_node, "spin.wat", spin, sandbox_type="wasm"),
                         "cpu time limit exceeded", "wall time limit exceeded")
