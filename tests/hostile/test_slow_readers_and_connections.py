"""Memory and sockets stay bounded under hostile clients (issue 10, items 6 and 7).

Clients that ask for big feed pages or follow the NDJSON feed and then never read are
dropped once a write step stalls for `write_timeout`, instead of being buffered; the
bytes of pages in flight stay within the send budget (plus one small page per reader),
and the process's RSS does not grow with them. A flood of idle sockets beyond
`max_connections` evicts idle connections instead of exhausting descriptors, and the
soft open-files limit is raised at start. Honest replication goes on throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket

import aiohttp
import pytest

from ledger_net.network.limits import MIN_PAGE_BYTES
from ledger_net.network.protocol import API
from tests.support.replication import converged, start_cluster, stop_all
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

LIVENESS_BOUND = 20.0
SLOW_READERS = 150
PAD = 60 << 10


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def slow_socket(port: int, path: str) -> socket.socket:
    """A client that sends one request and never reads the answer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    sock.setblocking(False)
    return sock


async def honest_transfer_arrives(src, dst, amount: int = 1) -> None:
    transfer = await src.append("credit.transfer", {"to": dst.id, "amount": amount})
    await wait_until(lambda: dst.ledger.event(transfer.hash) is not None, LIVENESS_BOUND,
                     what="an honest transfer to reach the other node")


async def test_slow_readers_are_dropped_and_memory_stays_bounded(tmp_path):
    nodes = await start_cluster(tmp_path, 2, write_timeout=1.0, idle_timeout=3.0)
    server, other = nodes
    await server.append("credit.minted", {"to": server.id, "amount": 10 ** 6, "reason": "seed"})
    for i in range(60):  # ~3.6 MB: a full 4 MiB page for every reader of the feed
        await server.append("node.updated", {"capabilities": {"pad": chr(97 + i % 26) * PAD}})
    await wait_until(lambda: converged(nodes), 30, what="the cluster to settle")
    api = server.server.api
    sockets: list[socket.socket] = []
    peak_rss = before = rss_bytes()
    peak_used = 0
    try:
        for i in range(SLOW_READERS):
            path = f"{API}/feed?after=0&limit=5000" if i % 3 else f"{API}/feed/stream?after=0"
            sockets.append(slow_socket(server.server.port, path))
            if i % 25 == 0:
                await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30

        def all_dropped() -> bool:
            nonlocal peak_rss, peak_used
            peak_rss = max(peak_rss, rss_bytes())
            peak_used = max(peak_used, api.budget.used)
            return server.server.guard.open <= 10 and api.budget.used == 0

        transfer = asyncio.create_task(honest_transfer_arrives(server, other))
        await wait_until(all_dropped, 30, what="the slow readers to be dropped")
        await transfer
        assert loop.time() < deadline
        # the pages in flight never exceeded the budget plus one small page per reader
        assert peak_used <= api.budget.total + SLOW_READERS * (MIN_PAGE_BYTES + PAD)
        assert api.budget.peak <= api.budget.total + SLOW_READERS * (MIN_PAGE_BYTES + PAD)
        # 150 buffered 3.6 MB pages would be ~540 MB; the bound allows well under half that
        assert peak_rss - before < 200 << 20, (peak_rss - before) >> 20
        # the dropped sockets see their connection closed
        for sock in sockets[:10]:
            sock.setblocking(True)
            sock.settimeout(10)
            with _drain(sock):
                pass
        async with aiohttp.ClientSession() as session, session.get(f"{server.url}{API}/info") as resp:
            assert resp.status == 200
    finally:
        for sock in sockets:
            sock.close()
        await stop_all(nodes)


class _drain:
    """Read a dropped socket to its end: it must end (reset or EOF), not hang."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def __enter__(self) -> None:
        try:
            while self.sock.recv(1 << 16):
                pass
        except ConnectionResetError:
            pass

    def __exit__(self, *exc: object) -> bool:
        return False


async def test_a_connection_flood_beyond_the_cap_does_not_stop_replication(tmp_path):
    cap = 48
    nodes = await start_cluster(tmp_path, 2, max_connections=cap, idle_timeout=5.0)
    target, other = nodes
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        assert soft == hard  # raised at node start
    await target.append("credit.minted", {"to": target.id, "amount": 10 ** 6, "reason": "seed"})
    await wait_until(lambda: converged(nodes), 20, what="the cluster to settle")
    port = target.server.port
    flood: list[socket.socket] = []
    max_open = 0
    stop = asyncio.Event()

    async def attacker() -> None:
        nonlocal max_open
        for i in range(600):  # bounded: 600 idle sockets, opened in bursts of 20
            if stop.is_set():
                return
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(("127.0.0.1", port))
                flood.append(sock)
            except OSError:
                pass
            max_open = max(max_open, target.server.guard.open)
            if i % 20 == 0:
                await asyncio.sleep(0.01)

    try:
        task = asyncio.create_task(attacker())
        await wait_until(lambda: len(flood) >= 200, 20, what="the flood to get going")
        await honest_transfer_arrives(target, other, 5)
        assert await other.receive_all() == 1
        transfer = await other.append("credit.transfer", {"to": target.id, "amount": 1})
        await wait_until(lambda: target.ledger.event(transfer.hash) is not None, LIVENESS_BOUND,
                         what="a transfer into the flooded node")
        await task
        max_open = max(max_open, target.server.guard.open)
        assert max_open <= cap + 1, max_open
        assert target.server.guard.evicted > 0
        async with aiohttp.ClientSession() as session, session.get(f"{target.url}{API}/info") as resp:
            assert resp.status == 200
    finally:
        stop.set()
        for sock in flood:
            sock.close()
        await stop_all(nodes)
