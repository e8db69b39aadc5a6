"""Rows of an array blob fetched piece by piece (``execution.partial_blobs``), with an in-process
peer: only the pieces holding the header and the rows asked for are fetched, two chunks of the
same blob share what is already held, a blob whose every piece is in moves into the store, and
a chunk fetches the blobs it needs whole before its rows."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ledger_net.blob_names import PIECE, name_of, pieces, pieces_covering
from ledger_net.compute.blobs import ArrayBlob
from ledger_net.execution.blobs import BlobSink, BlobStore
from ledger_net.execution.executor import ChunkExecutor
from ledger_net.execution.partial_blobs import PartialBlob, RowFetches, array_layout, row_ranges
from ledger_net.execution.running import ChunkRunner
from ledger_net.ledger.store import Store


def _serve_honestly(partial: PartialBlob, blob: str, data: bytes, wanted: Sequence[int]) -> bool:
    """What an honest peer gives, as NodeServer.fetch_pieces drives one: leaves, then each missing run."""
    if not partial.knows_size():
        partial.offer_leaves(pieces(blob, data))
    for first, end in partial.missing_runs(wanted):
        partial.begin(len(data))
        partial.writer(first)(data[first * PIECE:min(end * PIECE, len(data))])
    return True


def _store(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path}/x.db")
    store.blob_dir = tmp_path / "blobs"
    return store


async def test_rows_come_piece_by_piece_and_a_complete_blob_moves_into_the_store(tmp_path: Path) -> None:
    a = np.arange(640 * 1024, dtype=np.float64).reshape(640, 1024)  # 5 MiB and a header: 6 pieces
    data = bytes(ArrayBlob(a))
    name = name_of(data)
    asked: list[list[int]] = []

    async def peer(blob: str, partial: PartialBlob, wanted: Sequence[int]) -> bool:
        """An honest peer, as NodeServer.fetch_pieces drives one: leaves, then each missing run."""
        asked.append(list(partial.missing(wanted)))
        return _serve_honestly(partial, blob, data, wanted)

    store = _store(tmp_path)
    rows = RowFetches(BlobStore(store), peer, tmp_path / "blobs" / ".partial")
    offset, row_bytes, count = array_layout(data[:PIECE])
    assert count == 640 and row_bytes == 8192
    path = await rows.rows(name, [(0, 100)])  # the header's piece holds rows 0..127 too
    assert path is not None and asked == [[0]] and rows.held(name) == {0}
    path = await rows.rows(name, [(300, 420)])
    wanted = set(pieces_covering(len(data), offset + 300 * row_bytes, offset + 420 * row_bytes))
    assert asked[-1] == sorted(wanted) and rows.held(name) == {0} | wanted
    held = Path(path).read_bytes()
    assert held[offset + 300 * row_bytes:offset + 420 * row_bytes] == data[offset + 300 * row_bytes:
                                                                         offset + 420 * row_bytes]
    assert store.blob_path(name) is None
    path = await rows.rows(name, [(0, 640)])  # the rest: now the file is the blob
    assert store.blob_path(name) is not None and path == str(store.blob_path(name))
    assert Path(path).read_bytes() == data and rows.held(name) == set()
    assert rows.fetched_pieces == 6
    assert await rows.rows(name, [(5, 6)]) == path and len(asked) == 3  # whole here: nothing fetched


async def test_a_small_blob_or_a_sha256_name_is_left_to_the_whole_fetch(tmp_path: Path) -> None:
    small = bytes(ArrayBlob(np.zeros((300, 1024))))  # 2.3 MiB: 3 pieces, under MIN_PIECES
    name = name_of(small)

    async def peer(blob: str, partial: PartialBlob, wanted: Sequence[int]) -> bool:
        partial.offer_leaves(pieces(blob, small))
        partial.begin(len(small))
        partial.writer(0)(small[:PIECE])
        return True

    rows = RowFetches(BlobStore(_store(tmp_path)), peer, tmp_path / "blobs" / ".partial")
    assert await rows.rows(name, [(0, 10)]) is None and rows.held(name) == set()
    assert await rows.rows("ab" * 32, [(0, 10)]) is None
    assert list((tmp_path / "blobs" / ".partial").glob(".part.*")) == []


def test_only_blobs_named_by_runs_of_rows_alone_are_fetched_in_part() -> None:
    payload = {"a": {"$array": ["A", 0, 8]}, "b": {"$array": "B"}, "c": [{"$array": ["C", 2, 4]}, {"$blob": "C"}],
               "d": {"$array": ["D", 4, 6]}, "e": {"$array": ["D", 0, 2]}}
    # B is named whole, C both whole and by rows: both are needed whole
    assert {k: sorted(v) for k, v in row_ranges(payload).items()} == {"A": [(0, 8)], "D": [(0, 2), (4, 6)]}


async def test_a_chunk_fetches_the_blobs_it_needs_whole_before_its_rows(tmp_path: Path) -> None:
    """B first, then A's rows: another chunk's rows do not compete with this chunk's B."""
    a = np.arange(640 * 1024, dtype=np.float64).reshape(640, 1024)
    data_a, data_b = bytes(ArrayBlob(a)), bytes(ArrayBlob(a + 1))
    name_a, name_b = name_of(data_a), name_of(data_b)
    order: list[str] = []

    async def whole(blob: str, sink: BlobSink) -> bool:
        order.append("B start")
        for start in range(0, len(data_b), PIECE):
            await asyncio.sleep(0)
            sink.write(data_b[start:start + PIECE])
        order.append("B end")
        return sink.matches()

    async def peer(blob: str, partial: PartialBlob, wanted: Sequence[int]) -> bool:
        order.append("A rows")
        return _serve_honestly(partial, blob, data_a, wanted)

    store = _store(tmp_path)
    blobs = BlobStore(store, fetcher=whole)
    executor = ChunkExecutor(workers=1, work_dir=tmp_path / "work")
    runner = ChunkRunner(executor, blobs, None, 1, rows=RowFetches(blobs, peer, tmp_path / "blobs" / ".partial"))
    payload = {"operation": "multiply", "a": {"$array": [name_a, 0, 100]}, "b": {"$array": name_b}}
    _, _, files = await runner.inputs({"payload": payload})
    assert order == ["B start", "B end", "A rows"]  # rows 0..100 lie in the header's piece
    assert files[name_b] == str(store.blob_path(name_b)) and store.blob_path(name_a) is None
    await executor.close()
