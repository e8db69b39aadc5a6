"""A ComputeNetwork running on an event loop in a background thread, so synchronous
clients (Selenium, schemathesis/requests) can talk to it while the test drives it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from ledger_net.main import ComputeNetwork

T = TypeVar("T")


class NodeThread:
    """Start with `start()`, call coroutines on the node's loop with `call()`, `stop()` at the end."""

    def __init__(self, data_dir: Path, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="node-loop", daemon=True)
        self.network = ComputeNetwork(host="127.0.0.1", port=0, data_dir=str(data_dir), **options)

    def start(self, timeout: float = 60.0) -> NodeThread:
        self.thread.start()
        self.call(self.network.start(), timeout)
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def url(self) -> str:
        assert self.network.server is not None and self.network.server.url is not None
        return self.network.server.url

    def stop(self, timeout: float = 60.0) -> None:
        try:
            self.call(self.network.stop(), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
            if not self.thread.is_alive():
                self.loop.close()
