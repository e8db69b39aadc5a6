"""Real nodes for tests, in the two forms the suite needs (conftest.py makes fixtures of both):

* `started_network`: a `ComputeNetwork` started on the test's own event loop, for async tests;
* `NodeThread`: a `ComputeNetwork` served from a thread with its own loop, for synchronous
  clients (the CLI under test runs its own `asyncio.run`; Selenium and requests block).

Both listen on a free loopback port and log at WARNING; every wait is bounded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from ledger_net.main import ComputeNetwork

T = TypeVar("T")
START_TIMEOUT = 30.0
# A lone test node has nobody to wait for: quotes close after 50 ms instead of the default.
DEFAULTS: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "log_level": "WARNING", "quote_window": 0.05}


# What the `async_node_factory` fixture gives: `await make(name, **options)` -> a started node.
AsyncNodeFactory = Callable[..., Awaitable[ComputeNetwork]]


def url_of(network: ComputeNetwork) -> str:
    """The base URL a started node serves."""
    assert network.server is not None and network.server.url is not None
    return network.server.url


@asynccontextmanager
async def started_network(data_dir: Path, **options: Any) -> AsyncIterator[ComputeNetwork]:
    """A node started on the running loop, stopped on exit; `options` override `DEFAULTS`."""
    network = ComputeNetwork(data_dir=data_dir, **{**DEFAULTS, **options})
    await network.start()
    try:
        yield network
    finally:
        await network.stop()


class NodeThread:
    """One node served from a background thread: `start()`, `call()` work on its loop, `stop()`."""

    def __init__(self, data_dir: Path, **options: Any) -> None:
        self.data_dir = data_dir
        self.options = {**DEFAULTS, **options}
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
        self.network = ComputeNetwork(data_dir=self.data_dir, **self.options)
        await self.network.start()
        self.url = url_of(self.network)
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.network.stop()

    def call(self, make: Callable[[ComputeNetwork], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run `make(network)` on the node's own loop and return its result."""
        assert self.loop is not None and self.network is not None
        network = self.network

        async def work() -> T:
            return await make(network)

        return asyncio.run_coroutine_threadsafe(work(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)
        assert not self._thread.is_alive(), "node thread did not stop"

    @property
    def node_id(self) -> str:
        assert self.network is not None and self.network.ledger is not None
        return self.network.ledger.node_id
