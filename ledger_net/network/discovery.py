"""The peer table: seed URLs plus the URLs nodes announce in `node.joined` /
`node.updated` events (the ledger is its own directory), with exponential backoff
for peers that fail, and an operator's connect/disconnect on top.

Peers earn their place. A URL only enters the table from a signed event or the
node's own configuration (seeds, an operator's connect), and only if it is an
http(s) URL that does not point at a link-local or cloud-metadata address
(`check_peer_url`; `allow_link_local` turns that off). A URL learned from the
ledger is *unverified* until a probe (`GET /api/v1/info`, short timeout, run by
the synchronizer) shows the node the event named answers there; only verified
peers are synced with, asked for blobs or scraped for metrics. A ledger peer that
keeps failing is dropped (`drop_after` failures) and probed again only after
`drop_retry` seconds, so fake `node.joined` URLs cost a node a few short probes.

It holds no sockets: the synchronizer asks it which peers are due, reports each
outcome back, and the table decides when to try a dead peer again.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import NetworkError, RefusedPeerURL
from ..ledger.chain import Applied
from ..projections.rows import NodeRow

SEED = "seed"
LEDGER = "ledger"
MANUAL = "manual"

DROP_AFTER = 6  # consecutive failures after which a ledger-learned peer leaves the table's rotation
DROP_RETRY = 600.0  # seconds before a dropped peer is probed again
# Cloud instance-metadata endpoints (AWS/GCP/Azure/OpenStack use 169.254.169.254, which is
# link-local anyway; these are the ones that are not) and their well-known names.
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254"),
                                ipaddress.ip_address("169.254.169.254")})
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.com", "metadata.tencentyun.com"})

log = logging.getLogger(__name__)


def normalize_url(url: str) -> str:
    """`host:port` or a URL, as `scheme://host[:port][/path]` without trailing slashes."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{rest.rstrip('/')}"


def address_refused(address: str) -> str | None:
    """Why a peer may not be contacted at this IP address (None: it may). Loopback and
    private ranges are allowed (tests and LANs use them); link-local (169.254/16,
    fe80::/10), metadata, unspecified and multicast addresses are not."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if ip.is_link_local:
        return f"{address} is a link-local address"
    if ip.is_unspecified or ip.is_multicast:
        return f"{address} is not a peer address"
    return None


def check_peer_url(url: str, *, allow_link_local: bool = False) -> str:
    """The normalized URL if a node may fetch from it; ValueError naming why not
    (not http/https, credentials or no host in it, a link-local or metadata address)."""
    url = normalize_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url[:200]!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url[:200]!r}: only http and https peers are contacted, not {parts.scheme[:20]!r}")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError(f"{url[:200]!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{url[:200]!r}: a peer URL carries no credentials")
    if port == 0:
        raise ValueError(f"{url[:200]!r}: port 0 is not a peer's port")
    if not allow_link_local:
        if host in METADATA_NAMES:
            raise ValueError(f"{url[:200]!r}: {host} is a cloud metadata name")
        reason = address_refused(host)
        if reason is not None:
            raise ValueError(f"{url[:200]!r}: {reason}")
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
    verified: bool = False  # a probe (or a clean exchange) showed the expected node answers here
    dropped: bool = False  # failed too often: out of rotation until `next_attempt` (a long retry)

    @property
    def status(self) -> str:
        if self.is_self:
            return "self"
        if not self.enabled:
            return "disconnected"
        if self.dropped:
            return "dropped"
        if not self.verified:
            return "unverified" if self.failures else "new"
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
                 drop_after: int = DROP_AFTER, drop_retry: float = DROP_RETRY, allow_link_local: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.self_url = normalize_url(self_url) if self_url else None
        self.self_id = self_id
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_peers = max_peers
        self.drop_after = drop_after
        self.drop_retry = drop_retry
        self.allow_link_local = allow_link_local
        self.clock = clock
        self.peers: dict[str, Peer] = {}
        self.disabled_ids: set[str] = set()
        self.refused: dict[str, str] = {}  # announced URLs never contacted, and why (bounded)
        for url in seeds:
            self.add(url, SEED)

    # --------------------------------------------------------------- adding
    def add(self, url: str, source: str = MANUAL, node_id: str | None = None) -> Peer | None:
        """Add (or re-enable, for manual adds) a peer URL; our own URL is ignored. A URL
        that `check_peer_url` refuses is never contacted: from the ledger it is noted in
        `refused` and skipped, from configuration (seed, manual) it raises NetworkError."""
        try:
            url = check_peer_url(url, allow_link_local=self.allow_link_local)
        except ValueError as exc:
            if source == LEDGER:
                if len(self.refused) < 1024:
                    self.refused[str(url)[:300]] = str(exc)
                return None
            raise RefusedPeerURL(f"refused peer URL: {exc}") from None
        if url == self.self_url or (node_id is not None and node_id == self.self_id):
            return None
        peer = self.peers.get(url)
        if peer is None:
            if len(self.peers) >= self.max_peers and not self._evict():
                return None
            peer = self.peers[url] = Peer(url=url, source=source, node_id=node_id, verified=source != LEDGER)
        else:
            if node_id and not peer.node_id:
                peer.node_id = node_id
            if source in (SEED, MANUAL) and peer.source == LEDGER:
                peer.source = source
                peer.verified, peer.dropped = True, False
        if node_id is not None and node_id in self.disabled_ids:
            peer.enabled = False
        if source == MANUAL:
            peer.enabled = True
            peer.failures = 0
            peer.next_attempt = 0.0
            peer.dropped = False
            if node_id:
                self.disabled_ids.discard(node_id)
        return peer

    def _evict(self) -> bool:
        """Make room for a new URL by forgetting one ledger peer that never proved itself."""
        for url, peer in self.peers.items():
            if peer.source == LEDGER and not peer.verified and (peer.dropped or peer.failures):
                del self.peers[url]
                return True
        return False

    def learn_from_nodes(self, nodes: Mapping[str, NodeRow]) -> int:
        """Add URLs from the nodes projection (node_id -> row with `url`, `status`)."""
        added = 0
        for node_id, row in list(nodes.items()):
            url = row["url"]
            if url and row["status"] != "offline" and self.by_url(url) is None \
                    and self.add(url, LEDGER, node_id) is not None:
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
        """Verified, enabled peers whose backoff has expired: whom to sync with now."""
        now = self.clock()
        return [p for p in self.active() if p.next_attempt <= now]

    def active(self) -> list[Peer]:
        """Peers this node talks to (sync, blobs, metrics): enabled, verified, not dropped."""
        return [p for p in self.peers.values() if p.enabled and not p.is_self and p.verified and not p.dropped]

    def to_probe(self) -> list[Peer]:
        """Ledger-learned peers waiting for a probe (new, or their backoff/drop delay expired)."""
        now = self.clock()
        return [p for p in self.peers.values()
                if p.enabled and not p.is_self and not p.verified and p.next_attempt <= now]

    def describe(self) -> list[dict[str, Any]]:
        """The known peers (never this node) as JSON-ready rows. Not called ``list``: a method of
        that name shadows the builtin in every later annotation of this class."""
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
        if peer.failures or peer.last_ok is None:
            log.info("peer up: %s (%s)", peer.url, (peer.node_id or "?")[:16])
        peer.failures = 0
        peer.last_error = None
        peer.last_ok = time.time()
        peer.next_attempt = 0.0
        peer.verified = True
        peer.dropped = False

    def mark_failed(self, peer: Peer, error: str, *, penalty: int = 1) -> float:
        """Record a failure; the peer is retried after base * 2**(failures-1) (jittered, capped).
        A ledger-learned peer that reaches `drop_after` failures is dropped: out of rotation,
        unverified again, probed only after `drop_retry` seconds."""
        if not peer.failures and peer.last_ok is not None:
            log.info("peer down: %s (%s)", peer.url, error[:200])
        peer.failures += penalty
        peer.last_error = error
        delay = min(self.backoff_max, self.backoff_base * (2 ** min(peer.failures - 1, 30)))
        delay *= 0.75 + random.random() * 0.5
        if peer.source == LEDGER and peer.failures >= self.drop_after:
            if not peer.dropped:
                log.info("peer dropped from gossip after %d failures: %s", peer.failures, peer.url)
            peer.dropped = True
            peer.verified = False
            delay = max(delay, self.drop_retry)
        peer.next_attempt = self.clock() + delay
        return delay

    def mark_probed(self, peer: Peer, node_id: str | None, net: str | None) -> None:
        """A probe found the announced node at the peer's URL: it may be synced with."""
        self.identify(peer, node_id, net)
        peer.verified = True
        peer.dropped = False
        peer.failures = 0
        peer.last_error = None
        peer.next_attempt = 0.0

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
