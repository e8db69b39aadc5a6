"""Limits that keep one node's memory and sockets bounded whatever its clients do.

* `SendBudget`: the bytes of feed/chain pages being written to clients at once. A page
  is cut to what the budget grants (never below one event), so 400 clients asking for
  5000-event pages cost the budget, not 400 pages.
* `send_body` / `write_or_drop`: write a response in small steps, each of which must
  drain within `write_timeout`; a reader too slow for that is dropped (its socket is
  aborted, its buffers freed) instead of buffered.
* `ConnectionGuard`: a cap on open connections. A connection beyond the cap evicts the
  oldest one that is not serving a request (an idle keep-alive or a socket that never
  sent one), else it is closed itself; aiohttp's keep-alive timeout closes idle ones.
* `raise_nofile_limit`: the soft `RLIMIT_NOFILE` raised to the hard limit at start, and
  the connection cap kept below it with headroom for the database, logs and peers.

The tunables are listed in docs/operations.md; the policy in docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

MAX_PAGE_BYTES = 4 << 20  # bytes of events in one feed page, chain segment or push batch
SEND_BUDGET_BYTES = 32 << 20  # bytes of pages being written to all clients at once
MIN_PAGE_BYTES = 64 << 10  # a page granted under a spent budget still holds one event
WRITE_TIMEOUT = 10.0  # seconds one 64 KiB write step may wait for a reader to drain
WRITE_STEP = 64 << 10
MAX_CONNECTIONS = 1000  # open HTTP/WebSocket connections of one node
IDLE_TIMEOUT = 15.0  # seconds an idle (keep-alive or never used) connection stays open
FD_HEADROOM = 256  # descriptors kept free beyond the connection cap (database, logs, peers)


class SendBudget:
    """Bytes of responses in flight to all clients, shared by the feed, chains and follows."""

    def __init__(self, total: int = SEND_BUDGET_BYTES, min_grant: int = MIN_PAGE_BYTES) -> None:
        self.total = total
        self.min_grant = min_grant
        self.used = 0
        self.peak = 0

    def reserve(self, want: int) -> int:
        """Reserve the bytes a page may hold now and return how many: `want` while the
        budget lasts, less when it is spent, never below `min_grant` (one event always
        fits, so paging progresses). Give them back with `give` once the page is built."""
        granted = max(self.min_grant, min(want, self.total - self.used))
        self.take(granted)
        return granted

    def take(self, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)

    def give(self, size: int) -> None:
        self.used = max(0, self.used - size)


def drop_connection(request: web.Request) -> None:
    """Abort a client's socket: its unsent buffers are freed at once."""
    transport = request.transport
    if transport is not None and not transport.is_closing():
        transport.abort()


async def write_or_drop(request: web.Request, response: web.StreamResponse, data: bytes, timeout: float) -> bool:
    """Write `data` in steps that must each drain within `timeout`; False (and the
    connection dropped) when the reader is too slow or gone."""
    try:
        for start in range(0, len(data), WRITE_STEP):
            await asyncio.wait_for(response.write(data[start:start + WRITE_STEP]), timeout)
        if not data:
            await asyncio.wait_for(response.write(b""), timeout)
    except (TimeoutError, ConnectionError, RuntimeError):
        log.info("dropping slow or gone reader %s of %s", request.remote, request.path)
        drop_connection(request)
        return False
    return True


async def send_body(request: web.Request, body: bytes, *, timeout: float = WRITE_TIMEOUT,
                    content_type: str = "application/json", budget: SendBudget | None = None
                    ) -> web.StreamResponse:
    """A whole response written with `write_or_drop` (its bytes counted in `budget` while
    they are being written): a reader that stops reading is dropped, not buffered."""
    response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    response.content_length = len(body)
    if budget is not None:
        budget.take(len(body))
    try:
        try:
            await asyncio.wait_for(response.prepare(request), timeout)
        except (TimeoutError, ConnectionError):
            drop_connection(request)
            return response
        if await write_or_drop(request, response, body, timeout):
            try:
                await asyncio.wait_for(response.write_eof(), timeout)
            except (TimeoutError, ConnectionError, RuntimeError):
                drop_connection(request)
    finally:
        if budget is not None:
            budget.give(len(body))
    return response


class ConnectionGuard:
    """Keeps a server's open connections at or below `max_connections` (see module doc)."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self.max_connections = max(1, max_connections)
        self.evicted = 0
        self.refused = 0
        self._server: Any = None

    def install(self, server: Any) -> None:
        """Hook `server` (an `aiohttp.web.Server`, i.e. `AppRunner.server`) so each new
        connection is checked against the cap as it is accepted."""
        self._server = server
        original = server.connection_made

        def connection_made(handler: Any, transport: Any) -> None:
            original(handler, transport)
            self._enforce(handler)

        server.connection_made = connection_made

    @property
    def open(self) -> int:
        return len(getattr(self._server, "_connections", {}))

    def _enforce(self, newcomer: Any) -> None:
        connections: dict[Any, Any] = self._server._connections
        while len(connections) > self.max_connections:
            victim = next((h for h in connections  # oldest first: insertion order
                           if h is not newcomer and not getattr(h, "_request_in_progress", False)
                           and not connections[h].is_closing()), None)
            if victim is None:
                self.refused += 1
                transport = connections.pop(newcomer, None)
                if transport is not None:
                    transport.abort()
                return
            self.evicted += 1
            transport = connections.pop(victim)
            transport.abort()


def raise_nofile_limit(max_connections: int, headroom: int = FD_HEADROOM) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the connection cap that
    leaves `headroom` descriptors free under it (at least 16)."""
    try:
        import resource
    except ImportError:  # not on POSIX: nothing to raise, trust the configured cap
        return max_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        target = max(soft, max_connections + headroom) if soft != resource.RLIM_INFINITY else soft
    else:
        target = hard
    if soft != resource.RLIM_INFINITY and target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %s to %s: %s", soft, target, exc)
    if soft == resource.RLIM_INFINITY:
        return max_connections
    cap = min(max_connections, soft - headroom)
    if cap < max_connections:
        log.warning("open-files limit %s leaves room for %s connections (asked for %s)", soft, max(16, cap),
                    max_connections)
    return max(16, cap)
