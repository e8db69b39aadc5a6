"""The replication routes of one node: the public read side (info, heads, events, chains,
the event feed as JSON pages and as an NDJSON follow, blobs: `blob_routes`) and the write side peers push
events to; `build_app` assembles them with the JSON errors (`responses`) and the token and
Host settings (`auth`).

Events travel in their wire form (see `incoming`). Ingests, sync and every other mutation of
the pending buffer go through one single-threaded executor (`NodeAPI.run_write`); local
appends (API calls) run on a small pool (`run_append`) so concurrent ones meet in the
ledger's group commit (ledger/commit.py) and share one commit; none of them contends for the
ledger lock on the event loop; reads run on the default pool. The ledger
tells `CommitWatcher` (`watcher`) about every commit, which is what wakes feed followers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
from aiohttp import web

from ..errors import LedgerError
from ..ledger.chain import Ledger
from ..ledger.encoding import is_hash
from ..ledger.identity import is_public_key
from ..ledger.store import StoredEvent
from ..ledger.wire import stored_to_wire, to_wire
from .admission import Admission
from .auth import HOST_POLICY_KEY, TOKEN_KEY, TRUST_LOOPBACK_KEY, HostPolicy
from .blob_routes import BlobRoutes
from .incoming import ledger_error, parse_wire_events
from .limits import MAX_PAGE_BYTES, WRITE_TIMEOUT, SendBudget, drop_connection, send_body, write_or_drop
from .responses import CLIENT_MAX_SIZE_KEY, ApiError, dumps, error_middleware, int_param, json_response
from .watcher import CommitWatcher

API = "/api/v1"
MAX_EVENTS_PER_REQUEST = 1000
MAX_CONCURRENT_PUSHES = 8  # push bodies read and ingested at once (each up to client_max_size)
DEFAULT_CLIENT_MAX_SIZE = 16 << 20  # bytes of one request body
MAX_PAGE = 5000  # events per feed/chain page
DEFAULT_PAGE = 500
STREAM_HEARTBEAT = 15.0  # seconds between keep-alive newlines of an idle follow
APPEND_THREADS = (os.cpu_count() or 1) + 4  # local appends waiting at once for a shared commit

T = TypeVar("T")


NODE_API_KEY: web.AppKey[NodeAPI] = web.AppKey("node_api")


class NodeAPI:
    """The read and write handlers of one node over its ledger."""

    def __init__(self, ledger: Ledger, *, loop: asyncio.AbstractEventLoop | None = None,
                 info: Callable[[], dict[str, Any]] | None = None,
                 max_events_per_request: int = MAX_EVENTS_PER_REQUEST,
                 heartbeat: float = STREAM_HEARTBEAT, page_bytes: int = MAX_PAGE_BYTES,
                 write_timeout: float = WRITE_TIMEOUT, budget: SendBudget | None = None,
                 admission: Admission | None = None) -> None:
        self.ledger = ledger
        self.page_bytes = page_bytes
        self.write_timeout = write_timeout
        self.budget = budget or SendBudget()
        self.admission = admission if admission is not None else Admission(self._established)
        self._push_slots = asyncio.Semaphore(MAX_CONCURRENT_PUSHES)
        self.loop = loop or asyncio.get_running_loop()
        self.extra_info = info
        self.max_events_per_request = max_events_per_request
        self.heartbeat = heartbeat
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-writer")
        # An in-memory SQLite ledger is one shared connection: reads must not interleave
        # with an open write transaction, so they queue behind writes.
        url = str(ledger.store.engine.url)
        self.reader: ThreadPoolExecutor | None = (
            self.writer if ledger.store.dialect == "sqlite" and url in ("sqlite://", "sqlite:///:memory:") else None)
        # Appends touch no pending buffer, only the ledger (its lock, then the group commit).
        self.appender = self.writer if self.reader is self.writer else ThreadPoolExecutor(
            max_workers=APPEND_THREADS, thread_name_prefix="ledger-append")
        self.watcher = CommitWatcher(self.loop, ledger.store.last_offset())
        ledger.subscribe(self.watcher.on_applied)
        self._heads_cache: tuple[int, dict[str, Any]] | None = None
        self._streams: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------- executors
    async def run_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a ledger mutation on the node's single writer thread."""
        return await self.loop.run_in_executor(self.writer, fn, *args)

    async def run_append(self, fn: Callable[..., T], *args: Any) -> T:
        """Run local appends (`Ledger.append`/`append_batch` and reads of the ledger's state)
        on the append pool: concurrent callers share a commit. `fn` must not touch the pending
        buffer (that stays on `run_write`), nor assume the ledger's head is its own event."""
        return await self.loop.run_in_executor(self.appender, fn, *args)

    async def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.loop.run_in_executor(self.reader, fn, *args)

    def close(self) -> None:
        self.watcher.close()
        if self.appender is not self.writer:
            self.appender.shutdown(wait=True)
        self.writer.shutdown(wait=True)

    # ------------------------------------------------------------- queries
    async def heads(self) -> dict[str, Any]:
        """`{"net", "heads": {author: [seq, hash]}, "frozen": {author: seq}}`, cached per log offset."""
        last = self.watcher.last
        cached = self._heads_cache
        if cached is not None and cached[0] == last:
            return cached[1]
        heads = await self.run_read(self.ledger.store.heads)
        value = {"net": self.ledger.net, "node_id": self._node_id(), "last_offset": last,
                 "heads": {a: [s, h] for a, (s, h) in heads.items()}, "frozen": dict(self.ledger.state.frozen)}
        self._heads_cache = (last, value)
        return value

    def _node_id(self) -> str | None:
        return self.ledger.identity.node_id if self.ledger.identity else None

    def _established(self, author: str) -> bool:
        return author == self._node_id() or self.ledger.state.is_established(author)

    async def ingest_wire(self, items: Sequence[Any], source: str | None = None) -> dict[str, Any]:
        """Parse and ingest pushed wire events (all or nothing, except what the admission
        quotas for strangers drop: `throttled`); answer the IngestReport. `source` is the
        pusher's address, for the per-source quotas."""
        ledger = self.ledger

        def work() -> dict[str, Any]:
            ledger.known.prefetch_wire(items)  # one query for the page, not one per event
            events = parse_wire_events(items, ledger.net, skip=ledger.known.__contains__)
            if not events:
                return {"stored": 0, "duplicates": len(items), "pending": 0, "invalid": {}, "refused": {}, "forks": [],
                        "throttled": {}}
            recipients = ledger.state.credit_recipients()

            def established(author: str) -> bool:
                return author == self._node_id() or ledger.state.is_established(author, recipients)

            admitted, throttled, retry = self.admission.admit(events, source, established)
            if not admitted:
                first = next(iter(throttled.values()))
                raise ApiError(429, "too_many_requests", f"{len(throttled)} event(s) throttled: {first}",
                               {"Retry-After": str(max(1, int(retry + 0.999)))})
            try:
                report = ledger.ingest(admitted, source=source)
            except LedgerError as exc:
                raise ledger_error(exc) from None
            result = report.as_dict()
            result["duplicates"] += len(items) - len(events)
            result["throttled"] = {**throttled, **result["throttled"]}
            return result

        return await self.run_write(work)

    # ------------------------------------------------------------- handlers
    async def get_info(self, request: web.Request) -> web.Response:
        store = self.ledger.store
        count, last = await self.run_read(lambda: (store.count(), store.last_offset()))
        info: dict[str, Any] = {"node_id": self._node_id(), "net": self.ledger.net, "events": count,
                                "last_offset": last, "pending": len(self.ledger.pending),
                                "frozen": dict(self.ledger.state.frozen)}
        genesis = self.ledger.state.genesis
        if genesis is not None:
            info["network_name"] = genesis.body.get("name")
        if self.extra_info is not None:
            info.update(self.extra_info())
        return json_response(info)

    async def get_heads(self, request: web.Request) -> web.Response:
        return json_response(await self.heads())

    async def get_event(self, request: web.Request) -> web.Response:
        hash_ = request.match_info["hash"]
        if not is_hash(hash_):
            raise ApiError(400, "bad_hash", f"{hash_[:80]!r} is not a lowercase hex SHA-256 event hash")
        store = self.ledger.store
        row = await self.run_read(store.get_event, hash_)
        if row is not None:
            return json_response({"event": to_wire(row.raw, row.sig),
                                  "offset": row.offset, "valid": bool(row.valid), "reason": row.reason,
                                  "void": False})
        void = await self.run_read(store.get_void, hash_)
        if void is not None:
            return json_response({"event": to_wire(*void),
                                  "offset": None, "valid": False, "reason": "void: forker branch", "void": True})
        raise ApiError(404, "unknown_event", f"no event {hash_} on this node")

    async def get_chain(self, request: web.Request) -> web.StreamResponse:
        author = request.match_info["author"]
        if not is_public_key(author):
            raise ApiError(400, "bad_author", f"{author[:80]!r} is not a hex ed25519 public key")
        from_seq = int_param(request, "from_seq", 1, 1)
        limit = int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        max_bytes = self.budget.reserve(self.page_bytes)
        try:
            rows, more = await self.run_read(self._segment, author, from_seq, limit, max_bytes)
            body = dumps({"author": author, "from_seq": from_seq,
                          "events": [to_wire(r.raw, r.sig) for r in rows],
                          "next_seq": rows[-1].seq + 1 if rows else from_seq, "more": more})
            del rows
        finally:
            self.budget.give(max_bytes)  # send_body counts the body itself from here on
        return await send_body(request, body, timeout=self.write_timeout, budget=self.budget)

    def _segment(self, author: str, from_seq: int, limit: int, max_bytes: int) -> tuple[list[StoredEvent], bool]:
        """Up to `limit` events of `author`'s chain from `from_seq` and about `max_bytes`
        (at least one event), read in small batches; and whether more may follow."""
        rows: list[StoredEvent] = []
        size, seq = 0, from_seq
        while len(rows) < limit:
            want = min(limit - len(rows), 256)
            batch = self.ledger.store.chain_segment(author, seq, want)
            for row in batch:
                if rows and size + len(row.raw) > max_bytes:
                    return rows, True
                rows.append(row)
                size += len(row.raw)
            if len(batch) < want:
                return rows, False
            seq = batch[-1].seq + 1
        return rows, True

    def _page(self, after: int, limit: int, max_bytes: int | None = None) -> list[StoredEvent]:
        """Feed rows after `after`: up to `limit` and about `max_bytes` (at least one)."""
        max_bytes = self.page_bytes if max_bytes is None else max_bytes
        rows: list[StoredEvent] = []
        size = 0
        for row in self.ledger.store.select_events(after=after, limit=limit, batch=min(limit, 256)):
            if rows and size + len(row.raw) > max_bytes:
                break
            rows.append(row)
            size += len(row.raw)
        return rows

    async def get_feed(self, request: web.Request) -> web.StreamResponse:
        """One page of the causal feed, bounded in events (`limit`) and in bytes; `more`
        says whether to ask again from `next`."""
        after = int_param(request, "after", 0, 0)
        limit = int_param(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
        max_bytes = self.budget.reserve(self.page_bytes)
        try:
            rows = await self.run_read(self._page, after, limit, max_bytes)
            last = max(self.watcher.last, rows[-1].offset if rows else 0)
            nxt = rows[-1].offset if rows else after
            body = dumps({"events": [stored_to_wire(r) for r in rows], "next": nxt, "last_offset": last,
                          "more": bool(rows) and nxt < last, "net": self.ledger.net})
            del rows
        finally:
            self.budget.give(max_bytes)  # send_body counts the body itself from here on
        return await send_body(request, body, timeout=self.write_timeout, budget=self.budget)

    async def get_feed_stream(self, request: web.Request) -> web.StreamResponse:
        """NDJSON follow: every event after the cursor, then new ones as they commit.
        Each line carries its offset; a client resumes with `after=<last offset seen>`.
        Idle periods send a bare newline (heartbeat). `limit` ends the stream after N events."""
        after = int_param(request, "after", 0, 0)
        limit = int_param(request, "limit", 0, 0)
        page = int_param(request, "page", DEFAULT_PAGE, 1, MAX_PAGE)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-cache"})
        try:
            await asyncio.wait_for(response.prepare(request), self.write_timeout)
        except (TimeoutError, ConnectionError):
            drop_connection(request)
            return response
        cursor, sent = after, 0
        task = asyncio.current_task()
        if task is not None:
            self._streams.add(task)
        try:
            while not self.watcher.closed:
                want = page if not limit else min(page, limit - sent)
                max_bytes = self.budget.reserve(self.page_bytes)
                try:
                    rows = await self.run_read(self._page, cursor, want, max_bytes)
                    data = b"".join(orjson.dumps(stored_to_wire(r)) + b"\n" for r in rows)
                finally:
                    self.budget.give(max_bytes)
                if rows:
                    # a follower that stops reading is dropped, not buffered (limits.write_or_drop)
                    self.budget.take(len(data))
                    try:
                        ok = await write_or_drop(request, response, data, self.write_timeout)
                    finally:
                        self.budget.give(len(data))
                    if not ok:
                        return response
                    cursor = rows[-1].offset
                    sent += len(rows)
                    if limit and sent >= limit:
                        break
                    continue
                if not await self.watcher.wait_beyond(cursor, self.heartbeat):
                    if self.watcher.closed:
                        break
                    if not await write_or_drop(request, response, b"\n", self.write_timeout):
                        return response
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        finally:
            if task is not None:
                self._streams.discard(task)
        try:
            await asyncio.wait_for(response.write_eof(), self.write_timeout)
        except (TimeoutError, ConnectionError):
            drop_connection(request)
        return response

    async def post_events(self, request: web.Request) -> web.Response:
        # Bodies are read only a few at a time: a thousand pushers cost 8 bodies of memory,
        # the rest wait with their bytes in the kernel (aiohttp pauses reading the socket).
        async with self._push_slots:
            return await self._post_events(request)

    async def _post_events(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, "malformed_json", f"request body is not JSON: {exc}") from None
        items = data.get("events") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ApiError(400, "malformed_request", 'body must be {"events": [<wire event>, …]}')
        if not items:
            raise ApiError(400, "empty_batch", "no events in the request")
        if len(items) > self.max_events_per_request:
            raise ApiError(413, "too_many_events", f"{len(items)} events in one request; the limit is "
                                                   f"{self.max_events_per_request}")
        report = await self.ingest_wire(items, source=request.remote)
        report["last_offset"] = self.watcher.last
        return json_response(report)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{API}/info", self.get_info),
            web.get(f"{API}/heads", self.get_heads),
            web.get(f"{API}/events/{{hash}}", self.get_event),
            web.get(f"{API}/chains/{{author}}", self.get_chain),
            web.get(f"{API}/feed", self.get_feed),
            web.get(f"{API}/feed/stream", self.get_feed_stream),
            web.post(f"{API}/events", self.post_events),
            *BlobRoutes(self.ledger.store, self.run_read).routes(API),
        ]

    async def cancel_streams(self) -> None:
        """End open feed follows (server stop)."""
        self.watcher.close()
        for task in list(self._streams):
            task.cancel()
        if self._streams:
            await asyncio.gather(*self._streams, return_exceptions=True)


def build_app(api: NodeAPI, *, token: str | None = None, trust_loopback: bool = True,
              client_max_size: int = DEFAULT_CLIENT_MAX_SIZE, extra_routes: Iterable[web.RouteDef] = (),
              host_policy: HostPolicy | None = None) -> web.Application:
    """The node's aiohttp application: read/write routes, JSON errors, token and Host settings."""
    app = web.Application(client_max_size=client_max_size, middlewares=[error_middleware])
    app[NODE_API_KEY] = api
    app[TOKEN_KEY] = token
    app[TRUST_LOOPBACK_KEY] = trust_loopback
    app[HOST_POLICY_KEY] = host_policy or HostPolicy()
    app[CLIENT_MAX_SIZE_KEY] = client_max_size
    app.add_routes(api.routes())
    app.add_routes(list(extra_routes))
    return app
