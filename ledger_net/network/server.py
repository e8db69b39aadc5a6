"""One node on the network: its ledger and projections behind the HTTP API, the
`/ws` hub, the peer table and the synchronizer, started and stopped together.

`NodeServer` does not own the ledger or the projection runner (whoever opened them
closes them), so a node can be stopped and started again on the same books, or
stopped hard (no projection flush) to act out a crash.

Over 400 lines because `NodeServer` starts, stops and restarts the app, the hub, discovery, sync
and the checkpoint loop as one unit, and its peer and health routes are closures over that state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import aiohttp
from aiohttp import web

from ..blob_names import PIECE, BlobMismatch, hasher_for
from ..core.checkpoints import FETCH_BUDGET, FETCH_TIMEOUT, CheckpointService
from ..errors import NetworkError, PeerUnavailable, RefusedPeerURL
from ..ledger.chain import Applied, Ledger
from ..ledger.datadir import DataDir
from ..ledger.events import Event
from ..ledger.identity import Identity
from .auth import HostPolicy, control, load_or_create_token
from .client import PeerClient, guarded_session
from .discovery import MANUAL, Discovery, check_peer_url, normalize_url
from .joining import join
from .limits import IDLE_TIMEOUT, MAX_CONNECTIONS, WRITE_TIMEOUT, ConnectionGuard, raise_nofile_limit
from .proofs import proof_routes
from .protocol import API, DEFAULT_CLIENT_MAX_SIZE, MAX_EVENTS_PER_REQUEST, NodeAPI, build_app
from .responses import ApiError, json_response
from .sync import Synchronizer
from .websocket import WebSocketHub

if TYPE_CHECKING:
    from ..projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

T = TypeVar("T")
BLOB_CONNECTIONS = 32  # open connections of blob fetches, all peers
BLOB_CONNECTIONS_PER_PEER = 4  # of them to one peer (a node fetches a chunk's few blobs at once)


def open_local(data_dir: str | os.PathLike[str], db_url: str | None = None, *, identity: Identity | None = None,
               **runner_options: Any) -> tuple[Ledger, ProjectionRunner]:
    """Open (or create) a node's books in `data_dir`: its key (or `identity`, e.g. one unsealed
    with its passphrase), its SQLite ledger (or `db_url`), and the projection runner over them
    (`runner_options` go to `ProjectionRunner`)."""
    from ..projections.runner import ProjectionRunner

    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    if identity is None:
        identity = Identity.load_or_create(path)
    ledger = Ledger.open(db_url or DataDir(path).database_url(), identity)
    return ledger, ProjectionRunner(ledger, **runner_options)


class BlobSinkPort(Protocol):
    """Where `NodeServer.fetch_blob` streams a blob (``execution.blobs.BlobSink``)."""

    def write(self, piece: bytes) -> None: ...

    def matches(self) -> bool: ...

    def reset(self) -> None: ...


class PieceSinkPort(Protocol):
    """Where `NodeServer.fetch_pieces` puts the pieces of a ``b3t`` blob
    (``execution.partial_blobs.PartialBlob``), which checks each against the name."""

    def knows_size(self) -> bool: ...

    def offer_leaves(self, leaves: bytes) -> None: ...

    def begin(self, size: int) -> None: ...

    def writer(self, first: int) -> Callable[[bytes], None]: ...

    def missing_runs(self, wanted: Iterable[int]) -> list[tuple[int, int]]: ...


class _BytesSink:
    """A small blob fetched into memory (a checkpoint's detached frontier), hashed as it comes."""

    def __init__(self, blob_hash: str, limit: int = 64 << 20) -> None:
        self.blob_hash, self.limit = blob_hash, limit
        self.reset()

    def write(self, piece: bytes) -> None:
        self._size += len(piece)
        if self._size > self.limit:
            raise NetworkError(f"blob {self.blob_hash[:16]}… is over {self.limit} bytes")
        self._parts.append(bytes(piece))
        self._hasher.update(piece)

    def matches(self) -> bool:
        return self._hasher.name() == self.blob_hash

    def reset(self) -> None:
        self._parts: list[bytes] = []
        self._hasher = hasher_for(self.blob_hash)
        self._size = 0

    def data(self) -> bytes:
        return b"".join(self._parts)


class NodeServer:
    """HTTP API + `/ws` + discovery + anti-entropy for one ledger."""

    def __init__(self, ledger: Ledger, runner: ProjectionRunner | None = None, *, host: str = "127.0.0.1",
                 port: int = 0,
                 public_url: str | None = None, seeds: Iterable[str] = (),
                 data_dir: str | os.PathLike[str] | None = None,
                 token: str | None = None, trust_loopback: bool = True, sync_interval: float = 2.0,
                 metrics_interval: float = 5.0, client_max_size: int = DEFAULT_CLIENT_MAX_SIZE,
                 max_events_per_request: int = MAX_EVENTS_PER_REQUEST, backoff_base: float = 0.5,
                 backoff_max: float = 60.0, expected_net: str | None = None, enable_sync: bool = True,
                 shutdown_timeout: float = 2.0, extra_routes: Iterable[web.RouteDef] = (),
                 allowed_hosts: Iterable[str] = (), allow_link_local: bool = False,
                 ready: Callable[[], str | None] | None = None, max_connections: int = MAX_CONNECTIONS,
                 idle_timeout: float = IDLE_TIMEOUT, write_timeout: float = WRITE_TIMEOUT,
                 checkpoint_every: int = 0, checkpoint_seconds: float = 0.0, witness: bool = True,
                 checkpoint_poll: float = 1.0, **sync_options: Any) -> None:
        self.ledger = ledger
        self.runner = runner
        self.host = host
        self.port = port
        self.public_url = public_url
        self.token = token if token is not None else (load_or_create_token(data_dir) if data_dir else None)
        self.trust_loopback = trust_loopback
        self.sync_interval = sync_interval
        self.metrics_interval = metrics_interval
        self.client_max_size = client_max_size
        self.max_events_per_request = max_events_per_request
        self.expected_net = expected_net
        self.enable_sync = enable_sync
        self.shutdown_timeout = shutdown_timeout
        self.sync_options = dict(sync_options, allow_link_local=allow_link_local)
        self.allowed_hosts = list(allowed_hosts)
        HostPolicy(host, self.allowed_hosts, public_url)  # a malformed name fails here, not on a request
        self.allow_link_local = allow_link_local
        self._ready = ready
        self.max_connections = max_connections  # open connections; see limits.py
        self.idle_timeout = idle_timeout  # seconds an idle connection stays open
        self.write_timeout = write_timeout  # seconds a reader may stall a write before it is dropped
        self.guard: ConnectionGuard | None = None
        self.extra_routes = list(extra_routes)  # e.g. the control API and explorer of ComputeNetwork
        # Checkpoints (docs/proofs.md): signed every `checkpoint_every` events or `checkpoint_seconds`
        # (both 0: only on request); others' cosigned when `witness`; polled every `checkpoint_poll` s.
        self.checkpoints = CheckpointService(ledger, runner, every_events=checkpoint_every,
                                             every_seconds=checkpoint_seconds, witness=witness) if runner else None
        self.checkpoint_poll = checkpoint_poll
        self._checkpoint_task: asyncio.Task[None] | None = None
        node_id = ledger.identity.node_id if ledger.identity else None
        self.discovery = Discovery(self_id=node_id, seeds=seeds, backoff_base=backoff_base, backoff_max=backoff_max,
                                   allow_link_local=allow_link_local)
        self.url: str | None = None
        self.api: NodeAPI | None = None
        self.hub: WebSocketHub | None = None
        self.sync: Synchronizer | None = None
        self.app: web.Application | None = None
        self._app_runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._blob_session: aiohttp.ClientSession | None = None  # blob fetches' keep-alive connections

    @property
    def node_id(self) -> str | None:
        return self.ledger.identity.node_id if self.ledger.identity else None

    @property
    def running(self) -> bool:
        return self._running

    # ------------------------------------------------------------------ life
    async def start(self, host: str | None = None, port: int | None = None) -> str:
        """Bind (port 0 picks a free one), serve, and start syncing; returns the node's URL."""
        if self._running:
            raise NetworkError(f"node already serving at {self.url}")
        host = host or self.host
        port = self.port if port is None else port
        loop = self._loop = asyncio.get_running_loop()
        self.api = NodeAPI(self.ledger, loop=loop, info=self._info, max_events_per_request=self.max_events_per_request,
                           write_timeout=self.write_timeout)
        self.hub = WebSocketHub(self.ledger, self.runner, loop=loop, watcher=self.api.watcher,
                                metrics_interval=self.metrics_interval, read=self.api.run_read,
                                peers_count=lambda: sum(1 for p in self.discovery.active() if p.last_ok))
        self.app = build_app(self.api, token=self.token, trust_loopback=self.trust_loopback,
                             client_max_size=self.client_max_size,
                             extra_routes=self._routes() + self.extra_routes
                             + (proof_routes(self.checkpoints) if self.checkpoints else []),
                             host_policy=HostPolicy(host, self.allowed_hosts, self.public_url))
        self.app.router.add_get("/ws", self.hub.handle)
        self._app_runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=self.shutdown_timeout,
                                         keepalive_timeout=self.idle_timeout)
        await self._app_runner.setup()
        # the soft open-files limit goes up to the hard one; the cap keeps headroom under it
        self.guard = ConnectionGuard(raise_nofile_limit(self.max_connections))
        self.guard.install(self._app_runner.server)
        site = web.TCPSite(self._app_runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self._app_runner.cleanup()
            self.api.close()
            raise NetworkError(f"cannot listen on {host}:{port}: {exc}") from None
        bound = self._app_runner.addresses[0]
        self.port = bound[1]
        self.host = host
        self.url = normalize_url(self.public_url or f"http://{host}:{self.port}")
        self.discovery.self_url = self.url
        if self.runner is not None:
            self.discovery.learn_from_nodes(self.runner.nodes.nodes)
        self.ledger.subscribe(self._on_applied_any_thread)
        self.sync = Synchronizer(self.ledger, self.discovery, run_write=self.api.run_write, run_read=self.api.run_read,
                                 our_heads=self.api.heads, interval=self.sync_interval, expected_net=self.expected_net,
                                 **self.sync_options)
        self._running = True
        if self.enable_sync:
            await self.sync.start()
        self.hub.start()
        if self.checkpoints is not None:
            self._checkpoint_task = asyncio.create_task(self._checkpoint_loop())
        log.debug("node %s serving at %s", (self.node_id or "?")[:16], self.url)  # main logs the story line
        return self.url

    async def stop(self, *, hard: bool = False) -> None:
        """Stop serving and syncing. `hard`: skip the projection flush (acts out a crash:
        the runner folds the unflushed tail again when the books are reopened)."""
        if not self._running:
            return
        self._running = False
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            await asyncio.gather(self._checkpoint_task, return_exceptions=True)
            self._checkpoint_task = None
        if self.sync is not None:
            await self.sync.stop()
        if self.hub is not None:
            await self.hub.close()
        if self.api is not None:
            await self.api.cancel_streams()
        if self._app_runner is not None:
            await self._app_runner.cleanup()
            self._app_runner = None
        if self._blob_session is not None:
            await self._blob_session.close()
            self._blob_session = None
        if self.api is not None:
            self.api.close()
        if not hard and self.runner is not None:
            self.runner.flush()
        if not hard and self.checkpoints is not None:
            self.checkpoints.save_state()  # the next start's first checkpoint rehashes only what changed

    async def _checkpoint_loop(self) -> None:
        """Sign a checkpoint when due and judge others' (on the writer thread, like ingests)."""
        assert self.checkpoints is not None
        while self._running:
            try:
                for line in await self.run_write(self.checkpoints.tick):
                    log.info("checkpoint: %s", line)
                for blob in self.checkpoints.wanted_frontiers():  # detached frontiers waiting checkpoints name, due
                    await self._fetch_frontier(blob)
            except Exception:  # a failed round must not stop the next one
                log.exception("checkpoint round failed")
            await asyncio.sleep(self.checkpoint_poll)

    async def _fetch_frontier(self, blob: str) -> None:
        """One bounded try at a wanted frontier blob (FETCH_TIMEOUT per peer, FETCH_BUDGET in
        all); a miss backs the blob off, so a blob no peer has cannot stall the loop."""
        assert self.checkpoints is not None
        sink = _BytesSink(blob)
        try:
            got = await asyncio.wait_for(self.fetch_blob(blob, sink, timeout=FETCH_TIMEOUT), FETCH_BUDGET)
        except TimeoutError:
            got = False
        if got and await self.run_write(self.checkpoints.put_frontier, blob, sink.data()):
            return
        delay = self.checkpoints.frontier_missed(blob)
        log.info("checkpoint: no peer served frontier blob %s… yet; next try in %.0f s", blob[:16], delay)

    def _on_applied_any_thread(self, applied: list[Applied]) -> None:
        if not self._running or self._loop is None:
            return
        nodes = [a for a in applied if a.event.type.startswith("node.")]
        if nodes:
            with contextlib.suppress(RuntimeError):  # the loop closed under us: nobody to tell
                self._loop.call_soon_threadsafe(self.discovery.on_applied, nodes)

    # ------------------------------------------------------------------ ledger helpers
    async def run_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a ledger mutation serialised with ingests (on the writer thread while serving,
        inline while stopped: a node's books keep working offline)."""
        if not self._running or self.api is None:
            return fn(*args)
        return await self.api.run_write(fn, *args)

    async def run_append(self, fn: Callable[..., T], *args: Any) -> T:
        """Run local appends on the append pool while serving (concurrent ones share a commit,
        see `NodeAPI.run_append`), inline while stopped."""
        if not self._running or self.api is None:
            return fn(*args)
        return await self.api.run_append(fn, *args)

    async def append(self, type: str, body: dict[str, Any], deps: Iterable[str] = ()) -> Event:
        """Append a local event (sharing a commit with concurrent appends and ingests)."""
        return await self.run_append(self.ledger.append, type, body, tuple(deps))

    async def announce(self, name: str, *, capabilities: dict[str, Any] | None = None,
                       node_type: str = "public") -> Event | None:
        """Put this node's URL into the ledger (`node.joined`, or `node.updated` if the URL
        changed); None if the ledger already says so."""
        if self.ledger.net is None:
            raise NetworkError("this node has no network yet: sync with a seed first")
        if self.url is None:
            raise NetworkError("start the node before announcing it")
        row = self.runner.nodes.nodes.get(self.node_id) if self.runner is not None and self.node_id else None
        if row is not None and row.get("status") == "online" and row.get("url") == self.url:
            return None
        if row is not None and row.get("status") == "online":
            return await self.append("node.updated", {"url": self.url})
        body: dict[str, Any] = {"name": name, "url": self.url, "node_type": node_type}
        if capabilities:
            body["capabilities"] = capabilities
        return await self.append("node.joined", body)

    async def sync_once(self) -> dict[str, dict[str, Any]]:
        if self.sync is None:
            raise NetworkError("node is not started")
        return await self.sync.sync_once()

    async def wait_for_network(self, timeout: float = 10.0) -> str:
        """Sync until this node has its network's genesis (a fresh node joining: `joining.join`)."""
        if self.sync is None:
            raise NetworkError("node is not started")
        await join(self.ledger, sync=self.sync, timeout=timeout)
        assert self.ledger.net is not None  # join returns only once the genesis is in
        return self.ledger.net

    # ------------------------------------------------------------------ peers
    def add_seed(self, url: str) -> None:
        self.discovery.add(url, "seed")

    async def connect_to_node(self, node_id_or_url: str, *, timeout: float = 5.0) -> bool:
        """Start syncing with a node (by id from the ledger, or by URL). NetworkError if the
        node is unknown, announced no URL, does not answer, or is another network/node."""
        target = node_id_or_url.strip()
        expected_id: str | None = None
        url: str | None
        if "://" in target or ":" in target:
            url = normalize_url(target)
        else:
            expected_id = target
            peers = self.discovery.by_node(target)
            url = peers[0].url if peers else None
            if url is None:
                row = self.runner.nodes.nodes.get(target) if self.runner is not None else None
                if row is None:
                    raise NetworkError(f"unknown node {target[:64]!r}: it never joined this network")
                announced = row["url"]
                if not announced:
                    raise NetworkError(f"node {target[:16]}… announced no URL to connect to")
                url = normalize_url(announced)
        if url == self.url:
            raise NetworkError("a node does not connect to itself")
        try:
            url = check_peer_url(url, allow_link_local=self.allow_link_local)
        except ValueError as exc:
            raise RefusedPeerURL(f"refused peer URL: {exc}") from None
        async with PeerClient(url, timeout=timeout) as client:
            info = await client.info()  # NetworkError if unreachable
        if expected_id is not None and info.get("node_id") != expected_id:
            raise NetworkError(f"{url} is node {str(info.get('node_id'))[:16]}…, not {expected_id[:16]}…")
        net = info.get("net")
        if net and self.ledger.net and net != self.ledger.net:
            raise NetworkError(f"{url} is on network {net[:16]}…, this node on {self.ledger.net[:16]}…")
        peer = self.discovery.add(url, MANUAL, info.get("node_id"))
        if peer is None:
            raise NetworkError("a node does not connect to itself")
        self.discovery.enable(url)
        self.discovery.mark_ok(peer, info.get("node_id"), net)
        if self.sync is not None:
            self.sync.poke()
        return True

    def _blob_client(self, url: str, timeout: float) -> PeerClient:
        """A client of ``url`` on the session blob fetches share while the node serves: a peer's
        kept-alive connection carries its next fetch (leaves, ranges, whole blobs) instead of a
        new connection per blob. A peer holds at most ``BLOB_CONNECTIONS_PER_PEER`` of its
        connections, each fetch is bounded by ``timeout``, and idle ones close after aiohttp's
        keep-alive, so a peer that stalls cannot pin the pool other peers' fetches use."""
        if not self._running:  # stopped (or not started): a session of its own, closed after use
            return PeerClient(url, timeout=timeout)
        if self._blob_session is None or self._blob_session.closed:
            self._blob_session = guarded_session(BLOB_CONNECTIONS, self.allow_link_local,
                                                 limit_per_host=BLOB_CONNECTIONS_PER_PEER, keepalive=IDLE_TIMEOUT / 3)
        return PeerClient(url, self._blob_session, timeout=timeout)

    async def fetch_blob(self, hash_: str, sink: BlobSinkPort, timeout: float = 60.0) -> bool:
        """Ask peers in turn for a blob by hash, streaming it into ``sink`` (which hashes as it
        writes); True once one peer's bytes match the hash."""
        for peer in self.discovery.active():
            sink.reset()
            try:
                async with self._blob_client(peer.url, timeout) as client:
                    if not await client.blob_into(hash_, sink.write):
                        continue
            except NetworkError:
                continue
            if sink.matches():
                return True
        sink.reset()
        return False

    async def fetch_pieces(self, name: str, sink: PieceSinkPort, wanted: Sequence[int],
                           timeout: float = 60.0) -> bool:
        """Ask peers in turn for pieces ``wanted`` of ``b3t`` blob ``name`` by byte range: its
        leaves list first (the sink checks it against the name with the size the first range
        answer states), then each run of missing pieces, which the sink checks piece by piece.
        A peer that lies is left for the next; True once every wanted piece is in."""
        for peer in self.discovery.active():
            try:
                async with self._blob_client(peer.url, timeout) as client:
                    if not sink.knows_size():
                        leaves = await client.blob_leaves(name)
                        if leaves is None:
                            continue
                        sink.offer_leaves(leaves)
                    for first, end in sink.missing_runs(wanted):
                        if not await client.blob_range_into(name, first * PIECE, end * PIECE, sink.begin,
                                                            sink.writer(first)):
                            break
            except (NetworkError, BlobMismatch) as exc:
                log.info("pieces of blob %s… from %s: %s", name[:20], peer.url, exc)
                continue
            if not sink.missing_runs(wanted):
                return True
        return False

    async def disconnect_from_node(self, node_id_or_url: str) -> bool:
        """Stop syncing with a node until `connect_to_node`; NetworkError if unknown."""
        return self.discovery.disconnect(node_id_or_url.strip())

    def list_peers(self) -> list[dict[str, Any]]:
        return self.discovery.describe()

    def get_nodes_list(self) -> list[dict[str, Any]]:
        """Every node the ledger knows (from `node.*` events), with our link to it."""
        if self.runner is None:
            return [dict(p, node_id=p["node_id"]) for p in self.discovery.describe()]
        nodes = self.runner.nodes
        out = []
        for node_id in sorted(dict(nodes.nodes)):
            out.append({**nodes.describe(node_id), "connection": self._connection(node_id),
                        "is_self": node_id == self.node_id})
        return out

    def get_node_details(self, node_id: str) -> dict[str, Any]:
        nodes = self.runner.nodes if self.runner is not None else None
        if nodes is None or node_id not in nodes.nodes:
            raise NetworkError(f"unknown node {node_id[:64]!r}")
        details: dict[str, Any] = {**nodes.describe(node_id), "connection": self._connection(node_id),
                                   "is_self": node_id == self.node_id}
        if node_id in self.ledger.state.frozen:
            details["forked_at"] = self.ledger.state.frozen[node_id]
        return details

    def not_ready(self) -> str | None:
        """Why this node does not accept work now (None: it is ready). `/readyz` answers
        from this, and so do the control routes (503 `not_ready`)."""
        if not self._running:
            return "the node is not serving"
        if self.ledger.net is None:
            return "the node has no network yet (joining)"
        return self._ready() if self._ready is not None else None

    def _connection(self, node_id: str) -> dict[str, Any] | None:
        peers = self.discovery.by_node(node_id)
        return peers[0].as_dict() if peers else None

    # ------------------------------------------------------------------ HTTP
    def _info(self) -> dict[str, Any]:
        return {"url": self.url, "peers": sum(1 for p in self.discovery.active() if p.last_ok),
                "sync_rounds": self.sync.rounds if self.sync else 0}

    def _routes(self) -> list[web.RouteDef]:
        async def get_peers(request: web.Request) -> web.Response:
            return json_response({"peers": self.list_peers()})

        @control
        async def post_peer(request: web.Request) -> web.Response:
            try:
                body = await request.json(loads=_loads)
            except ValueError:
                raise ApiError(400, "malformed_json", "body must be JSON") from None
            target = body.get("url") or body.get("node_id") if isinstance(body, dict) else None
            if not isinstance(target, str) or not target:
                raise ApiError(400, "malformed_request", 'body must be {"url": …} or {"node_id": …}')
            try:
                await self.connect_to_node(target)
            except NetworkError as exc:
                raise _peer_error(exc) from None
            return json_response({"connected": True, "peers": self.list_peers()})

        @control
        async def delete_peer(request: web.Request) -> web.Response:
            try:
                await self.disconnect_from_node(request.match_info["node"])
            except NetworkError as exc:
                raise ApiError(404, "unknown_node", str(exc)) from None
            return json_response({"disconnected": True})

        @control
        async def post_sync(request: web.Request) -> web.Response:
            return json_response({"round": await self.sync_once()})

        async def get_nodes(request: web.Request) -> web.Response:
            return json_response({"nodes": self.get_nodes_list()})

        async def get_node(request: web.Request) -> web.Response:
            try:
                return json_response(self.get_node_details(request.match_info["node_id"]))
            except NetworkError as exc:
                raise ApiError(404, "unknown_node", str(exc)) from None

        async def healthz(request: web.Request) -> web.Response:
            """Alive: the process serves HTTP (says nothing about accepting work)."""
            return json_response({"status": "alive", "node_id": self.node_id})

        async def readyz(request: web.Request) -> web.Response:
            """Ready: the control API accepts tasks and transfers (else 503 and why)."""
            reason = self.not_ready()
            if reason is not None:
                return json_response({"status": "not_ready", "ready": False,
                                      "error": {"code": "not_ready", "message": reason}}, 503)
            return json_response({"status": "ready", "ready": True, "node_id": self.node_id, "net": self.ledger.net})

        return [web.get("/healthz", healthz), web.get("/readyz", readyz),
                web.get(f"{API}/peers", get_peers), web.post(f"{API}/peers", post_peer),
                web.delete(f"{API}/peers/{{node}}", delete_peer), web.post(f"{API}/sync", post_sync),
                web.get(f"{API}/nodes", get_nodes), web.get(f"{API}/nodes/{{node_id}}", get_node)]


def _peer_error(exc: NetworkError) -> ApiError:
    """The HTTP answer to a refused connect: 400 for a URL this node will not contact, 502 when
    the peer does not answer, 404 when there is no such node."""
    text = str(exc)
    if isinstance(exc, RefusedPeerURL):
        return ApiError(400, "bad_peer_url", text)
    return ApiError(502 if isinstance(exc, PeerUnavailable) else 404, "peer_unavailable", text)


def _loads(text: str) -> Any:
    import orjson

    return orjson.loads(text)


PeerNode = NodeServer
