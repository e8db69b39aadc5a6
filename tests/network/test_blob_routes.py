"""The blob routes over HTTP: a blob by either name form, byte ranges (file and database blobs),
a ``b3t`` blob's leaves list checked by the fetcher, and 4xx JSON for what cannot be served."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from ledger_net.blob_names import (
    LEAF,
    PIECE,
    PieceHasher,
    check_piece,
    check_pieces,
    is_b3t_name,
    piece_span,
    pieces_covering,
)
from ledger_net.main import ComputeNetwork
from tests.support.nodes import url_of

API = "/api/v1"


def _data(n: int) -> bytes:
    return bytes((i * 7) % 253 for i in range(n))


async def test_a_range_of_a_b3t_blob_is_checked_piece_by_piece(async_node: ComputeNetwork) -> None:
    assert async_node.ledger is not None
    data = _data(2 * PIECE + 1000)
    name = async_node.ledger.store.put_new_blob(data)
    assert is_b3t_name(name) and async_node.ledger.store.blob_path(name) is not None
    base = f"{url_of(async_node)}{API}/blobs/{name}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/pieces") as resp:
            assert resp.status == 200 and resp.content_type == "application/octet-stream"
            leaves = await resp.read()
        assert len(leaves) == 3 * LEAF
        check_pieces(name, len(data), leaves)
        start, end = PIECE - 10, 2 * PIECE + 10  # spans three pieces
        first, last = pieces_covering(len(data), start, end)[0], pieces_covering(len(data), start, end)[-1]
        lo, hi = piece_span(len(data), first)[0], piece_span(len(data), last)[1]
        async with http.get(base, headers={"Range": f"bytes={lo}-{hi - 1}"}) as resp:
            assert resp.status == 206
            assert resp.headers["Content-Range"] == f"bytes {lo}-{hi - 1}/{len(data)}"
            got = await resp.read()
        assert got == data[lo:hi]
        for index in range(first, last + 1):
            a, b = piece_span(len(data), index)
            check_piece(leaves, index, got[a - lo:b - lo])
        async with http.get(base) as resp:
            assert resp.status == 200 and await resp.read() == data


async def test_database_blobs_answer_ranges_and_old_names_have_no_pieces(async_node: ComputeNetwork) -> None:
    assert async_node.ledger is not None
    data = _data(5000)
    name = async_node.ledger.store.put_new_blob(data)
    assert name == hashlib.sha256(data).hexdigest()  # small blobs keep the SHA-256 form
    base = f"{url_of(async_node)}{API}/blobs/{name}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base, headers={"Range": "bytes=100-199"}) as resp:
            assert resp.status == 206 and resp.headers["Content-Range"] == "bytes 100-199/5000"
            assert await resp.read() == data[100:200]
        async with http.get(base, headers={"Range": "bytes=-10"}) as resp:
            assert resp.status == 206 and await resp.read() == data[-10:]
        async with http.get(base, headers={"Range": "bytes=5000-"}) as resp:
            assert resp.status == 416 and (await resp.json())["error"]["code"] == "bad_range"
            assert resp.headers["Content-Range"] == "bytes */5000"
        async with http.get(f"{base}/pieces") as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == "no_pieces"
        async with http.get(f"{url_of(async_node)}{API}/blobs/b3t:{'0' * 64}/pieces") as resp:
            assert resp.status == 404 and (await resp.json())["error"]["code"] == "unknown_blob"
        async with http.get(f"{url_of(async_node)}{API}/blobs/b3t:{'0' * 63}") as resp:
            assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_hash"


async def test_a_small_blob_with_a_b3t_name_is_a_file_not_a_row(async_node: ComputeNetwork) -> None:
    """New blobs under a piece get SHA-256 names, but a peer may name a small blob b3t (the
    form allows it): it is kept as a file, since the database's blobs.hash column is 64 wide."""
    assert async_node.ledger is not None
    data = _data(1000)
    hasher = PieceHasher()
    hasher.update(data)
    name = hasher.name()
    async_node.ledger.store.put_blob(name, data)
    assert async_node.ledger.store.blob_path(name) is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url_of(async_node)}{API}/blobs/{name}/pieces") as resp:
            assert resp.status == 200
            leaves = await resp.read()
        check_pieces(name, len(data), leaves)
        async with http.get(f"{url_of(async_node)}{API}/blobs/{name}", headers={"Range": "bytes=10-19"}) as resp:
            assert resp.status == 206 and await resp.read() == data[10:20]


async def test_pieces_come_from_the_leaves_kept_with_the_blob_and_a_corrupt_sidecar_is_rebuilt(
        async_node: ComputeNetwork, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store keeps a b3t blob's leaves when it names it, so /pieces does not hash the blob
    again; a sidecar that does not match the name is rebuilt from the blob, never served."""
    from ledger_net.ledger.store import blobs as store_blobs

    assert async_node.ledger is not None
    store = async_node.ledger.store
    data, other = _data(3 * PIECE + 5), _data(2 * PIECE + 7)[::-1]
    name, name2 = store.put_new_blob(data), store.put_new_blob(other)
    h, h2 = PieceHasher(), PieceHasher()
    h.update(data)
    h2.update(other)
    sidecar = store._leaves_file(name2)
    assert store._leaves_file(name).read_bytes() == h.leaves() and sidecar.read_bytes() == h2.leaves()
    sidecar.write_bytes(bytes(LEAF) + h2.leaves()[LEAF:])  # a corrupt first leaf

    def no_rehash(*_: object) -> bytes:
        raise AssertionError("the blob was hashed again")

    base = f"{url_of(async_node)}{API}/blobs"
    async with aiohttp.ClientSession() as http:
        with monkeypatch.context() as patch:
            patch.setattr(store_blobs, "pieces", no_rehash)
            async with http.get(f"{base}/{name}/pieces") as resp:
                assert resp.status == 200 and await resp.read() == h.leaves()
        async with http.get(f"{base}/{name2}/pieces") as resp:
            assert resp.status == 200 and await resp.read() == h2.leaves()
    assert sidecar.read_bytes() == h2.leaves()  # rebuilt
