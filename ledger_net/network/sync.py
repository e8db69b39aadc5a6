"""Anti-entropy between peers: exchange heads, pull what is missing, push what the
peer lacks, fetch the causal past of pending events by hash.

A round with one peer:
1. `GET /heads` (author -> latest seq and hash, the peer's network and node id).
   A node without a genesis takes the peer's network here: it fetches the genesis
   by the network id and from then on accepts only that network.
2. Pull: for each author the peer is ahead on, chain segments from our head on,
   one page per author per wave, each wave ingested as one batch (so cross-author
   deps inside a wave are delivered together). Authors proven to have forked are
   pulled only below their fork. A node far behind (a fresh node) pages through
   the peer's causal feed instead, prefetching the next page while verifying.
3. Fetch the causal past of pending events: missing chain prefixes by segment,
   other missing deps (e.g. void forker events) by hash.
4. Push: chain segments of authors we are ahead on, in POSTs of bounded size.

Memory stays bounded whatever a peer sends: pages and pushes have fixed sizes,
answers have a byte limit (client), and the ledger's pending buffer is bounded.
A peer that fails is backed off exponentially (discovery); one that serves forged
or malformed events is backed off harder.

A slow or silent peer (a tarpit) delays nobody else: every call has a short timeout,
each peer's exchange runs as its own task (one at a time per peer), the periodic loop
starts exchanges without waiting for the previous ones to end, and peers that have
answered cleanly have their own concurrency lane, apart from new or failing ones.
URLs learned from the ledger are probed (`GET /info`, `probe_timeout`) in the
background before any exchange, and only the node the event named may answer there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp

from ..errors import NetworkError
from ..ledger.chain import Applied, Ledger
from .client import PeerClient, guarded_session
from .discovery import Discovery, Peer
from .limits import MAX_PAGE_BYTES
from .protocol import MAX_EVENTS_PER_REQUEST, MAX_PAGE
from .transfer import PeerMisbehaved, Transfers

log = logging.getLogger(__name__)
T = TypeVar("T")

HOSTILE_PENALTY = 4  # a peer serving bad events is backed off as if it had failed 4 times


class Synchronizer(Transfers):
    """Periodic (and on-demand) anti-entropy with every due peer of `discovery`."""

    def __init__(self, ledger: Ledger, discovery: Discovery, *,
                 run_write: Callable[..., Awaitable[Any]] | None = None,
                 run_read: Callable[..., Awaitable[Any]] | None = None,
                 our_heads: Callable[[], Awaitable[dict[str, Any]]] | None = None,
                 interval: float = 2.0, min_gap: float = 0.05, page_size: int = 1000, wave_budget: int = 2000,
                 round_budget: int = 50_000, push_batch: int = 500, push_budget: int = 5000,
                 push_bytes: int = MAX_PAGE_BYTES,
                 wanted_limit: int = 64, peer_concurrency: int = 4, timeout: float = 10.0,
                 bulk_threshold: int = 2000, bulk_lanes: int = 1, expected_net: str | None = None,
                 token: str | None = None,
                 probe_timeout: float = 3.0, probe_concurrency: int = 8, allow_link_local: bool = False) -> None:
        self.ledger = ledger
        self.discovery = discovery
        self.interval = interval
        self.min_gap = min_gap
        self.page_size = min(page_size, MAX_PAGE)
        self.wave_budget = wave_budget
        self.round_budget = round_budget
        self.push_batch = min(push_batch, MAX_EVENTS_PER_REQUEST)
        self.push_budget = push_budget
        self.push_bytes = push_bytes
        self._orphan_attempts: dict[str, tuple[int, float]] = {}  # author -> (fetches so far, next allowed)
        self._pending_drops: list[Callable[[], None]] = []
        self.wanted_limit = wanted_limit
        self.peer_concurrency = peer_concurrency
        self.timeout = timeout
        self.bulk_threshold = bulk_threshold
        self.bulk_lanes = max(1, bulk_lanes)
        self._bulk_pool: ThreadPoolExecutor | None = None
        self.expected_net = expected_net
        self.token = token
        self.probe_timeout = probe_timeout
        self.allow_link_local = allow_link_local
        self._lanes = (asyncio.Semaphore(max(1, peer_concurrency)), asyncio.Semaphore(max(1, peer_concurrency)))
        self._probe_sem = asyncio.Semaphore(max(1, probe_concurrency))
        self._exchanges: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._probes: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # peers a round wanted while their exchange was still running
        self._own_pool: ThreadPoolExecutor | None = None
        if run_write is None:
            self._own_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-writer")
            pool = self._own_pool

            async def _run(fn: Callable[..., T], *args: Any) -> T:
                return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

            run_write = _run
        self.run_write = run_write
        self.run_read = run_read or run_write
        self._our_heads = our_heads
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[str, PeerClient] = {}
        self._feed_cursor: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.rounds = 0
        self.totals = {"pulled": 0, "pushed": 0, "fetched": 0, "errors": 0}

    # ------------------------------------------------------------------ life
    async def start(self) -> None:
        """Start the periodic loop; local appends poke it so they spread at once."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self.ledger.subscribe(self._on_applied)
        self._task = asyncio.create_task(self._run(), name="ledger-sync")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        background = [*self._exchanges.values(), *self._probes.values()]
        for task in background:
            task.cancel()
        if background:
            await asyncio.gather(*background, return_exceptions=True)
        self._exchanges.clear()
        self._probes.clear()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._own_pool is not None:
            self._own_pool.shutdown(wait=True)
        if self._bulk_pool is not None:
            self._bulk_pool.shutdown(wait=True)
            self._bulk_pool = None

    def poke(self) -> None:
        """Run a round soon (call on the event loop)."""
        self._wake.set()

    def _on_applied(self, applied: list[Applied]) -> None:
        me = self.ledger.identity.node_id if self.ledger.identity else None
        if self._loop is not None and any(a.event.author == me for a in applied):
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while not self._stopping:
            started = time.monotonic()
            try:
                self._start_round()  # exchanges still running (a slow peer) are not waited for
            except Exception:
                log.exception("sync round failed")
            # wait for the interval or a poke, but never spin faster than min_gap
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            spent = time.monotonic() - started
            if spent < self.min_gap:
                await asyncio.sleep(self.min_gap - spent)

    # ------------------------------------------------------------------ rounds
    def client(self, url: str) -> PeerClient:
        if self._session is None or self._session.closed:
            self._session = guarded_session(64, self.allow_link_local)
        client = self._clients.get(url)
        if client is None:
            client = self._clients[url] = PeerClient(url, self._session, timeout=self.timeout, token=self.token)
        return client

    async def sync_once(self) -> dict[str, dict[str, Any]]:
        """One round with every due peer; returns url -> what moved (or the error).
        Probes of new ledger-learned URLs start in the background and are not waited for."""
        exchanges = self._start_round()
        if not exchanges:
            return {}
        results = await asyncio.gather(*exchanges.values(), return_exceptions=True)
        return {url: (r if isinstance(r, dict) else {"error": f"{type(r).__name__}: {r}"})
                for url, r in zip(exchanges, results, strict=False)}

    def _start_round(self) -> dict[str, asyncio.Task[dict[str, Any]]]:
        """Start probes of unverified peers and an exchange with every due peer that has
        none running; returns the exchanges of this round (running ones included)."""
        for peer in self.discovery.to_probe():
            if peer.url not in self._probes:
                probe = asyncio.create_task(self._probe(peer), name=f"probe {peer.url[:80]}")
                self._probes[peer.url] = probe
                probe.add_done_callback(functools.partial(self._probe_done, peer.url))
        exchanges: dict[str, asyncio.Task[dict[str, Any]]] = {}
        for peer in self.discovery.due():
            task = self._exchanges.get(peer.url)
            if task is None:
                task = asyncio.create_task(self._exchange(peer), name=f"sync {peer.url[:80]}")
                self._exchanges[peer.url] = task
                task.add_done_callback(functools.partial(self._exchange_done, peer.url))
            else:
                self._again.add(peer.url)
            exchanges[peer.url] = task
        if exchanges:
            self.rounds += 1
        return exchanges

    def _probe_done(self, url: str, _task: asyncio.Task[Any]) -> None:
        self._probes.pop(url, None)

    def _exchange_done(self, url: str, _task: asyncio.Task[Any]) -> None:
        self._exchanges.pop(url, None)
        if url in self._again:  # something new came while it ran: go again soon
            self._again.discard(url)
            self._wake.set()

    async def _exchange(self, peer: Peer) -> dict[str, Any]:
        """`sync_with` in the peer's lane: peers whose last exchange was clean do not wait
        behind new or failing ones."""
        lane = self._lanes[0 if peer.last_ok and not peer.failures else 1]
        async with lane:
            try:
                return await self.sync_with(peer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not end the exchange task silently
                log.exception("exchange with %s failed", peer.url)
                self.discovery.mark_failed(peer, f"{type(exc).__name__}: {exc}")
                return {"error": f"{type(exc).__name__}: {exc}"}

    async def _probe(self, peer: Peer) -> None:
        """Check that a ledger-learned URL answers `GET /info` quickly as the node that
        announced it (and on our network) before anything else is asked of it."""
        async with self._probe_sem:
            client = PeerClient(peer.url, self.client(peer.url).session, timeout=self.probe_timeout,
                                max_response=1 << 20)
            try:
                info = await client.info()
            except NetworkError as exc:
                self.discovery.mark_failed(peer, f"probe failed: {exc}")
                return
            node_id, net, ours = info.get("node_id"), info.get("net"), self.ledger.net
            if peer.node_id is not None and node_id != peer.node_id:
                self.discovery.mark_failed(peer, f"probe: {peer.url} answers as node {str(node_id)[:16]}…, not "
                                                 f"the announcing {peer.node_id[:16]}…", penalty=HOSTILE_PENALTY)
                return
            if ours is not None and net != ours:
                self.discovery.mark_failed(peer, f"probe: {peer.url} is on network {str(net)[:16]}…",
                                           penalty=HOSTILE_PENALTY)
                return
            self.discovery.mark_probed(peer, node_id if isinstance(node_id, str) else None,
                                       net if isinstance(net, str) else None)
            self.poke()

    async def sync_with(self, peer: Peer) -> dict[str, Any]:
        """One anti-entropy exchange with `peer`; failures are recorded, not raised."""
        client = self.client(peer.url)
        stats: dict[str, Any] = {"pulled": 0, "fetched": 0, "pushed": 0}
        try:
            theirs = await client.heads()
            node_id, net = theirs.get("node_id"), theirs.get("net")
            if node_id is not None and self.ledger.identity is not None and node_id == self.ledger.identity.node_id:
                peer.is_self = True
                return {"self": True}
            if not isinstance(theirs.get("heads"), dict):
                raise PeerMisbehaved(f"{peer.url}: heads answer has no heads")
            ours = self.ledger.net
            if ours is None and net:
                await self._adopt_network(client, net)
                ours = self.ledger.net
            if net and ours and net != ours:
                delay = self.discovery.mark_failed(peer, f"peer is on network {net[:16]}…, this node on "
                                                         f"{ours[:16]}…", penalty=HOSTILE_PENALTY)
                return {"error": "wrong network", "retry_in": delay}
            self.discovery.identify(peer, node_id, net)
            if ours is not None:
                stats["pulled"] = await self._pull(client, peer, theirs)
                # Push before chasing what pending events wait for: a pending buffer full of
                # strangers' orphans must not hold back the honest events the peer lacks.
                stats["pushed"] = await self._push(client, theirs)
                stats["fetched"] = await self._fetch_wanted(client)
            # only a whole clean exchange clears the backoff (answering heads is not enough)
            self.discovery.mark_ok(peer, node_id, net)
        except PeerMisbehaved as exc:
            log.warning("peer %s misbehaved: %s", peer.url, exc)
            self.totals["errors"] += 1
            stats["error"] = str(exc)
            self.discovery.mark_failed(peer, str(exc), penalty=HOSTILE_PENALTY)
        except NetworkError as exc:
            self.totals["errors"] += 1
            stats["error"] = str(exc)
            self.discovery.mark_failed(peer, str(exc))
        for key in ("pulled", "fetched", "pushed"):
            self.totals[key] += stats.get(key, 0)
        peer.last_sync = stats
        return stats
