"""Blob fetches from one peer share a kept-alive connection (``NodeServer._blob_client``): a
second fetch does not open a new one, and the node closes the session when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
from aiohttp import web

from ledger_net.blob_names import name_of, pieces
from ledger_net.compute.blobs import ArrayBlob
from ledger_net.execution.blobs import BlobSink
from ledger_net.execution.partial_blobs import PartialBlob
from ledger_net.main import ComputeNetwork
from ledger_net.network.discovery import MANUAL
from ledger_net.network.server import BLOB_CONNECTIONS, BLOB_CONNECTIONS_PER_PEER
from tests.support.serving import serving

API = "/api/v1"


@asynccontextmanager
async def peer(name: str, data: bytes, connections: set[object]) -> AsyncIterator[str]:
    """A peer serving blob ``name`` whole, by range and its leaves, noting each connection's
    client address (one per TCP connection)."""

    async def get_pieces(request: web.Request) -> web.Response:
        connections.add(request.transport.get_extra_info("peername") if request.transport else None)
        return web.Response(body=pieces(name, data), content_type="application/octet-stream")

    async def get_blob(request: web.Request) -> web.Response:
        connections.add(request.transport.get_extra_info("peername") if request.transport else None)
        if "Range" not in request.headers:
            return web.Response(body=data, content_type="application/octet-stream")
        start, stop, _ = request.http_range.indices(len(data))
        return web.Response(status=206, body=data[start:stop], content_type="application/octet-stream",
                            headers={"Content-Range": f"bytes {start}-{stop - 1}/{len(data)}"})

    app = web.Application()
    app.add_routes([web.get(f"{API}/blobs/{{name}}/pieces", get_pieces), web.get(f"{API}/blobs/{{name}}", get_blob)])
    async with serving(app) as url:
        yield url


async def test_fetches_from_one_peer_reuse_one_connection_until_the_node_stops(async_node: ComputeNetwork) -> None:
    server, ledger = async_node.server, async_node.ledger
    assert server is not None and ledger is not None and ledger.store.blob_dir is not None
    data = bytes(ArrayBlob(np.random.default_rng(5).random((384, 1024))))  # 3 MiB: 4 pieces
    name = name_of(data)
    connections: set[object] = set()
    async with peer(name, data, connections) as url:
        for known in list(server.discovery.peers.values()):
            known.enabled = False
        server.discovery.add(url, MANUAL)
        for _ in range(2):
            sink = BlobSink(ledger.store, name)
            assert await server.fetch_blob(name, sink)
            sink.discard()
        partial = PartialBlob(name, ledger.store.blob_dir / ".partial")
        assert await server.fetch_pieces(name, partial, [1, 2])
        partial.discard()
        assert len(connections) == 1  # two whole fetches, a leaves list and a range: one connection
        session = server._blob_session
        assert session is not None and not session.closed
        await server.stop()
        assert session.closed and server._blob_session is None


async def test_a_stalling_peer_holds_only_its_own_connections(async_node: ComputeNetwork) -> None:
    """A peer that never answers can hold at most BLOB_CONNECTIONS_PER_PEER of the shared
    session's connections: with as many of its fetches waiting as the whole pool holds, a blob
    from another peer still arrives."""
    server, ledger = async_node.server, async_node.ledger
    assert server is not None and ledger is not None
    data = bytes(ArrayBlob(np.random.default_rng(6).random((256, 1024))))  # 2 MiB
    name = name_of(data)
    release = asyncio.Event()
    held: set[object] = set()

    async def stall(request: web.Request) -> web.Response:
        held.add(request.transport.get_extra_info("peername") if request.transport else None)
        await release.wait()
        return web.Response(status=404)

    app = web.Application()
    app.add_routes([web.get(f"{API}/blobs/{{name}}", stall)])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    staller = f"http://127.0.0.1:{runner.addresses[0][1]}"
    stalled = [asyncio.ensure_future(server._blob_client(staller, 60.0).blob_into(name, lambda b: None))
               for _ in range(BLOB_CONNECTIONS)]
    try:
        async with peer(name, data, set()) as honest:
            for known in list(server.discovery.peers.values()):
                known.enabled = False
            server.discovery.add(honest, MANUAL)
            sink = BlobSink(ledger.store, name)
            assert await asyncio.wait_for(server.fetch_blob(name, sink), 60)  # a hang guard, not a timing
            sink.discard()
        assert 0 < len(held) <= BLOB_CONNECTIONS_PER_PEER
    finally:
        release.set()
        await asyncio.gather(*stalled, return_exceptions=True)
        await runner.cleanup()
