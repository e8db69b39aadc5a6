"""Blobs fetched from peers stream to their file while hashed (BlobSink), chunks asking at once
for the same blob share one fetch, and a worker's big result is hashed once, by its node, which
names the file the worker left unnamed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from ledger_net.blob_names import is_b3t_name
from ledger_net.compute import Packer, blob_hash, blob_refs, plan_chunks, rename_refs, unpack
from ledger_net.errors import TaskError
from ledger_net.execution import chunk_job
from ledger_net.execution.blobs import BlobSink, BlobStore, FileBlob
from ledger_net.execution.executor import ChunkExecutor
from ledger_net.ledger.store import BIG_BLOB, Store


def _store(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path}/x.db")
    store.blob_dir = tmp_path / "blobs"
    return store


def _leftovers(store: Store) -> list[str]:
    assert store.blob_dir is not None
    return [p.name for p in store.blob_dir.iterdir() if p.is_file()] if store.blob_dir.exists() else []


def _pieces(data: bytes, size: int = 1 << 16) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def test_a_big_blob_streams_to_a_readable_file_and_is_kept_only_when_it_matches(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data = os.urandom(BIG_BLOB * 3 + 5)
    name = hashlib.sha256(data).hexdigest()
    sink = BlobSink(store, name)
    for piece in _pieces(data):
        sink.write(piece)
    assert sink.matches()
    sink.keep()
    path = store.blob_path(name)
    assert path is not None and path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044  # sandboxed workers (another uid) read it
    assert [p.name for p in path.parent.parent.iterdir() if p.is_file()] == []  # no temporary file left

    liar = BlobSink(store, "ab" * 32)
    for piece in _pieces(data):
        liar.write(piece)
    with pytest.raises(TaskError, match="does not match"):
        liar.keep()
    assert store.blob_path("ab" * 32) is None and _leftovers(store) == []


def test_a_reset_sink_forgets_what_a_failed_peer_sent(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data = os.urandom(BIG_BLOB + 1)
    sink = BlobSink(store, hashlib.sha256(data).hexdigest())
    sink.write(os.urandom(BIG_BLOB + 7))  # a peer that sent garbage, then failed
    sink.reset()
    assert _leftovers(store) == []
    sink.write(data)
    sink.keep()
    assert store.get_blob(sink.hash) == data


def test_a_small_blob_is_kept_in_the_database(tmp_path: Path) -> None:
    store = _store(tmp_path)
    data = b"small operand"
    sink = BlobSink(store, hashlib.sha256(data).hexdigest())
    sink.write(data)
    sink.keep()
    assert store.blob_path(sink.hash) is None and store.get_blob(sink.hash) == data


async def test_chunks_asking_for_one_blob_at_once_share_one_fetch(tmp_path: Path) -> None:
    data = os.urandom(BIG_BLOB * 2)
    name = hashlib.sha256(data).hexdigest()
    calls: list[str] = []

    async def peer(hash_: str, sink: BlobSink) -> bool:
        calls.append(hash_)
        for piece in _pieces(data):
            await asyncio.sleep(0)  # the bytes arrive over several turns of the loop
            sink.write(piece)
        return sink.matches()

    blobs = BlobStore(_store(tmp_path), fetcher=peer)
    got = await asyncio.gather(*(blobs.get(name) for _ in range(4)))
    assert calls == [name]
    assert all(bytes(g) == data for g in got)
    assert bytes(await blobs.get(name)) == data and calls == [name]  # now local


async def test_a_blob_no_peer_sends_correctly_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    async def liar(hash_: str, sink: BlobSink) -> bool:
        sink.write(os.urandom(BIG_BLOB * 2))
        return sink.matches()

    store = _store(tmp_path)
    blobs = BlobStore(store, fetcher=liar)
    with pytest.raises(TaskError, match="not available"):
        await blobs.get("cd" * 32)
    assert store.blob_path("cd" * 32) is None and _leftovers(store) == []


async def test_a_big_result_is_left_unnamed_by_the_worker_and_named_by_its_node(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random((256, 512)), rng.random((512, 512))  # the chunk's result is 1 MiB: a file
    payload = plan_chunks("matrix_ops", {"operation": "multiply", "matrix_a": a, "matrix_b": b}, 256)[0]
    wire, blobs = Packer().pack(payload)
    executor = ChunkExecutor(workers=1, work_dir=tmp_path / "work")
    try:
        outcome = await executor.run("matrix_ops", wire, blobs)
    finally:
        await executor.close()
    assert outcome.ok, outcome.error
    (name,) = outcome.blobs
    blob = outcome.blobs[name]
    assert isinstance(blob, FileBlob) and is_b3t_name(name) and blob.checked == name == blob_hash(blob)
    assert blob_refs(outcome.result) == [name]
    value = unpack(outcome.result, {name: bytes(blob)})
    np.testing.assert_allclose(value["rows"], a @ b)


def test_unnamed_result_files_are_renamed_wherever_the_result_names_them() -> None:
    wire = {"rows": {"$array": "result-0"}, "more": [{"$blob": "result-1"}, {"$array": ["result-0", 0, 2]}],
            "kept": {"$array": "ab" * 32}}
    renamed = rename_refs(wire, {"result-0": "cd" * 32, "result-1": "ef" * 32})
    assert blob_refs(renamed) == ["cd" * 32, "ef" * 32, "ab" * 32]
    assert renamed["more"][1] == {"$array": ["cd" * 32, 0, 2]}
    assert chunk_job.is_unnamed("result-0") and not chunk_job.is_unnamed("../result-0")
    assert not chunk_job.is_unnamed("ab" * 32)
