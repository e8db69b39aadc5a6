"""The store on both backends (SQLite and PostgreSQL via `db_url`): Alembic schema,
gap-free increasing offsets, paging, fork proofs, void events, and concurrent writers."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from ledger_net.ledger.store import ForkProof, Store


def _h(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def row(author: str, seq: int, *, tag: str = "", ts: int | None = None) -> dict:
    return {"hash": _h(author, seq, tag), "author": author, "seq": seq, "type": "node.updated",
            "ts": seq if ts is None else ts, "raw": b'{"seq":%d}' % seq, "sig": bytes([seq % 256]) * 64,
            "valid": True, "reason": None}


A, B = _h("author-a"), _h("author-b")


@pytest.fixture
def store(db_url):
    s = Store.open(db_url)
    yield s
    s.close()


def test_schema_comes_from_alembic(store):
    tables = set(inspect(store.engine).get_table_names())
    assert {"events", "fork_proofs", "void_events", "counters", "meta", "blobs", "alembic_version"} <= tables
    assert store.count() == 0 and store.last_offset() == 0


def test_reopen_upgrades_idempotently_and_keeps_data(db_url):
    s = Store.open(db_url)
    s.insert_events([row(A, 1)])
    s.close()
    again = Store.open(db_url)
    try:
        assert again.count() == 1 and again.last_offset() == 1
        assert again.insert_events([row(A, 2)]) == [2]
    finally:
        again.close()


def test_offsets_gap_free_and_increasing(store):
    assert store.insert_events([row(A, 1), row(A, 2), row(A, 3)]) == [1, 2, 3]
    assert store.insert_events([row(B, 1)]) == [4]
    assert store.insert_events([]) == []
    assert store.write([row(B, 2), row(B, 3)]) == [5, 6]
    offsets = [r.offset for r in store.select_events()]
    assert offsets == list(range(1, 7)) and store.last_offset() == 6 and store.count() == 6


def test_failed_insert_consumes_no_offset(store):
    store.insert_events([row(A, 1)])
    with pytest.raises(IntegrityError):
        store.insert_events([row(A, 2), row(A, 1, tag="dup-seq")])  # (author, seq) is unique
    with pytest.raises(IntegrityError):
        store.insert_events([row(A, 1)])  # hash is unique
    assert store.count() == 1 and store.last_offset() == 1
    assert store.insert_events([row(A, 2)]) == [2]  # no gap left by the failures


def test_paging_after_limit_until(store):
    store.insert_events([row(A, i) for i in range(1, 13)])
    assert [r.offset for r in store.select_events(after=4, limit=3)] == [5, 6, 7]
    assert [r.offset for r in store.select_events(until=3)] == [1, 2, 3]
    assert [r.offset for r in store.select_events(after=10)] == [11, 12]
    assert [r.offset for r in store.select_events(batch=5)] == list(range(1, 13))  # streams across batches
    assert [r.offset for r in store.select_events(after=2, limit=7, batch=3)] == list(range(3, 10))
    assert list(store.select_events(after=12)) == []


def test_lookups(store):
    rows = [row(A, 1, ts=100), row(A, 2, ts=200), row(B, 1, ts=150)]
    store.insert_events(rows)
    got = store.get_event(rows[1]["hash"])
    assert (got.offset, got.author, got.seq, got.raw, got.sig, got.valid) == (2, A, 2, rows[1]["raw"], rows[1]["sig"], True)
    assert store.get_event("00" * 32) is None
    assert store.get_by_author_seq(B, 1).hash == rows[2]["hash"]
    assert store.get_by_author_seq(B, 2) is None
    assert [r.seq for r in store.chain_segment(A)] == [1, 2]
    assert [r.seq for r in store.chain_segment(A, from_seq=2)] == [2]
    assert store.heads() == {A: (2, rows[1]["hash"]), B: (1, rows[2]["hash"])}
    assert store.offset_of(rows[2]["hash"]) == 3 and store.offset_of("00" * 32) is None
    assert store.offset_at_time(160) == 3 and store.offset_at_time(99) == 0


def test_validity_verdicts(store):
    rows = [row(A, 1), row(A, 2)]
    store.insert_events(rows)
    store.set_validity([(rows[1]["hash"], False, "void: test")])
    got = {r.hash: (r.valid, r.reason) for r in store.select_events()}
    assert got == {rows[0]["hash"]: (True, None), rows[1]["hash"]: (False, "void: test")}


def test_fork_proofs_kept_once(store):
    proof = ForkProof(A, 3, "aa" * 32, b"{1}", bytes(64), "bb" * 32, b"{2}", bytes([1]) * 64)
    assert store.insert_fork_proof(proof) is True
    assert store.insert_fork_proof(proof) is False
    assert store.fork_proofs() == [proof]


def test_void_events_meta_blobs(store):
    store.write([row(A, 1)], [{"hash": "cc" * 32, "author": B, "seq": 4, "raw": b"{}", "sig": bytes(64)}])
    assert store.void_hashes() == ["cc" * 32]
    assert store.get_void("cc" * 32) == (b"{}", bytes(64)) and store.get_void("dd" * 32) is None
    assert store.count() == 1  # void events are not part of the log
    store.set_meta("k", "v1")
    store.set_meta("k", "v2")
    assert store.get_meta("k") == "v2" and store.get_meta("nope") is None
    store.put_blob("ee" * 32, b"\x00\x01")
    store.put_blob("ee" * 32, b"\x00\x01")
    assert store.get_blob("ee" * 32) == b"\x00\x01" and store.get_blob("ff" * 32) is None


def test_concurrent_writers_keep_offsets_contiguous_and_readers_see_each_once(db_url):
    """Two writers with their own Store (own engine, own connections) on one database,
    and a reader paging `offset > cursor` while they write."""
    setup = Store.open(db_url)
    writers = [Store.open(db_url, upgrade=False), Store.open(db_url, upgrade=False)]
    reader_store = Store.open(db_url, upgrade=False)
    batches, per_batch = 15, 4
    total = 2 * batches * per_batch
    errors: list[BaseException] = []
    returned: list[list[int]] = [[], []]
    seen: list[int] = []
    done = threading.Event()

    def write(i: int) -> None:
        try:
            author = _h("writer", i)
            seq = 0
            for _ in range(batches):
                rows = []
                for _ in range(per_batch):
                    seq += 1
                    rows.append(row(author, seq))
                returned[i].extend(writers[i].insert_events(rows))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        cursor = 0
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                page = list(reader_store.select_events(after=cursor, limit=7))
                for r in page:
                    seen.append(r.offset)
                    cursor = r.offset
                if not page:
                    if done.is_set() and cursor >= total:
                        return
                    time.sleep(0.001)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    done.set()
    reader.join(60)
    try:
        assert not errors, errors
        all_returned = sorted(returned[0] + returned[1])
        assert all_returned == list(range(1, total + 1))
        for offs in returned:  # each writer's own batches are contiguous and increasing
            assert offs == sorted(offs)
            for k in range(0, len(offs), per_batch):
                assert offs[k:k + per_batch] == list(range(offs[k], offs[k] + per_batch))
        assert seen == list(range(1, total + 1)), "the reader skipped or repeated an offset"
        assert setup.count() == total and setup.last_offset() == total
        # each writer's chain lands in seq order in the log
        for i in range(2):
            seqs = [r.seq for r in setup.select_events() if r.author == _h("writer", i)]
            assert seqs == list(range(1, batches * per_batch + 1))
    finally:
        for s in (setup, reader_store, *writers):
            s.close()
