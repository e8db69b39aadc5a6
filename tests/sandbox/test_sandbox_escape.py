"""Escape suite: a hostile program tries every way out of each sandbox the machine offers.

The same probe (tests/support/sandbox_escape_probe.py) runs as a `code` task on a running node with the
default settings, directly in process_isolation and container, and in a warm worker (the view
of the built-in task types). Each run must come back with nothing of value: no file of the
node's data dir (found by walking / and /proc/*/cwd|root|environ), no /etc/shadow, nothing
under /root but the Python prefix, no connection to the node's HTTP port or PostgreSQL (TCP,
Unix socket, abstract socket), no signal or ptrace of the node or its parent, no write outside
its dir, no daemon left behind, its disk use bounded; and the node serves on, unharmed.
docs/security.md links each guarantee here.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio

from ledger_net.core.task import Task
from ledger_net.main import ComputeNetwork
from ledger_net.network.client import PeerClient
from ledger_net.sandbox import view
from ledger_net.sandbox.bundle import CodeBundle
from ledger_net.sandbox.execution import SandboxExecutorFactory, SandboxLimits
from ledger_net.sandbox.warm_pool import WarmWorkerPool
from tests.support.nodes import started_network
from tests.support.tasks import run_task

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

PROBE_SOURCE = (Path(__file__).parents[1] / "support" / "sandbox_escape_probe.py").read_text()
MiB = 1024 * 1024
DISK_CAP = 64 * MiB  # what the probe tries to write; every sandbox must stop it sooner
CANARY_NAME = "canary-of-the-node.txt"
CANARY_TEXT = "c4n4ry-" + os.urandom(8).hex()
ENV_CANARY = "LEDGER_NET_ESCAPE_CANARY"
ENV_CANARY_TEXT = "env-" + os.urandom(8).hex()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def async_node(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ComputeNetwork]:
    """One funded node with one worker for the module, with canaries in its data dir and environment."""
    data_dir = tmp_path_factory.mktemp("escape") / "node"
    os.environ[ENV_CANARY] = ENV_CANARY_TEXT  # a secret of the node's environment
    try:
        async with started_network(data_dir, initial_credits=1000.0, workers=1) as net:
            (data_dir / CANARY_NAME).write_text(CANARY_TEXT)
            yield net
    finally:
        os.environ.pop(ENV_CANARY, None)


def secrets_of(net: ComputeNetwork) -> list[str]:
    """Strings that must never come back: the key file (raw and hex), the token, the canaries."""
    out = [CANARY_TEXT, ENV_CANARY_TEXT, str(net.data_dir)]
    key = (net.data_dir / "node.key").read_bytes()
    out += [key.hex()[:32], key[:32].decode(errors="ignore")] if key else []
    token = net.data_dir / "api.token"
    if token.exists():
        out.append(token.read_text().strip())
    return [s for s in out if len(s) >= 8]


def probe_args(net: ComputeNetwork, outside: Path) -> dict[str, Any]:
    pg = urllib.parse.urlsplit(os.environ.get("LEDGER_NET_TEST_PG_URL", "postgresql://127.0.0.1:5432/x"))
    return {"names": ["node.key", "api.token", "ledger.db", CANARY_NAME, str(net.data_dir)],
            "node_pid": os.getpid(), "node_port": net.server.port,
            "pg_host": pg.hostname or "127.0.0.1", "pg_port": pg.port or 5432,
            "pg_socket": "/var/run/postgresql/.s.PGSQL.5432",
            "outside_file": str(outside), "disk_cap": DISK_CAP}


def python_prefix_chain() -> set[str]:
    """The /root entries a sandbox may see: the Python prefix and the dirs leading to it."""
    allowed: set[str] = set()
    for root in view.python_roots(sys.executable):
        path = root
        while path not in ("/", ""):
            allowed.add(path)
            path = os.path.dirname(path)
    return allowed


def assert_nothing_escaped(text: str, net: ComputeNetwork, outside: Path, disk_limit: int) -> dict[str, Any]:
    for secret in secrets_of(net):
        assert secret not in text, f"a secret of the node reached the task: {secret[:12]}…"
    report = json.loads(text.strip().splitlines()[-1])
    assert report["uid"] == view.SANDBOX_UID and report["gid"] == view.SANDBOX_GID
    assert report["found"] == [], report["found"]
    assert report["walked"] > 100  # the walk did run
    procs = report["proc"]
    assert len(procs["pids"]) <= 3, procs["pids"]  # its own PID namespace: bwrap's init and itself
    assert not any(ENV_CANARY in env for env in procs["environ_hits"])
    mounts = report["mountinfo"]["value"]
    assert str(net.data_dir) not in mounts and "/home" not in mounts
    assert not report["shadow"]["ok"]
    if report["root_listing"]["ok"]:
        allowed = python_prefix_chain()
        strays = [p for p in report["root_listing"]["value"]
                  if not any(p == a or p.startswith(a + "/") for a in allowed if a.count("/") >= 3)
                  and p not in allowed]
        assert strays == [], strays[:10]
    assert not report["home"]["ok"] or report["home"]["value"] == []
    for attempt in ("node_http", "pg_tcp", "pg_unix", "abstract_unix", "signal_node", "ptrace_node",
                    "ptrace_parent", "write_etc", "write_usr", "write_outside", "daemon", "user_namespace"):
        assert not report[attempt]["ok"], (attempt, report[attempt])
    assert report["disk_written"] <= disk_limit, report["disk_written"]
    assert not outside.exists()
    return report


def no_sandbox_left() -> None:
    """No process of the sandbox uid outlives its run (no daemon, no stray worker)."""
    deadline = time.monotonic() + 10
    while True:
        left = [p.info for p in psutil.process_iter(["pid", "uids", "name", "cmdline"])
                if p.info["uids"] and p.info["uids"].real == view.SANDBOX_UID
                and "escape" in " ".join(p.info["cmdline"] or [])]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert not left, left


async def still_serving(net: ComputeNetwork) -> None:
    async with PeerClient(net.server.url, timeout=5) as client:
        assert (await client.info())["node_id"] == net.ledger.node_id
    task = Task.create_range_reduce(net.ledger.node_id, 1, 1000, "sum", {}, {"max_price": 0.5})
    status = await run_task(net, task, timeout=90.0)
    assert status["status"] == "completed", status
    assert await net.get_task_result(status["task_id"]) == 500_500



LIMITS = SandboxLimits(cpu_time_seconds=30, wall_time_seconds=60, max_output_bytes=4 * MiB,
                       max_disk_bytes=8 * MiB)


@pytest.mark.parametrize("kind", ["process_isolation", "container"])
async def test_probe_finds_nothing_in_a_sandbox(async_node: ComputeNetwork, kind: str, tmp_path: Path) -> None:
    outside = tmp_path / "escaped.txt"
    executor = SandboxExecutorFactory.create(kind, LIMITS)
    bundle = CodeBundle("escape.py", PROBE_SOURCE, args=[json.dumps(probe_args(async_node, outside))])
    result = await executor.execute(None, bundle)
    assert result.success, (result.reason, result.stderr[-2000:])
    assert_nothing_escaped(result.stdout + result.stderr, async_node, outside, LIMITS.max_disk_bytes)
    no_sandbox_left()
    await still_serving(async_node)


async def test_a_default_code_task_finds_nothing_of_the_host(async_node: ComputeNetwork, tmp_path: Path) -> None:
    outside = tmp_path / "escaped.txt"
    bundle = CodeBundle("escape.py", PROBE_SOURCE, args=[json.dumps(probe_args(async_node, outside))])
    task = Task.create_code(async_node.ledger.node_id, bundle, {"timeout_seconds": 60}, {"max_price": 1.0})
    status = await run_task(async_node, task, timeout=90.0)
    assert status["status"] == "completed", status
    result = await async_node.get_task_result(status["task_id"])
    report = assert_nothing_escaped(result["stdout"] + result["stderr"], async_node, outside,
                                    SandboxLimits().max_disk_bytes)
    assert report["disk_written"] < DISK_CAP  # stopped by the sandbox, not by the probe's own cap
    no_sandbox_left()
    await still_serving(async_node)


async def test_a_warm_worker_finds_nothing_of_the_host(async_node: ComputeNetwork, tmp_path: Path) -> None:
    outside = tmp_path / "escaped.txt"
    limits = SandboxLimits(cpu_time_seconds=30, wall_time_seconds=60, max_output_bytes=4 * MiB,
                           max_file_bytes=4 * MiB)
    probe = {"probe": "tests.support.sandbox_escape_probe:escape_probe_job"}
    async with WarmWorkerPool(probe, size=1, limits=limits) as pool:
        answer = await pool.run("probe", json.dumps(probe_args(async_node, outside)).encode())
    assert_nothing_escaped(answer.decode(), async_node, outside, limits.max_file_bytes)
    no_sandbox_left()
    await still_serving(async_node)
