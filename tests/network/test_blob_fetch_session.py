"""Blob fetches from one peer share a kept-alive connection (``NodeServer._blob_client``): a
second fetch does not open a new one, and the node closes the session when it stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
from aiohttp import web

from ledger_net.blob_names import PIECE, name_of
from ledger_net.compute.blobs import ArrayBlob
from ledger_net.execution.blobs import BlobSink
from ledger_net.execution.partial_blobs import PartialBlob
from ledger_net.main import ComputeNetwork
from ledger_net.network.discovery import MANUAL

API = "/api/v1"


@asynccontextmanager
async def peer(name: str, data: bytes, connections: set[object]) -> AsyncIterator[str]:
    """A peer serving blob ``name`` whole, by range and its leaves, noting each connection's
    client address (one per TCP connection)."""
    from ledger_net.blob_names import pieces

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
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


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
