"""The HTTP API of one node: the public read side (info, heads, events, chains, the
event feed as JSON pages and as an NDJSON follow), the write side peers push
events to, JSON errors, and the API-token check for control actions.

Events travel in their wire form `{"raw": "<canonical json>", "sig": "<hex>"}`:
the signed bytes themselves, so nothing is re-serialised before it is verified.
Pages are encoded with orjson because on loopback encoding, not the socket, is
what limits a feed.

Every write goes through one single-threaded executor (`NodeAPI.run_write`), so
ingests, local appends and sync never contend for the ledger lock on the event
loop; reads run on the default pool. The ledger tells `CommitWatcher` about every
commit (from whatever thread committed), which is what wakes feed followers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
from aiohttp import web

from ..errors import (
    ChainError,
    EncodingError,
    LedgerError,
    PendingLimitError,
    SchemaError,
    SignatureError,
    UnknownEventType,
    WrongNetwork,
)
from ..ledger.chain import Applied, Ledger
from ..ledger.datadir import DataDir
from ..ledger.encoding import INT_MAX, is_hash
from ..ledger.events import GENESIS, Event, EventTooLarge
from ..ledger.identity import is_public_key
from ..ledger.pending import PendingQuotaError
from ..ledger.store import StoredEvent
from ..ledger.wire import SHAPE as WIRE_SHAPE
from ..ledger.wire import is_wire, stored_to_wire, to_wire
from .admission import Admission
from .limits import MAX_PAGE_BYTES, WRITE_TIMEOUT, SendBudget, drop_connection, send_body, write_or_drop

log = logging.getLogger(__name__)

API = "/api/v1"
MAX_EVENTS_PER_REQUEST = 1000
MAX_CONCURRENT_PUSHES = 8  # push bodies read and ingested at once (each up to client_max_size)
DEFAULT_CLIENT_MAX_SIZE = 16 << 20  # bytes of one request body
MAX_PAGE = 5000  # events per feed/chain page
DEFAULT_PAGE = 500
STREAM_HEARTBEAT = 15.0  # seconds between keep-alive newlines of an idle follow
TOKEN_HEADER = "X-API-Token"

T = TypeVar("T")

# ---------------------------------------------------------------------------- JSON

def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


class ApiError(Exception):
    """A refused request: HTTP status, a stable machine code and a message naming the cause."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        response = json_response({"error": {"code": self.code, "message": self.message}}, self.status)
        response.headers.update(self.headers)
        return response


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "body_too_large", 429: "too_many_requests"}


@web.middleware
async def error_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """Every failure leaves as `{"error": {"code", "message"}}`; the node keeps serving."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, f"http_{exc.status}")
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        if exc.status == 413:
            message = f"request body is larger than this node accepts ({request.app[CLIENT_MAX_SIZE_KEY]} bytes)"
        return json_response({"error": {"code": code, "message": message}}, exc.status)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug must not take the node down
        log.exception("handler %s %s failed", request.method, request.path)
        return json_response({"error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}}, 500)


# ------------------------------------------------------------------------- tokens

def load_or_create_token(data_dir: str | os.PathLike[str]) -> str:
    """The node's API token, kept (mode 0600) in `data_dir/api.token`; created once."""
    path = DataDir.of(data_dir).token
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.replace(tmp, path)
    return token


def read_token(data_dir: str | os.PathLike[str] | None) -> str | None:
    """The token in `data_dir/api.token` if there is one (never creates it): what a local
    client (CLI, Python API, bench) sends, since state-changing routes always need it."""
    if data_dir is None:
        return None
    path = DataDir.of(data_dir).token
    try:
        return path.read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
        return None


def is_loopback(request: web.Request) -> bool:
    remote = request.remote
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def split_host(value: str) -> tuple[str, int | None] | None:
    """`name[:port]` or `[v6][:port]` as (lower-case host, port); None if malformed."""
    value = value.strip().lower()
    if not value:
        return None
    port: str | None = None
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            return None
        host, rest = value[1:close], value[close + 1:]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    elif ":" in value:  # a bare IPv6 literal
        host = value
    else:
        host = value
    host = host.rstrip(".")
    if not host or any(c in host for c in "/?#@ \\"):
        return None
    if port is None:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


class HostPolicy:
    """Which `Host` names a node answers control requests for, against DNS rebinding: a
    page of evil.example that rebinds its name to 127.0.0.1 still sends `Host: evil.example`.
    Allowed: the bound host, localhost, 127.0.0.1, ::1, the public URL's host and the
    configured names (`"*"` turns the check off). When the node binds every address
    (0.0.0.0 / ::), any IP literal is allowed too: a rebinding attack always carries a name."""

    def __init__(self, bound_host: str | None = None, names: Iterable[str] = (), public_url: str | None = None
                 ) -> None:
        self.any = False
        self.any_ip = False
        self.names: set[str] = set(LOCAL_NAMES)
        for name in [bound_host, *names]:
            if not name:
                continue
            if name.strip() == "*":
                self.any = True
                continue
            parsed = split_host(name)
            if parsed is None:
                raise ValueError(f"not a host name: {name!r}")
            if parsed[0] in ("0.0.0.0", "::"):
                self.any_ip = True
            else:
                self.names.add(parsed[0])
        if public_url:
            from urllib.parse import urlsplit

            host = urlsplit(public_url if "://" in public_url else f"http://{public_url}").hostname
            if host:
                self.names.add(host.lower().rstrip("."))

    def allows(self, host: str) -> bool:
        if self.any or host in self.names:
            return True
        if self.any_ip:
            try:
                ipaddress.ip_address(host)
                return True
            except ValueError:
                return False
        return False


def check_browser_safety(request: web.Request) -> None:
    """Refuse what a web page could forge: a `Host` this node does not answer to (DNS
    rebinding) and an `Origin` other than the node's own (the page's origin must be the
    very host:port the request went to)."""
    policy = request.app.get(HOST_POLICY_KEY)
    host_header = request.headers.get("Host", "")
    parsed = split_host(host_header)
    if parsed is None or (policy is not None and not policy.allows(parsed[0])):
        raise ApiError(403, "bad_host", f"this node does not answer control requests for Host "
                                        f"{host_header[:100]!r}; add the name to the node's allowed hosts "
                                        "(--allow-host) if it is yours")
    origin = request.headers.get("Origin")
    if origin is not None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(origin.strip())
            o_host, o_port = (parts.hostname or "").rstrip("."), parts.port
        except ValueError:
            parts, o_host, o_port = None, "", None
        if parts is None or parts.scheme not in ("http", "https") or not o_host:
            raise ApiError(403, "bad_origin", f"requests from origin {origin[:100]!r} are refused")
        o_port = o_port or (443 if parts.scheme == "https" else 80)
        h_host, h_port = parsed
        same_port = o_port == h_port if h_port is not None else o_port in (80, 443)
        if o_host != h_host or not same_port:
            raise ApiError(403, "bad_origin", f"cross-origin request from {origin[:100]!r} refused: only pages "
                                              "served by this node may call its control API")


def check_body_type(request: web.Request) -> None:
    """A state-changing request's body, if any, is `application/json`: a form or a
    `text/plain` body is what a web page can send without a CORS preflight. An empty
    body (a bare POST such as cancel or sync) carries nothing to check."""
    if request.method not in SAFE_METHODS and request.can_read_body and request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "control requests carry a JSON body "
                                                      f"(Content-Type: application/json), not "
                                                      f"{request.content_type[:80]!r}")


def require_control(request: web.Request) -> None:
    """Control actions need the node's API token. State-changing ones (POST, DELETE)
    always do, from loopback too: a browser page cannot read the token, so it cannot
    forge them. Read-only ones need none from loopback (when the node trusts it, the
    default). Every control request also passes `check_browser_safety` (Host, Origin)
    first and `check_body_type` last."""
    check_browser_safety(request)
    app = request.app
    if request.method in SAFE_METHODS and app[TRUST_LOOPBACK_KEY] and is_loopback(request):
        return
    token = app[TOKEN_KEY]
    given = request.headers.get(TOKEN_HEADER)
    auth = request.headers.get("Authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    if not token:
        raise ApiError(403, "forbidden", "control actions are disabled on this node (no API token configured)")
    if not given:
        raise ApiError(401, "unauthorized", f"control action needs the node API token ({TOKEN_HEADER} header "
                                            "or Authorization: Bearer; a local client reads it from "
                                            "DATA_DIR/api.token)")
    if not secrets.compare_digest(given.encode(), token.encode()):
        raise ApiError(403, "forbidden", "wrong API token")
    check_body_type(request)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control(handler: Handler) -> Handler:
    """Decorate a control route handler (see `require_control`)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        require_control(request)
        return await handler(request)

    wrapped.__name__ = getattr(handler, "__name__", "control")
    wrapped.__doc__ = handler.__doc__
    return wrapped


# ------------------------------------------------------------------ parameters

def int_param(request: web.Request, name: str, default: int, lo: int, hi: int | None = INT_MAX) -> int:
    """An integer query parameter within [lo, hi] (hi defaults to the largest offset or seq a
    store holds, 2^63-1), else a 400 naming it."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_parameter", f"query parameter {name!r} must be an integer, got {raw[:40]!r}") from None
    if len(raw) > 40 or value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise ApiError(400, "bad_parameter", f"query parameter {name!r} must be {bound}, got {value}")
    return value




# --------------------------------------------------------------- wire helpers

def parse_wire_events(items: Sequence[Any], net: str | None, *, skip: Callable[[str], bool] | None = None
                      ) -> list[Event]:
    """Parse wire items into events, refusing the whole list with an `ApiError` naming the
    first bad item. `skip(hash)` drops already-known events before the costly checks."""
    out: list[Event] = []
    geneses: set[str] = set()
    for index, item in enumerate(items):
        where = f"event #{index}"
        if not is_wire(item):
            raise ApiError(400, "malformed_event", f"{where}: an event travels as {WIRE_SHAPE}")
        raw = item["raw"].encode("utf-8")
        digest = hashlib.sha256(raw).hexdigest()
        claimed = item.get("hash")
        if claimed is not None and claimed != digest:
            raise ApiError(400, "bad_hash", f"{where}: claimed hash {str(claimed)[:64]!r} is not the hash of its "
                                            f"bytes ({digest})")
        if skip is not None and skip(digest):
            _check_known_copy(item, where)
            continue
        try:
            event = Event.from_json(item)
        except SignatureError as exc:
            raise ApiError(400, "bad_signature", f"{where}: {exc}") from None
        except EventTooLarge as exc:
            raise ApiError(413, "event_too_large", f"{where}: {exc}") from None
        except SchemaError as exc:
            code = "unknown_type" if isinstance(exc, UnknownEventType) else "schema_error"
            raise ApiError(400, code, f"{where}: {exc}") from None
        except ChainError as exc:
            raise ApiError(400, "chain_error", f"{where}: {exc}") from None
        except EncodingError as exc:
            raise ApiError(400, "malformed_event", f"{where}: {exc}") from None
        if net is not None:
            if event.type == GENESIS and event.hash != net:
                raise ApiError(400, "wrong_network", f"{where}: genesis {event.hash[:16]}… is another network's "
                                                     f"(this node is on {net[:16]}…)")
            if event.type != GENESIS and event.net != net:
                raise ApiError(400, "wrong_network", f"{where}: event {event.hash[:16]}… belongs to network "
                                                     f"{event.net[:16]}…, this node is on {net[:16]}…")
        elif event.type == GENESIS:
            geneses.add(event.hash)
        elif event.net not in geneses:
            raise ApiError(409, "no_genesis", f"{where}: this node has no network yet; send the genesis first")
        out.append(event)
    return out


def _check_known_copy(item: dict[str, Any], where: str) -> None:
    """A copy of an event this node holds is a duplicate only if its signature verifies:
    the hash covers the bytes, not the signature, so other signature bytes on known bytes
    are a forgery to refuse, not a duplicate to count."""
    try:
        event = Event.from_json(item)
    except LedgerError as exc:
        raise ApiError(400, "bad_signature", f"{where}: copy of a known event is malformed: {exc}") from None
    if not event.verify_signature():
        raise ApiError(400, "bad_signature", f"{where}: the signature on known event {event.hash} does not verify "
                                             "(a forged copy)")


def ledger_error(exc: LedgerError) -> ApiError:
    """Map a refused ingest onto a 4xx answer."""
    if isinstance(exc, PendingQuotaError):
        return ApiError(429, "pending_quota", str(exc))
    if isinstance(exc, PendingLimitError):
        return ApiError(503, "pending_full", str(exc))
    if isinstance(exc, SignatureError):
        return ApiError(400, "bad_signature", str(exc))
    if isinstance(exc, SchemaError):
        return ApiError(400, "schema_error", str(exc))
    if isinstance(exc, EncodingError):
        return ApiError(400, "malformed_event", str(exc))
    if isinstance(exc, ChainError):
        return ApiError(400, "wrong_network" if isinstance(exc, WrongNetwork) else "chain_error", str(exc))
    return ApiError(400, "ledger_error", str(exc))


# ------------------------------------------------------------------ watcher

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


# ------------------------------------------------------------------ app keys

NODE_API_KEY: web.AppKey[NodeAPI] = web.AppKey("node_api")
TOKEN_KEY: web.AppKey[str | None] = web.AppKey("api_token")
TRUST_LOOPBACK_KEY: web.AppKey[bool] = web.AppKey("trust_loopback")
CLIENT_MAX_SIZE_KEY: web.AppKey[int] = web.AppKey("client_max_size")
HOST_POLICY_KEY: web.AppKey[HostPolicy] = web.AppKey("host_policy")


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
        self.watcher = CommitWatcher(self.loop, ledger.store.last_offset())
        ledger.subscribe(self.watcher.on_applied)
        self._heads_cache: tuple[int, dict[str, Any]] | None = None
        self._streams: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------- executors
    async def run_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a ledger mutation on the node's single writer thread."""
        return await self.loop.run_in_executor(self.writer, fn, *args)

    async def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.loop.run_in_executor(self.reader, fn, *args)

    def close(self) -> None:
        self.watcher.close()
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
            web.get(f"{API}/blobs/{{hash}}", self.get_blob),
        ]

    async def get_blob(self, request: web.Request) -> web.StreamResponse:
        """A content-addressed blob (a large operand or result named by hash in an event)."""
        hash_ = request.match_info["hash"]
        if not is_hash(hash_):
            raise ApiError(400, "bad_hash", f"{hash_[:80]!r} is not a lowercase hex SHA-256 blob hash")
        path = self.ledger.store.blob_path(hash_)
        if path is not None:  # a big blob's file goes out by sendfile, never through Python memory
            return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})
        data = await self.run_read(self.ledger.store.get_blob, hash_)
        if data is None:
            raise ApiError(404, "unknown_blob", f"no blob {hash_} on this node")
        return web.Response(body=data, content_type="application/octet-stream")

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
