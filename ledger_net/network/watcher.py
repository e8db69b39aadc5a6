"""`CommitWatcher`: wakes feed followers when the log grows. The ledger tells it about every
commit, from whatever thread committed; waiters are futures on the node's event loop."""

from __future__ import annotations

import asyncio
import contextlib

from ..ledger.chain import Applied


class CommitWatcher:
    """Wakes coroutines when the log grows; fed by ledger listeners on any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, last_offset: int) -> None:
        self._loop = loop
        self.last = last_offset
        self._waiters: set[asyncio.Future[None]] = set()
        self.closed = False

    def on_applied(self, applied: list[Applied]) -> None:
        """Ledger listener (any thread)."""
        if applied:
            top = max(a.offset for a in applied)
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
                self._loop.call_soon_threadsafe(self._bump, top)

    def _bump(self, offset: int) -> None:
        if offset > self.last:
            self.last = offset
        self._wake()

    def _wake(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_beyond(self, offset: int, timeout: float) -> bool:
        """True once the log has an offset beyond `offset`; False on timeout or close."""
        deadline = self._loop.time() + timeout
        while self.last <= offset and not self.closed:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return False
            fut: asyncio.Future[None] = self._loop.create_future()
            self._waiters.add(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                return self.last > offset
            finally:
                self._waiters.discard(fut)
        return self.last > offset

    def close(self) -> None:
        self.closed = True
        self._wake()
