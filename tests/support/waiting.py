"""The one bounded wait of the suite: poll a condition until it holds or fail after `timeout`.

Tests wait for what other tasks, threads or processes do (a peer converging, a chunk
finishing); the poll is always bounded, so a wait that never ends fails with what it was
waiting for instead of hanging until pytest's timeout. `wait_until` is for async tests,
`wait_until_blocking` for synchronous ones (a node in a thread, a CLI run)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

DEFAULT_TIMEOUT = 20.0
POLL = 0.05


def _timed_out(timeout: float, what: str) -> AssertionError:
    return AssertionError(f"timed out after {timeout}s waiting for {what}")


async def wait_until(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, what: str = "condition", *,
                     interval: float = POLL) -> Any:
    """Poll `predicate` (sync, or returning an awaitable) until it is truthy; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what)
        await asyncio.sleep(interval)


def wait_until_blocking(predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, what: str = "condition", *,
                        interval: float = POLL) -> Any:
    """`wait_until` for synchronous code: sleeps the calling thread between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what)
        time.sleep(interval)
