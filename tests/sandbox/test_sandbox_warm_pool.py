"""The warm worker pool: round trips, containment inside workers, respawn after failures."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from ledger_net.errors import SandboxError
from ledger_net.sandbox.limits import SandboxLimits
from ledger_net.sandbox.warm_pool import WarmJobError, WarmWorkerPool

NAMES = ["echo", "add_ints", "spin", "sleep_long", "crash", "hog_memory", "fork_many", "connect",
         "write_file", "shout", "big_result", "not_bytes", "where_am_i"]
FUNCTIONS = {n: f"tests.support.sandbox_functions:{n}" for n in NAMES}
LIMITS = SandboxLimits(cpu_time_seconds=1, wall_time_seconds=10, memory_bytes=512 * 1024 * 1024,
                       max_output_bytes=256 * 1024)


@pytest.fixture
async def pool() -> AsyncIterator[WarmWorkerPool]:
    p = WarmWorkerPool(FUNCTIONS, size=2, limits=LIMITS)
    await p.start()
    yield p
    await p.close()


async def test_round_trip_and_real_work(pool: WarmWorkerPool) -> None:
    assert await pool.run("echo", b"\x00\xffpayload") == b"\x00\xffpayload"
    assert await pool.run("add_ints", b"1,2,3,4") == b"10"
    results = await asyncio.gather(*(pool.run("add_ints", f"{i},{i}".encode()) for i in range(200)))
    assert results == [str(2 * i).encode() for i in range(200)]
    assert pool.stats["jobs"] == 202 and pool.stats["failed"] == 0


async def test_workers_are_reused(pool: WarmWorkerPool) -> None:
    seen = {(await pool.run("where_am_i", b"")).split()[0] for _ in range(20)}
    assert 1 <= len(seen) <= 2  # the same two long-lived processes answer every job


async def test_wall_timeout_kills_and_respawns(pool: WarmWorkerPool) -> None:
    with pytest.raises(WarmJobError) as err:
        await pool.run("sleep_long", b"", timeout=0.3)
    assert err.value.reason == "wall time limit exceeded"
    assert pool.stats["respawned"] == 1
    assert await pool.run("echo", b"alive") == b"alive"


async def test_cpu_limit_per_job(pool: WarmWorkerPool) -> None:
    # Many earlier jobs must not eat the budget of a later one: the limit is per job.
    for _ in range(50):
        await pool.run("echo", b"x")
    with pytest.raises(WarmJobError) as err:
        await pool.run("spin", b"", timeout=8)
    assert err.value.reason == "cpu time limit exceeded", err.value.stderr
    assert await pool.run("add_ints", b"2,3") == b"5"


async def test_crash_is_reported_and_worker_replaced(pool: WarmWorkerPool) -> None:
    with pytest.raises(WarmJobError) as err:
        await pool.run("crash", b"")
    assert "worker crashed" in err.value.reason and "SIGABRT" in err.value.reason
    assert pool.stats["respawned"] == 1
    assert await pool.run("echo", b"after crash") == b"after crash"


async def test_memory_bomb_is_contained(pool: WarmWorkerPool) -> None:
    with pytest.raises(WarmJobError) as err:
        await pool.run("hog_memory", b"")
    assert err.value.reason == "memory limit exceeded"
    assert await pool.run("echo", b"ok") == b"ok"


async def test_fork_bomb_is_refused(pool: WarmWorkerPool) -> None:
    assert await asyncio.wait_for(pool.run("fork_many", b""), timeout=10) == b"0"


async def test_no_network_from_workers(pool: WarmWorkerPool) -> None:
    connected = asyncio.Event()

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        answer = await pool.run("connect", str(port).encode())
    finally:
        server.close()
        await server.wait_closed()
    assert answer.startswith(b"refused"), answer
    assert not connected.is_set()


async def test_no_writes_outside_private_dir(pool: WarmWorkerPool) -> None:
    for target in ("/etc", "/root", "/usr"):
        path = os.path.join(target, f"ledger_warm_escape_{uuid.uuid4().hex}")
        answer = await pool.run("write_file", path.encode())
        assert answer.startswith(b"refused"), answer
        assert not os.path.exists(path)
    # /tmp is the worker's own tmpfs: writable, and nothing written there reaches the host's.
    path = os.path.join("/tmp", f"ledger_warm_escape_{uuid.uuid4().hex}")
    await pool.run("write_file", path.encode())
    assert not os.path.exists(path)


async def test_printing_does_not_corrupt_protocol(pool: WarmWorkerPool) -> None:
    assert await pool.run("shout", b"") == b"still fine"
    assert await pool.run("echo", b"next") == b"next"


async def test_oversized_result_fails_with_output_limit(pool: WarmWorkerPool) -> None:
    with pytest.raises(WarmJobError) as err:
        await pool.run("big_result", str(LIMITS.max_output_bytes + 1).encode())
    assert err.value.reason == "output limit exceeded"
    assert await pool.run("echo", b"fine") == b"fine"


async def test_function_errors_are_reported(pool: WarmWorkerPool) -> None:
    with pytest.raises(WarmJobError, match="expected bytes"):
        await pool.run("not_bytes", b"")
    with pytest.raises(WarmJobError, match="ValueError"):
        await pool.run("add_ints", b"1,x")
    assert pool.stats["respawned"] == 0  # an exception does not cost a worker


async def test_private_dirs_removed_on_close() -> None:
    p = WarmWorkerPool(FUNCTIONS, size=2, limits=LIMITS)
    await p.start()
    dirs = {(await p.run_in_dir("where_am_i", b""))[1] for _ in range(10)}
    assert len(dirs) == 2 and all(os.path.isdir(d) for d in dirs)
    # Inside, the worker sees its dir at the view's fixed path, not the host's.
    assert (await p.run("where_am_i", b"")).split()[1].decode() == "/sandbox"
    await p.close()
    assert not any(os.path.exists(d) for d in dirs)
    with pytest.raises(SandboxError, match="closed"):
        await p.run("echo", b"")


async def test_bad_configuration_is_a_sandbox_error() -> None:
    with pytest.raises(SandboxError, match="not registered"):
        async with WarmWorkerPool(FUNCTIONS, size=1, limits=LIMITS) as p:
            await p.run("os.system", b"")
    with pytest.raises(SandboxError, match="module:function"):
        WarmWorkerPool({"x": "no_colon"})
    with pytest.raises(SandboxError, match="could not load"):
        await WarmWorkerPool({"x": "tests.support.sandbox_functions:does_not_exist"}, size=1, limits=LIMITS).start()
    with pytest.raises(SandboxError, match="positive"):
        WarmWorkerPool(FUNCTIONS, size=0)
