"""The peer table: seed URLs plus the URLs nodes announce in `node.joined` /
`node.updated` events (the ledger is its own directory), with exponential backoff
for peers that fail, and an operator's connect/disconnect on top.

It holds no sockets: the synchronizer asks it which peers are due, reports each
outcome back, and the table decides when to try a dead peer again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from ..errors import NetworkError
from ..ledger.chain import Applied

SEED = "seed"
LEDGER = "ledger"
MANUAL = "manual"


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    return url


@dataclass
class Peer:
    """What we know of one peer URL."""

    url: str
    source: str = LEDGER
    node_id: str | None = None
    net: str | None = None
    enabled: bool = True
    is_self: bool = False
    failures: int = 0
    next_attempt: float = 0.0
    last_ok: float | None = None
    last_error: str | None = None
    last_sync: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.is_self:
            return "self"
        if not self.enabled:
            return "disconnected"
        if self.failures:
            return "unreachable"
        return "connected" if self.last_ok else "new"

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "node_id": self.node_id, "source": self.source, "status": self.status,
                "failures": self.failures, "last_ok": self.last_ok, "last_error": self.last_error,
                "next_attempt": self.next_attempt, "last_sync": dict(self.last_sync)}


class Discovery:
    """Peers by URL; learns URLs from the log, backs off dead peers."""

    def __init__(self, *, self_url: str | None = None, self_id: str | None = None, seeds: Iterable[str] = (),
                 backoff_base: float = 0.5, backoff_max: float = 60.0, max_peers: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.self_url = normalize_url(self_url) if self_url else None
        self.self_id = self_id
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_peers = max_peers
        self.clock = clock
        self.peers: dict[str, Peer] = {}
        self.disabled_ids: set[str] = set()
        for url in seeds:
            self.add(url, SEED)

    # --------------------------------------------------------------- adding
    def add(self, url: str, source: str = MANUAL, node_id: str | None = None) -> Peer | None:
        """Add (or re-enable, for manual adds) a peer URL; our own URL is ignored."""
        url = normalize_url(url)
        if url == self.self_url or (node_id is not None and node_id == self.self_id):
            return None
        peer = self.peers.get(url)
        if peer is None:
            if len(self.peers) >= self.max_peers:
                return None
            peer = self.peers[url] = Peer(url=url, source=source, node_id=node_id)
        else:
            if node_id and not peer.node_id:
                peer.node_id = node_id
            if source in (SEED, MANUAL) and peer.source == LEDGER:
                peer.source = source
        if node_id is not None and node_id in self.disabled_ids:
            peer.enabled = False
        if source == MANUAL:
            peer.enabled = True
            peer.failures = 0
            peer.next_attempt = 0.0
            if node_id:
                self.disabled_ids.discard(node_id)
        return peer

    def learn_from_nodes(self, nodes: dict[str, dict[str, Any]]) -> int:
        """Add URLs from the nodes projection (node_id -> row with `url`, `status`)."""
        added = 0
        for node_id, row in list(nodes.items()):
            url = row.get("url")
            if url and row.get("status") != "offline" and self.by_url(url) is None:
                if self.add(url, LEDGER, node_id) is not None:
                    added += 1
        return added

    def on_applied(self, applied: list[Applied]) -> None:
        """Ledger listener (call on the event loop): learn URLs as `node.*` events commit."""
        for item in applied:
            event = item.event
            if item.reason is not None or not event.type.startswith("node."):
                continue
            url = event.body.get("url")
            if event.type == "node.left":
                for peer in self.peers.values():
                    if peer.node_id == event.author and peer.source == LEDGER:
                        peer.enabled = False
            elif url:
                self.add(url, LEDGER, event.author)

    # --------------------------------------------------------------- lookups
    def by_url(self, url: str) -> Peer | None:
        return self.peers.get(normalize_url(url))

    def by_node(self, node_id: str) -> list[Peer]:
        return [p for p in self.peers.values() if p.node_id == node_id]

    def due(self) -> list[Peer]:
        """Enabled peers whose backoff has expired."""
        now = self.clock()
        return [p for p in self.peers.values() if p.enabled and not p.is_self and p.next_attempt <= now]

    def active(self) -> list[Peer]:
        return [p for p in self.peers.values() if p.enabled and not p.is_self]

    def list(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.peers.values() if not p.is_self]

    # --------------------------------------------------------------- outcomes
    def identify(self, peer: Peer, node_id: str | None = None, net: str | None = None) -> None:
        """Record who answers at the peer's URL (without judging the exchange yet)."""
        if node_id:
            peer.node_id = node_id
            if node_id == self.self_id:
                peer.is_self = True
            if node_id in self.disabled_ids:
                peer.enabled = False
        if net:
            peer.net = net

    def mark_ok(self, peer: Peer, node_id: str | None = None, net: str | None = None) -> None:
        self.identify(peer, node_id, net)
        peer.failures = 0
        peer.last_error = None
        peer.last_ok = time.time()
        peer.next_attempt = 0.0

    def mark_failed(self, peer: Peer, error: str, *, penalty: int = 1) -> float:
        """Record a failure; the peer is retried after base * 2**(failures-1) (jittered, capped)."""
        peer.failures += penalty
        peer.last_error = error
        delay = min(self.backoff_max, self.backoff_base * (2 ** min(peer.failures - 1, 30)))
        delay *= 0.75 + random.random() * 0.5
        peer.next_attempt = self.clock() + delay
        return delay

    # --------------------------------------------------------------- operator
    def disconnect(self, node_id_or_url: str) -> bool:
        """Stop syncing with a node (by id or URL) until `connect`; NetworkError if unknown."""
        peers = self._find(node_id_or_url)
        for peer in peers:
            peer.enabled = False
            if peer.node_id:
                self.disabled_ids.add(peer.node_id)
        return True

    def enable(self, node_id_or_url: str) -> list[Peer]:
        peers = self._find(node_id_or_url)
        for peer in peers:
            peer.enabled = True
            peer.failures = 0
            peer.next_attempt = 0.0
            if peer.node_id:
                self.disabled_ids.discard(peer.node_id)
        return peers

    def _find(self, node_id_or_url: str) -> list[Peer]:
        peers = self.by_node(node_id_or_url)
        if not peers and (":" in node_id_or_url or "/" in node_id_or_url):
            peer = self.by_url(node_id_or_url)
            peers = [peer] if peer else []
        if not peers:
            raise NetworkError(f"unknown node {node_id_or_url[:64]!r}: not a seed, not announced in the ledger, "
                               "not added by URL")
        return peers
