"""Helpers of the CLI and control-API tests: a real `ComputeNetwork` on a free loopback
port, running in its own thread and event loop (the CLI under test runs its own
`asyncio.run`), and `invoke`, which runs `ledger-net` with click's CliRunner."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from click.testing import CliRunner, Result

from ledger_net.cli import cli
from ledger_net.main import ComputeNetwork

T = TypeVar("T")
START_TIMEOUT = 30.0


class NodeThread:
    """One network node served from a background thread; every wait is bounded."""

    def __init__(self, data_dir: Path, **options: Any) -> None:
        self.data_dir = data_dir
        self.options = {"log_level": "WARNING", "quote_window": 0.05, **options}
        self.network: ComputeNetwork | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"node-{data_dir.name}", daemon=True)

    def start(self) -> NodeThread:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise TimeoutError("node did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.network = ComputeNetwork(host="127.0.0.1", port=0, data_dir=self.data_dir, **self.options)
        await self.network.start()
        assert self.network.server is not None
        self.url = self.network.server.url or ""
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.network.stop()

    def call(self, make: Callable[[ComputeNetwork], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run a coroutine against the node on its own loop."""
        assert self.loop is not None and self.network is not None
        return asyncio.run_coroutine_threadsafe(make(self.network), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)
        assert not self._thread.is_alive(), "node thread did not stop"

    @property
    def node_id(self) -> str:
        assert self.network is not None and self.network.ledger is not None
        return self.network.ledger.node_id


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def invoke(*args: Any, env: dict[str, str] | None = None, input: Any = None) -> Result:
    """Run `ledger-net ARGS…` in-process; stdout and stderr stay apart."""
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, input=input, catch_exceptions=False)


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return orjson.loads(result.stdout)


def assert_one_line_error(result: Result, *fragments: str, code: int = 2) -> str:
    """The failure contract: exit status `code`, one `error: …` line on stderr, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
