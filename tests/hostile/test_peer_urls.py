"""Peers earn their place (issue 10, item 4): URLs announced in `node.joined` events by
throwaway keys cannot slow replication between honest nodes, nor steer a node's
requests to addresses it must not contact.

Two honest nodes replicate on loopback while an attacker announces 20 tarpit URLs
(ports that accept a connection and never answer) and a set of forbidden URLs
(link-local, cloud metadata, non-HTTP schemes, URLs with credentials). A transfer
still reaches the other honest node within a generous bound, no forbidden address
is ever contacted, and the tarpits end up out of rotation.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from ledger_net.ledger.identity import Identity
from ledger_net.network import client as client_module
from ledger_net.network.client import GuardedResolver, PeerClient
from ledger_net.network.discovery import LEDGER, Discovery, check_peer_url
from tests.support.replication import forge, start_cluster, stop_all
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

TARPITS = 20
LIVENESS_BOUND = 10.0  # seconds for an honest transfer to arrive (it takes well under 1 s unattacked)


class Listener:
    """A loopback port that accepts connections and never answers (a tarpit); counts them."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self._held: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self._held.append(writer)  # keep it open, say nothing

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for writer in self._held:
            writer.close()
        assert self.server is not None
        self.server.close()


async def announce(node: Any, urls: list[str], keys: list[Identity] | None = None) -> None:
    """Push one `node.joined` per URL, each signed by a throwaway key (fresh unless given)."""
    net = node.ledger.net
    keys = keys or [Identity.generate() for _ in urls]
    events = [forge(key, net=net, seq=1, prev=None, type="node.joined",
                    body={"name": f"mallory-{i}", "url": url, "node_type": "public"})
              for i, (url, key) in enumerate(zip(urls, keys, strict=False))]
    async with PeerClient(node.url) as client:
        report = await client.push(events)
    assert report["stored"] == len(urls), report


async def transfer_latency(sender: Any, receiver: Any, amount: int) -> float:
    """Seconds from a transfer's append on `sender` until `receiver` holds it."""
    started = time.monotonic()
    event = await sender.append("credit.transfer", {"to": receiver.id, "amount": amount})
    await wait_until(lambda: receiver.ledger.event(event.hash) is not None, LIVENESS_BOUND * 3,
                     interval=0.02, what="the transfer to replicate")
    return time.monotonic() - started


async def test_tarpit_urls_do_not_delay_honest_replication(tmp_path, monkeypatch):
    contacted: list[str] = []
    original = PeerClient.__init__

    def recording_init(self: PeerClient, url: str, *args: Any, **kwargs: Any) -> None:
        contacted.append(url)
        original(self, url, *args, **kwargs)

    monkeypatch.setattr(PeerClient, "__init__", recording_init)
    nodes = await start_cluster(tmp_path, 2)
    a, b = nodes
    tarpits = [Listener() for _ in range(TARPITS)]
    counter = Listener()  # a loopback port behind URLs that must never be contacted
    try:
        await a.append("credit.minted", {"to": a.id, "amount": 1000, "reason": "test"})
        await a.append("credit.minted", {"to": b.id, "amount": 1000, "reason": "test"})
        baseline = await transfer_latency(a, b, 1)
        ports = [await t.start() for t in tarpits]
        cport = await counter.start()
        forbidden = [f"ftp://127.0.0.1:{cport}", f"gopher://127.0.0.1:{cport}", "file:///etc/passwd",
                     f"http://user:secret@127.0.0.1:{cport}", "http://169.254.169.254/latest/meta-data",
                     "http://[fe80::1]:8080", "http://[::ffff:169.254.169.254]:80", "http://metadata.google.internal",
                     "http://100.100.100.200/latest", "http://0.0.0.0:80"]
        await announce(a, [f"http://127.0.0.1:{p}" for p in ports] + forbidden)
        await wait_until(lambda: all(n.ledger.store.count() == a.ledger.store.count() for n in nodes), 20,
                         what="the announcements to replicate")
        # both nodes have learned (and started probing) the tarpits
        await wait_until(lambda: sum(t.connections > 0 for t in tarpits) == TARPITS, 20,
                         what="the tarpits to be probed")
        latencies = [await transfer_latency(a, b, 2)]
        assert await b.receive_all() > 0
        latencies.append(await transfer_latency(b, a, 1))
        assert max(latencies) < LIVENESS_BOUND, (baseline, latencies)

        for node in nodes:
            discovery = node.server.discovery
            for port in ports:
                peer = discovery.by_url(f"http://127.0.0.1:{port}")
                assert peer is not None and peer.source == LEDGER and not peer.verified, peer
                assert peer.status in ("new", "unverified", "dropped") and not peer.last_sync, peer
                assert peer not in discovery.active()
            assert len(discovery.refused) == len(forbidden), discovery.refused
        assert counter.connections == 0
        hosts = {u.split("://", 1)[-1].split("/", 1)[0] for u in forbidden}
        assert not [u for u in contacted if any(h and h in u for h in hosts)], contacted
    finally:
        for listener in [*tarpits, counter]:
            if listener.server is not None:
                await listener.close()
        await stop_all(nodes)


async def test_peers_that_pass_the_probe_and_then_stall_do_not_delay_honest_replication(tmp_path):
    """The harder tarpit: each attacker URL answers the probe quickly as the key that
    announced it (so it is verified), then never answers `heads`. Honest exchanges keep
    their own lane and rounds do not wait for the stalled ones."""
    from aiohttp import web

    nodes = await start_cluster(tmp_path, 2, timeout=5.0)
    a, b = nodes
    keys = [Identity.generate() for _ in range(TARPITS)]
    stalled: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        prefix, _, rest = request.path.lstrip("/").partition("/")
        key = keys[int(prefix[1:])]
        if rest == "api/v1/info":
            return web.json_response({"node_id": key.node_id, "net": a.ledger.net, "events": 0, "last_offset": 0,
                                      "pending": 0, "frozen": {}})
        stalled.append(rest)
        await asyncio.sleep(3600)  # a tarpit after the probe
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        await a.append("credit.minted", {"to": a.id, "amount": 1000, "reason": "test"})
        await transfer_latency(a, b, 1)
        await announce(a, [f"http://127.0.0.1:{port}/m{i}" for i in range(TARPITS)], keys)
        await wait_until(lambda: sum(p.verified for p in a.server.discovery.peers.values()
                                     if p.url.startswith(f"http://127.0.0.1:{port}/")) == TARPITS, 20,
                         what="the stalling peers to pass their probes")
        # a lane-full of exchanges is stuck in them (on each node) while the transfers go
        await wait_until(lambda: len(stalled) >= 8, 20, what="exchanges with the stalling peers to start")
        latencies = [await transfer_latency(a, b, 2) for _ in range(3)]
        assert max(latencies) < LIVENESS_BOUND, latencies
        # the stalled exchanges time out (the first lane-full of them here) and count as
        # failures; the honest peer stays clean
        await wait_until(lambda: sum(p.failures > 0 for p in a.server.discovery.peers.values()
                                     if p.url.startswith(f"http://127.0.0.1:{port}/")) >= 4, 30,
                         what="the stalled exchanges to time out")
        honest = a.server.discovery.by_url(b.url)
        assert honest is not None and honest.failures == 0
        # a's own first exchange with b may still sit in the new peers' lane behind a stalled
        # one (b learned from the ledger is new to a): it completes, and cleanly, once they time out
        await wait_until(lambda: honest.last_ok is not None, 60, what="a's exchange with the honest peer")
        assert honest.failures == 0
    finally:
        await runner.cleanup()
        await stop_all(nodes)


def test_peer_url_policy() -> None:
    for url in ("http://127.0.0.1:5557", "https://node.example.org", "10.0.0.7:8000", "http://[::1]:9000"):
        assert check_peer_url(url).startswith(("http://", "https://"))
    for url in ("ftp://127.0.0.1:21", "file:///etc/passwd", "javascript:alert(1)://x", "http://169.254.1.1",
                "http://169.254.169.254/latest", "http://[fe80::1%25eth0]:80", "http://[::ffff:169.254.169.254]",
                "http://metadata.google.internal/computeMetadata", "http://[fd00:ec2::254]", "http://a:b@127.0.0.1",
                "http://", "http://0.0.0.0:80", "http://224.0.0.1"):
        with pytest.raises(ValueError):
            check_peer_url(url)
    assert check_peer_url("http://169.254.1.1:80", allow_link_local=True) == "http://169.254.1.1:80"


def test_discovery_drops_a_failing_ledger_peer_and_keeps_configured_ones() -> None:
    now = [1000.0]
    discovery = Discovery(seeds=["http://127.0.0.1:1"], backoff_base=0.1, backoff_max=1.0, drop_after=3,
                          drop_retry=100.0, clock=lambda: now[0])
    seed = discovery.by_url("http://127.0.0.1:1")
    announced = discovery.add("http://127.0.0.1:2", LEDGER, "ab" * 32)
    assert seed is not None and announced is not None
    assert discovery.due() == [seed] and discovery.to_probe() == [announced]  # unverified: probed, not synced
    with pytest.raises(Exception, match="refused peer URL"):
        discovery.add("http://169.254.169.254", "manual")
    assert discovery.add("ftp://127.0.0.1:3", LEDGER, "cd" * 32) is None and discovery.refused
    for _ in range(3):
        discovery.mark_failed(announced, "probe failed")
        discovery.mark_failed(seed, "down")
        now[0] += 2.0
    assert announced.dropped and announced.status == "dropped" and announced not in discovery.to_probe()
    assert not seed.dropped and seed in discovery.due()  # configured peers back off, never drop
    now[0] += 100.0
    assert announced in discovery.to_probe()  # a dropped peer is probed again after drop_retry
    discovery.mark_probed(announced, "ab" * 32, None)
    assert announced in discovery.due() and not announced.dropped


async def test_guarded_resolver_refuses_names_that_resolve_to_link_local(monkeypatch) -> None:
    resolver = GuardedResolver()

    async def fake(host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        table = {"rebound.example": ["169.254.169.254"], "mixed.example": ["169.254.1.1", "127.0.0.1"]}
        return [{"hostname": host, "host": ip, "port": port, "family": family, "proto": 0, "flags": 0}
                for ip in table[host]]

    monkeypatch.setattr(resolver._inner, "resolve", fake)
    with pytest.raises(OSError, match="does not contact"):
        await resolver.resolve("rebound.example", 80)
    assert [r["host"] for r in await resolver.resolve("mixed.example", 80)] == ["127.0.0.1"]
    await resolver.close()
    assert client_module.guarded_session is not None
