"""A peer that lies about a ``b3t`` blob's pieces: a node fetching rows of it by range checks
the leaves list against the name and every piece against its leaf, uses nothing that failed,
and gets the rows from an honest peer instead (``execution.partial_blobs``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web

from ledger_net.blob_names import LEAF, PIECE, BlobMismatch, is_b3t_name, name_of, pieces
from ledger_net.compute.blobs import ArrayBlob
from ledger_net.execution.partial_blobs import PartialBlob, array_layout
from ledger_net.main import ComputeNetwork
from ledger_net.network.discovery import MANUAL
from tests.support.serving import serving

API = "/api/v1"
pytestmark = pytest.mark.timeout(120)


def _matrix() -> tuple[np.ndarray, bytes]:
    a = np.random.default_rng(3).random((640, 1024))  # 5 MiB: 6 pieces, rows cross piece edges
    return a, bytes(ArrayBlob(a))


@asynccontextmanager
async def peer(name: str, data: bytes, lie: str | None) -> AsyncIterator[str]:
    """A peer serving blob ``name``: honestly, or with one piece flipped (``lie="piece"``), one
    leaf of its leaves list flipped (``lie="leaves"``), or more bytes than asked for, to the
    blob's end (``lie="overlong"``)."""
    served = bytearray(data)
    if lie == "piece":
        served[2 * PIECE + 5] ^= 0xFF
    leaves = bytearray(pieces(name, data))
    if lie == "leaves":
        leaves[LEAF + 1] ^= 0xFF
    hits = {"range": 0}

    async def get_pieces(request: web.Request) -> web.Response:
        return web.Response(body=bytes(leaves), content_type="application/octet-stream")

    async def get_blob(request: web.Request) -> web.Response:
        rng = request.http_range
        start, stop, _ = rng.indices(len(served))
        if lie == "overlong":
            stop = len(served)
        hits["range"] += 1
        return web.Response(status=206, body=bytes(served[start:stop]), content_type="application/octet-stream",
                            headers={"Content-Range": f"bytes {start}-{stop - 1}/{len(served)}"})

    app = web.Application()
    app.add_routes([web.get(f"{API}/blobs/{{name}}/pieces", get_pieces), web.get(f"{API}/blobs/{{name}}", get_blob)])
    async with serving(app) as url:
        yield url


def _only_peer(node: ComputeNetwork, url: str) -> None:
    assert node.server is not None
    discovery = node.server.discovery
    for known in list(discovery.peers.values()):
        known.enabled = False
    discovery.add(url, MANUAL)


def _partial_files(node: ComputeNetwork) -> list[Path]:
    assert node.ledger is not None and node.ledger.store.blob_dir is not None
    return [p for p in (node.ledger.store.blob_dir / ".partial").glob(".part.*")]


@pytest.mark.parametrize("lie", ["piece", "leaves", "overlong"])
async def test_rows_from_a_lying_peer_are_refused_and_an_honest_peer_gives_them(
        async_node: ComputeNetwork, lie: str) -> None:
    a, data = _matrix()
    name = name_of(data)
    assert is_b3t_name(name) and async_node.engine is not None and async_node.engine.rows is not None
    rows = async_node.engine.rows
    offset, row_bytes, _ = array_layout(data[:PIECE])
    first, end = 300, 420  # bytes in pieces 2 and 3 (piece 2 is the one the liar flips)
    assert (offset + first * row_bytes) // PIECE == 2
    async with peer(name, data, lie) as liar:
        _only_peer(async_node, liar)
        assert await rows.rows(name, [(first, end)]) is None  # refused: the caller would fetch whole
        # nothing that failed its check was kept: a lying leaves list (or a first answer that is not
        # the range asked for) leaves no partial blob at all, a lying piece leaves the pieces that
        # matched (the header's) and not that one
        assert rows.held(name) == ({0} if lie == "piece" else set())
        assert len(_partial_files(async_node)) == (1 if lie == "piece" else 0)
        assert async_node.ledger is not None and async_node.ledger.store.blob_path(name) is None
    async with peer(name, data, None) as honest:
        _only_peer(async_node, honest)
        path = await rows.rows(name, [(first, end)])
    assert path is not None and Path(path).stat().st_size == len(data)
    held = Path(path).read_bytes()
    assert held[offset + first * row_bytes:offset + end * row_bytes] == data[offset + first * row_bytes:
                                                                             offset + end * row_bytes]
    assert held[:offset] == data[:offset]  # the header's piece too
    assert 0 < rows.fetched_pieces < len(data) // PIECE  # not the whole blob
    assert async_node.ledger.store.blob_path(name) is None  # a partial blob is never the store's


def test_a_partial_blob_writes_a_piece_only_once_it_matches_its_leaf(tmp_path: Path) -> None:
    _, data = _matrix()
    name = name_of(data)
    leaves = pieces(name, data)
    partial = PartialBlob(name, tmp_path)
    tampered = bytearray(leaves)
    tampered[5] ^= 1
    partial.offer_leaves(bytes(tampered))
    with pytest.raises(BlobMismatch):
        partial.begin(len(data))
    assert not partial.knows_size() and list(tmp_path.iterdir()) == []
    partial.offer_leaves(leaves)
    with pytest.raises(BlobMismatch):
        partial.begin(len(data) + 1)  # the size is bound by the name as well
    partial.offer_leaves(leaves)
    partial.begin(len(data))
    bad = bytearray(data[PIECE:2 * PIECE])
    bad[0] ^= 1
    with pytest.raises(BlobMismatch):
        partial.piece(1, bytes(bad))
    assert partial.have == set()
    write = partial.writer(1)
    for start in range(PIECE, 3 * PIECE, 300_001):  # any slicing: pieces are cut and checked whole
        write(data[start:min(start + 300_001, 3 * PIECE)])
    assert partial.have == {1, 2} and partial.missing_runs(range(6)) == [(0, 1), (3, 6)]
    assert partial.holds(PIECE, 3 * PIECE) and not partial.holds(0, PIECE + 1)
    partial.discard()
