"""`GET /metrics`: the node's numbers in the Prometheus text format (version 0.0.4).

Written by hand rather than with `prometheus_client`: the values are read from the
node's own objects at scrape time (projections, synchronizer, executor), several
nodes can live in one process (tests, the demo), and a process-global registry
would mix them up. What is exported:

- events committed to the log by origin (`local` = appended by this node's key,
  `foreign` = ingested from others) and type, and how many of them had no effect;
- per peer: sync lag in events (heads difference, both ways), failures, age of the
  last good exchange; totals pulled/pushed/fetched by the synchronizer;
- tasks by status, chunks run here, sandbox failures by reason;
- the credit supply (minted, spendable, escrow, in transit, open vouchers, burnt)
  and whether it is conserved;
- last offset, projection offset and the age of the newest event (the state hash
  only changes when an event commits, so this is the age of the state hash).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..ledger.chain import Applied, Ledger
from .client import PeerClient
from .ports import MetricsPort

if TYPE_CHECKING:
    from ..projections.runner import ProjectionRunner

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PEER_HEADS_TTL = 5.0  # seconds a peer's heads are reused between scrapes
PEER_HEADS_TIMEOUT = 1.0  # a scrape never waits long for a slow peer
MAX_PEERS_PROBED = 32  # peers whose heads one scrape may ask for

Labels = dict[str, str]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Exposition:
    """Collects metric families and renders the text format (HELP, TYPE, samples)."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._names: set[str] = set()

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[Labels, float]]) -> None:
        if name in self._names:
            raise ValueError(f"metric family {name} added twice")
        self._names.add(name)
        self._lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        self._lines.append(f"# TYPE {name} {kind}")
        sample_name = f"{name}_total" if kind == "counter" else name
        for labels, value in samples:
            if labels:
                inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items()))
                self._lines.append(f"{sample_name}{{{inner}}} {_number(value)}")
            else:
                self._lines.append(f"{sample_name} {_number(value)}")

    def gauge(self, name: str, help_text: str, value: float | Iterable[tuple[Labels, float]]) -> None:
        samples = [({}, value)] if isinstance(value, (int, float)) else value
        self.family(name, "gauge", help_text, samples)

    def counter(self, name: str, help_text: str, value: float | Iterable[tuple[Labels, float]]) -> None:
        samples = [({}, value)] if isinstance(value, (int, float)) else value
        self.family(name, "counter", help_text, samples)

    def render(self) -> str:
        return "\n".join(self._lines) + "\n"


class EventCounter:
    """Ledger listener: counts committed events by origin and type (any thread)."""

    def __init__(self, ledger: Ledger) -> None:
        self.node_id = ledger.identity.node_id if ledger.identity else None
        self._lock = threading.Lock()
        self.committed: dict[tuple[str, str], int] = {}
        self.no_effect: dict[tuple[str, str], int] = {}
        self.last_commit: float | None = None
        ledger.subscribe(self.on_applied)

    def on_applied(self, applied: list[Applied]) -> None:
        with self._lock:
            for item in applied:
                origin = "local" if item.event.author == self.node_id else "foreign"
                key = (origin, item.event.type)
                self.committed[key] = self.committed.get(key, 0) + 1
                if item.reason is not None:
                    self.no_effect[key] = self.no_effect.get(key, 0) + 1
            if applied:
                self.last_commit = time.time()

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int], float | None]:
        with self._lock:
            return dict(self.committed), dict(self.no_effect), self.last_commit


class PeerLag:
    """How far each peer's log and ours differ, from its `GET /heads` (cached briefly)."""

    def __init__(self) -> None:
        self.cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    async def heads_of(self, urls: list[str]) -> dict[str, dict[str, Any] | None]:
        now = time.monotonic()
        stale = [u for u in urls if u not in self.cache or now - self.cache[u][0] > PEER_HEADS_TTL]

        async def fetch(url: str) -> None:
            try:
                async with PeerClient(url, timeout=PEER_HEADS_TIMEOUT) as client:
                    heads = await client.heads()
            except Exception:  # an unreachable peer is a metric, not an error
                heads = None
            self.cache[url] = (time.monotonic(), heads)

        if stale:
            await asyncio.gather(*(fetch(u) for u in stale))
        for url in list(self.cache):
            if url not in urls:
                del self.cache[url]
        return {u: self.cache[u][1] for u in urls}


def heads_difference(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[int, int]:
    """(events they have that we lack, events we have that they lack), by per-author seq."""
    behind = ahead = 0
    for author in set(ours) | set(theirs):
        mine = int(ours[author][0]) if author in ours else 0
        their = theirs.get(author)
        seq = int(their[0]) if isinstance(their, list) and their and isinstance(their[0], int) else 0
        behind += max(0, seq - mine)
        ahead += max(0, mine - seq)
    return behind, ahead


class NodeMetrics:
    """Everything `/metrics` shows for one ComputeNetwork."""

    def __init__(self, network: MetricsPort) -> None:
        self.network = network
        assert network.ledger is not None, "metrics are wired after the books are open"
        self.events = EventCounter(network.ledger)
        self.peers = PeerLag()

    async def render(self) -> str:
        net = self.network
        ledger, runner, server = net.ledger, net.runner, net.server
        out = Exposition()
        up = ledger is not None and runner is not None and server is not None and server.api is not None
        out.gauge("ledger_net_up", "1 while the node's books are open and it serves", 1 if up else 0)
        if not up:
            return out.render()
        assert ledger is not None and runner is not None and server is not None and server.api is not None
        committed, no_effect, last_commit = self.events.snapshot()
        out.counter("ledger_net_events_appended", "events this node signed and appended to its log, by type",
                    [({"type": t}, n) for (o, t), n in sorted(committed.items()) if o == "local"])
        out.counter("ledger_net_events_ingested", "events of other authors verified and stored, by type",
                    [({"type": t}, n) for (o, t), n in sorted(committed.items()) if o == "foreign"])
        out.counter("ledger_net_events_without_effect", "stored events that broke a rule (kept, no effect), "
                    "by origin and type", [({"origin": o, "type": t}, n) for (o, t), n in sorted(no_effect.items())])
        last_offset = server.api.watcher.last
        out.gauge("ledger_net_last_offset", "offset of the newest event in this node's log", last_offset)
        out.gauge("ledger_net_projection_offset", "offset the projections have folded up to", runner.offset)
        out.gauge("ledger_net_pending_events", "events waiting for their causal past", len(ledger.pending))
        out.gauge("ledger_net_forked_authors", "authors proven to have equivocated", len(ledger.state.frozen))
        age = time.time() - last_commit if last_commit is not None else float("nan")
        out.gauge("ledger_net_state_age_seconds", "seconds since the last event committed (the state hash has "
                  "not changed since); NaN before the first commit of this process", age)
        await self._sync(out, server)
        self._tasks(out, runner)
        self._supply(out, ledger, runner)
        return out.render()

    async def _sync(self, out: Exposition, server: Any) -> None:
        peers = [p for p in server.discovery.active()][:MAX_PEERS_PROBED]
        ours = (await server.api.heads())["heads"]
        heads = await self.peers.heads_of([p.url for p in peers if p.last_ok or p.failures == 0])
        lag_behind, lag_ahead, failures, since_ok = [], [], [], []
        now = time.time()  # Discovery stamps last_ok with the wall clock
        for peer in peers:
            labels = {"peer": peer.url, "node_id": (peer.node_id or "")[:16]}
            theirs = heads.get(peer.url)
            if theirs is not None and isinstance(theirs.get("heads"), dict):
                behind, ahead = heads_difference(ours, theirs["heads"])
                lag_behind.append((labels, behind))
                lag_ahead.append((labels, ahead))
            failures.append((labels, peer.failures))
            since_ok.append((labels, now - peer.last_ok if peer.last_ok else float("nan")))
        out.gauge("ledger_net_sync_lag_events", "events a peer holds that this node has not pulled yet "
                  "(sum over authors of their seq minus ours)", lag_behind)
        out.gauge("ledger_net_sync_ahead_events", "events this node holds that a peer lacks", lag_ahead)
        out.gauge("ledger_net_peer_failures", "consecutive failed exchanges with a peer", failures)
        out.gauge("ledger_net_peer_seconds_since_ok", "seconds since the last clean exchange with a peer "
                  "(NaN: never)", since_ok)
        out.gauge("ledger_net_peers", "peers this node syncs with", len(peers))
        sync = server.sync
        totals = dict(sync.totals) if sync is not None else {}
        out.counter("ledger_net_sync_events", "events moved by anti-entropy, by direction",
                    [({"direction": k}, totals.get(k, 0)) for k in ("pulled", "fetched", "pushed")])
        out.counter("ledger_net_sync_errors", "failed exchanges with peers", totals.get("errors", 0))
        out.counter("ledger_net_sync_rounds", "anti-entropy rounds run", sync.rounds if sync is not None else 0)

    def _tasks(self, out: Exposition, runner: ProjectionRunner) -> None:
        with runner.tasks.reading() as tasks:
            counts = tasks.count_by_status()
        out.gauge("ledger_net_tasks", "tasks known to the ledger, by status", [({"status": s}, n)
                                                                               for s, n in counts.items()])
        executor = self.network.executor
        stats = dict(executor.stats) if executor is not None else {}
        failures = dict(executor.failures) if executor is not None else {}
        out.counter("ledger_net_chunks_executed", "chunks this node ran in its sandbox", stats.get("chunks", 0))
        out.counter("ledger_net_sandbox_failures", "chunks that failed in this node's sandbox, by reason",
                    [({"reason": r}, n) for r, n in sorted(failures.items())])

    def _supply(self, out: Exposition, ledger: Ledger, runner: ProjectionRunner) -> None:
        with runner.balances.reading() as balances:
            totals = balances.totals()
        scale = 10 ** ledger.state.decimals
        parts = {"balance": totals["balance"], "escrow": totals["escrow"], "in_transit": totals["incoming"],
                 "vouchers": totals["vouchers"], "burnt": totals["burnt"]}
        out.gauge("ledger_net_credits_minted", "credits ever minted by the genesis issuers", totals["minted"] / scale)
        out.gauge("ledger_net_credits", "where the minted credits are now", [({"state": k}, v / scale)
                                                                             for k, v in parts.items()])
        out.gauge("ledger_net_credits_conserved", "1 if minted = balances + escrow + in transit + vouchers + burnt",
                  1 if totals["minted"] == sum(parts.values()) else 0)


def metrics_routes(network: MetricsPort) -> list[web.RouteDef]:
    """`GET /metrics` for a ComputeNetwork (any `MetricsPort`; wired when its books are open)."""
    metrics = NodeMetrics(network)

    async def get_metrics(request: web.Request) -> web.Response:
        text = await metrics.render()
        return web.Response(body=text.encode("utf-8"), headers={"Content-Type": CONTENT_TYPE})

    return [web.get("/metrics", get_metrics)]


__all__ = ["metrics_routes", "NodeMetrics", "Exposition", "heads_difference"]
