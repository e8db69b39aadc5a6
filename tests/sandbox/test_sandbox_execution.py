"""Containment tests for the three sandbox kinds (real processes, real kernels, loopback only)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from ledger_net.errors import SandboxError
from ledger_net.sandbox.execution import (
    CodeBundle,
    ContainerSandboxExecutor,
    ProcessSandboxExecutor,
    SandboxExecutor,
    SandboxExecutorFactory,
    SandboxLimits,
    SandboxResult,
    SandboxType,
)

PY_KINDS = [SandboxType.PROCESS_ISOLATION, SandboxType.CONTAINER]
TIGHT = SandboxLimits(cpu_time_seconds=1, wall_time_seconds=10, memory_bytes=256 * 1024 * 1024,
                      max_output_bytes=64 * 1024)


@pytest.fixture(params=PY_KINDS, ids=lambda k: k.value)
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[SandboxExecutor]:
    ex = SandboxExecutorFactory.create(request.param, TIGHT)
    yield ex
    await ex.close()


class Listener:
    """A loopback TCP listener that records whether anything connected."""

    def __init__(self) -> None:
        self.connected = asyncio.Event()
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Listener:
        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connected.set()
            writer.close()

        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def assert_failed(result: SandboxResult, reason_part: str) -> None:
    assert not result.success, result
    assert reason_part in result.reason, (result.reason, result.stderr[-1000:])
    assert result.usage.get("private_dir_removed") is True


async def test_seed_sandbox_example_prints_10(capsys: pytest.CaptureFixture[str]) -> None:
    # The seed's example, verbatim but for the import path.
    executor = SandboxExecutorFactory.create(
        SandboxType.PROCESS_ISOLATION,
        SandboxLimits(cpu_time_seconds=10, memory_bytes=128 * 1024 * 1024),
    )
    bundle = CodeBundle(
        entrypoint="script.py",
        source="import json; data=json.load(open('input.json')); print(sum(data['values']))",
        files={"input.json": '{"values": [1, 2, 3, 4]}'},
    )
    result = await executor.execute(job=None, code_bundle=bundle, limits=None)
    if result.success:
        print(f"📊 STDOUT: {result.stdout.strip()}")
    else:
        print(f"❌ Ошибка: {result.stderr}")
    await executor.close()
    assert capsys.readouterr().out == "📊 STDOUT: 10\n"
    assert result.exit_code == 0 and result.reason == "" and result.usage["cpu_seconds"] > 0


async def test_stdin_args_and_local_imports(executor: SandboxExecutor) -> None:
    bundle = CodeBundle(
        entrypoint="main.py",
        source="import sys, helper; print(helper.double(int(sys.stdin.read())), *sys.argv[1:])",
        files={"helper.py": "def double(x):\n    return 2 * x\n"},
        stdin="21",
        args=["a", "b"],
    )
    result = await executor.execute(None, bundle)
    assert result.success, result
    assert result.stdout == "42 a b\n"


async def test_infinite_loop_hits_cpu_limit(executor: SandboxExecutor) -> None:
    started = time.monotonic()
    result = await executor.execute(None, CodeBundle("spin.py", "while True:\n    pass\n"))
    assert_failed(result, "cpu time limit exceeded")
    assert result.timed_out and result.killed
    assert time.monotonic() - started < 8


async def test_sleeper_hits_wall_limit(executor: SandboxExecutor) -> None:
    limits = TIGHT.with_changes(wall_time_seconds=0.5)
    result = await executor.execute(None, CodeBundle("nap.py", "import time\ntime.sleep(60)\n"), limits)
    assert_failed(result, "wall time limit exceeded")
    assert result.timed_out and result.runtime < 5


async def test_memory_bomb_hits_memory_limit(executor: SandboxExecutor) -> None:
    src = "blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 1024 * 1024))\n"
    result = await executor.execute(None, CodeBundle("bomb.py", src))
    assert_failed(result, "memory limit exceeded")


async def test_fork_bomb_is_refused_quickly(executor: SandboxExecutor) -> None:
    src = (
        "import os\n"
        "for i in range(200):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(0)\n"
    )
    started = time.monotonic()
    result = await executor.execute(None, CodeBundle("forks.py", src))
    assert_failed(result, "process creation refused")
    assert time.monotonic() - started < 5


async def test_subprocess_is_refused(executor: SandboxExecutor) -> None:
    src = "import subprocess\nsubprocess.run(['/bin/true'])\n"
    result = await executor.execute(None, CodeBundle("spawn.py", src))
    assert not result.success and result.exit_code == 1
    assert "Operation not permitted" in result.stderr


async def test_huge_output_is_truncated_and_fails(executor: SandboxExecutor) -> None:
    src = "import sys\nwhile True:\n    sys.stdout.write('y' * 65536)\n"
    result = await executor.execute(None, CodeBundle("loud.py", src))
    assert_failed(result, "output limit exceeded")
    assert len(result.stdout) == TIGHT.max_output_bytes
    assert result.usage["stdout_bytes"] > TIGHT.max_output_bytes


@pytest.mark.parametrize("target", ["/etc", "/root", "/tmp"])
async def test_write_outside_private_dir_is_refused(executor: SandboxExecutor, target: str) -> None:
    path = os.path.join(target, f"ledger_sbx_escape_{uuid.uuid4().hex}")
    src = f"open({path!r}, 'w').write('escaped')\n"
    try:
        result = await executor.execute(None, CodeBundle("escape.py", src))
        if target == "/tmp":
            assert result.success, result  # a sandbox's /tmp is its own private tmpfs
        else:
            assert_failed(result, "write outside the sandbox dir refused")
        assert not os.path.exists(path)
    finally:
        if os.path.exists(path):
            os.unlink(path)


async def test_network_connect_never_reaches_listener(executor: SandboxExecutor) -> None:
    async with Listener() as listener:
        src = (
            "import socket, sys\n"
            "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=2)\n"
            "print('connected')\n"
        )
        result = await executor.execute(None, CodeBundle("net.py", src, args=[str(listener.port)]))
        assert_failed(result, "network access refused")
        assert "connected" not in result.stdout
        assert not listener.connected.is_set()


async def test_private_dir_is_removed_and_files_are_readable(executor: SandboxExecutor) -> None:
    src = "import os\nopen('out.txt', 'w').write('data')\nprint(os.getcwd())\n"
    result = await executor.execute(None, CodeBundle("cwd.py", src))
    assert result.success, result
    assert result.usage["private_dir_removed"] is True
    if isinstance(executor, ProcessSandboxExecutor):
        inside = result.stdout.strip()
        assert inside == result.usage["private_dir"] and not os.path.exists(inside)


async def test_killed_by_signal_reason(executor: SandboxExecutor) -> None:
    # A real crash (a fault the kernel forces), not a self-sent signal, which a container's
    # pid-1 program would ignore.
    src = "import ctypes\nctypes.string_at(0)\n"
    result = await executor.execute(None, CodeBundle("segv.py", src))
    assert_failed(result, "killed by signal 11")


async def test_self_test_passes(executor: SandboxExecutor) -> None:
    report = await executor.run_self_test()
    assert report["ok"] is True
    assert all(report["checks"].values()) and len(report["checks"]) == 5


async def test_container_hides_host_files() -> None:
    ex = ContainerSandboxExecutor(TIGHT)
    here = os.path.dirname(os.path.abspath(__file__))
    src = f"import os\nprint(sorted(os.listdir('/')))\nprint(os.path.exists('/etc/shadow'), os.path.exists({here!r}))\n"
    result = await ex.execute(None, CodeBundle("look.py", src))
    assert result.success, result
    top, hidden = result.stdout.splitlines()
    assert "home" not in top and "work" not in top
    assert hidden == "False False"


async def test_concurrent_runs_are_independent() -> None:
    ex = ProcessSandboxExecutor(TIGHT)
    bundles = [CodeBundle("n.py", f"print({i} * {i})") for i in range(6)]
    results = await asyncio.gather(*(ex.execute(None, b) for b in bundles))
    assert [r.stdout.strip() for r in results] == [str(i * i) for i in range(6)]


async def test_missing_bwrap_raises_clear_sandbox_error() -> None:
    with pytest.raises(SandboxError, match="bubblewrap.*apt-get install bubblewrap"):
        SandboxExecutorFactory.create(SandboxType.CONTAINER, TIGHT, bwrap_path="/nonexistent/bwrap")


async def test_bad_inputs_raise_sandbox_error() -> None:
    ex = ProcessSandboxExecutor(TIGHT)
    with pytest.raises(SandboxError, match="outside"):
        await ex.execute(None, CodeBundle("../evil.py", "print(1)"))
    with pytest.raises(SandboxError, match="not a .py"):
        await ex.execute(None, CodeBundle("run.sh", "echo hi"))
    with pytest.raises(SandboxError, match="neither"):
        await ex.execute(None, CodeBundle("missing.py"))
    with pytest.raises(SandboxError, match="max_processes"):
        await ex.execute(None, CodeBundle("a.py", "pass"), TIGHT.with_changes(max_processes=4))
    with pytest.raises(SandboxError, match="positive"):
        SandboxLimits(cpu_time_seconds=0)
    with pytest.raises(SandboxError, match="unknown sandbox type"):
        SandboxExecutorFactory.create("vm")
    await ex.close()
    with pytest.raises(SandboxError, match="closed"):
        await ex.execute(None, CodeBundle("a.py", "pass"))


async def test_unusable_interpreter_is_a_sandbox_error() -> None:
    with pytest.raises(SandboxError, match="not executable"):
        ProcessSandboxExecutor(TIGHT, python="/nonexistent/python3")


def test_factory_reports_every_kind_available_here() -> None:
    report = SandboxExecutorFactory.available()
    assert report == {k.value: "available" for k in SandboxType}, report
    assert sys.platform.startswith("linux")


async def test_thread_bomb_ends_with_a_clear_reason(executor: SandboxExecutor) -> None:
    src = ("import threading, time\n"
           "threads = []\n"
           "while True:\n"
           "    t = threading.Thread(target=time.sleep, args=(30,), daemon=True)\n"
           "    t.start()\n"
           "    threads.append(t)\n")
    result = await executor.execute(None, CodeBundle("threads.py", src))
    assert not result.success
    assert "thread limit reached" in result.reason or "memory limit exceeded" in result.reason, \
        (result.reason, result.stderr[-500:])
    assert result.runtime < 8


@pytest.mark.parametrize("where", [".", "/tmp"])
async def test_disk_filler_is_stopped_by_the_disk_limit(executor: SandboxExecutor, where: str) -> None:
    limits = TIGHT.with_changes(max_disk_bytes=4 * 1024 * 1024, wall_time_seconds=20, cpu_time_seconds=5)
    src = (f"import os\nwith open(os.path.join({where!r}, 'fill'), 'wb') as f:\n"
           "    while True:\n        f.write(b'x' * 65536)\n        f.flush()\n")
    result = await executor.execute(None, CodeBundle("fill.py", src), limits)
    assert_failed(result, "disk limit exceeded")


async def test_only_the_allow_listed_environment_reaches_the_program(
        executor: SandboxExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("LEDGER_NET_SECRET_OF_THE_NODE", "do-not-leak")
    src = "import json, os\nprint(json.dumps(dict(os.environ)))\n"
    result = await executor.execute(None, CodeBundle("env.py", src),
                                    TIGHT.with_changes(env={"OPENBLAS_NUM_THREADS": "1"}))
    assert result.success, result.stderr
    env = json.loads(result.stdout)
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["OPENBLAS_NUM_THREADS"] == "1"
    assert "LEDGER_NET_SECRET_OF_THE_NODE" not in env and "do-not-leak" not in result.stdout
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED",
                        "PWD",
                        "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS"}, sorted(env)


async def test_a_node_with_many_open_files_still_starts_sandboxes(executor: SandboxExecutor) -> None:
    # A busy node holds far more descriptors than a sandbox's RLIMIT_NOFILE; the launcher must
    # not trip over its parent's descriptor numbers (found when nodes failed every chunk).
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(3 * TIGHT.max_open_files)]
    try:
        result = await executor.execute(None, CodeBundle("ok.py", "print('fine')\n"))
    finally:
        for fd in held:
            os.close(fd)
    assert result.success and result.stdout == "fine\n", (result.reason, result.stderr[-500:])
