"""The store on both backends (SQLite and PostgreSQL via `db_url`): Alembic schema,
gap-free increasing offsets, paging, fork proofs, void events, and concurrent writers."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

import ledger_net
from ledger_net.ledger.store import ForkProof, Store, sqlite_url


def _h(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def row(author: str, seq: int, *, tag: str = "", ts: int | None = None) -> dict:
    return {"hash": _h(author, seq, tag), "author": author, "seq": seq, "type": "node.updated",
            "ts": seq if ts is None else ts, "raw": b'{"seq":%d}' % seq, "sig": bytes([seq % 256]) * 64,
            "valid": True, "reason": None}


A, B = _h("author-a"), _h("author-b")


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
    assert (got.offset, got.author, got.seq, got.raw, got.sig, got.valid) == \
        (2, A, 2, rows[1]["raw"], rows[1]["sig"], True)
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


def _write_batches(store: Store, i: int, batches: int, per_batch: int, returned: list[int],
                   errors: list[BaseException]) -> None:
    """Writer ``i``: ``batches`` inserts of ``per_batch`` events of its own chain; the offsets
    each insert returns go to ``returned``."""
    try:
        author = _h("writer", i)
        seq = 0
        for _ in range(batches):
            rows = []
            for _ in range(per_batch):
                seq += 1
                rows.append(row(author, seq))
            returned.extend(store.insert_events(rows))
    except BaseException as exc:  # pragma: no cover - reported by the test
        errors.append(exc)


def _read_pages(store: Store, total: int, done: threading.Event, seen: list[int],
                errors: list[BaseException]) -> None:
    """A reader paging ``offset > cursor`` (7 at a time) until the writers are done and it
    has reached ``total``; every offset it is given goes to ``seen``."""
    cursor = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            page = list(store.select_events(after=cursor, limit=7))
            for r in page:
                seen.append(r.offset)
                cursor = r.offset
            if not page:
                if done.is_set() and cursor >= total:
                    return
                time.sleep(0.001)
    except BaseException as exc:  # pragma: no cover
        errors.append(exc)


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

    threads = [threading.Thread(target=_write_batches, args=(writers[i], i, batches, per_batch, returned[i], errors))
               for i in range(2)]
    reader = threading.Thread(target=_read_pages, args=(reader_store, total, done, seen, errors))
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


# ----------------------------------------------------------------- migrations
def _migrate(url: str, action: str, revision: str) -> None:
    """Run `alembic upgrade|downgrade <revision>` on `url` as the node does (on a connection)."""
    from alembic import command

    from ledger_net.ledger.store.migrations import alembic_config

    s = Store.open(url, upgrade=False)
    try:
        config = alembic_config()
        with s.engine.begin() as conn:
            config.attributes["connection"] = conn
            getattr(command, action)(config, revision)
    finally:
        s.close()


def _revision(store: Store) -> str:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


def _head() -> str:
    from alembic.script import ScriptDirectory

    from ledger_net.ledger.store.migrations import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrations_are_package_data_found_from_any_directory(tmp_path, monkeypatch):
    """The scripts ship inside the package and no alembic.ini is read: a store opens and
    migrates with the cwd far from the checkout (as an installed wheel does)."""
    from ledger_net.ledger.store import migrations_dir

    assert migrations_dir() == Path(ledger_net.__file__).parent / "migrations"
    monkeypatch.chdir(tmp_path)
    s = Store.open(sqlite_url(tmp_path / "x.db"))
    try:
        assert _revision(s) == _head() and "node_holders" in inspect(s.engine).get_table_names()
    finally:
        s.close()


def test_node_holders_comes_and_goes_with_0003(db_url):
    _migrate(db_url, "upgrade", "0003")
    _migrate(db_url, "downgrade", "0002")
    s = Store.open(db_url, upgrade=False)
    try:
        assert "node_holders" not in inspect(s.engine).get_table_names()
    finally:
        s.close()
    s = Store.open(db_url)
    try:
        assert "node_holders" in inspect(s.engine).get_table_names()
    finally:
        s.close()


def test_migrated_schema_matches_the_table_definitions(store):
    """What the migrations build is what the code's tables describe (columns, indexes, keys)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from ledger_net.ledger.tables import metadata
    from ledger_net.projections import tables as projection_tables

    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    insp = inspect(store.engine)
    for table in (projection_tables.tasks, projection_tables.chunks, projection_tables.task_assignments):
        want = [c.name for c in table.primary_key.columns]
        assert insp.get_pk_constraint(table.name)["constrained_columns"] == want, table.name
    assert [c.name for c in projection_tables.chunks.primary_key.columns] == ["task_id", "owner", "chunk"]


def test_store_at_0001_upgrades_to_tasks_keyed_by_owner(db_url):
    """A store left at 0001 (tasks keyed by id alone) upgrades on open: the task tables are
    keyed by owner, their old rows and the tasks checkpoint are gone (so the projection is
    refolded from the log), the other checkpoints and the log stay; and it downgrades back."""
    _migrate(db_url, "upgrade", "0001")
    old = Store.open(db_url, upgrade=False)
    try:
        assert _revision(old) == "0001"
        assert inspect(old.engine).get_pk_constraint("tasks")["constrained_columns"] == ["task_id"]
        old.insert_events([row(A, 1)])
        with old.engine.begin() as conn:
            conn.execute(text("INSERT INTO tasks (task_id, owner, task_type, status, priority, escrow, max_price, "
                              "paid, refund, chunks_total, chunks_done, chunks_failed, submitted_hash, spec, "
                              "submitted_ts) VALUES ('same', :o, 'map', 'pending', 1, 0, 0, 0, 0, 1, 0, 0, :h, "
                              "'{}', 1)"), {"o": A, "h": _h("sub")})
            conn.execute(text("INSERT INTO chunks (task_id, chunk, status, attempts, payment) "
                              "VALUES ('same', 0, 'open', 0, 0)"))
            for name in ("tasks", "balances"):
                conn.execute(text('INSERT INTO projection_checkpoints (name, "offset", state_hash) '
                                  "VALUES (:n, 1, :h)"), {"n": name, "h": _h(name)})
    finally:
        old.close()
    new = Store.open(db_url)
    try:
        assert _revision(new) == _head()
        insp = inspect(new.engine)
        assert insp.get_pk_constraint("tasks")["constrained_columns"] == ["task_id", "owner"]
        assert insp.get_pk_constraint("chunks")["constrained_columns"] == ["task_id", "owner", "chunk"]
        assert "task_assignments" in insp.get_table_names()
        with new.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM tasks")).scalar_one() == 0
            assert conn.execute(text("SELECT COUNT(*) FROM chunks")).scalar_one() == 0
            names = {n for (n,) in conn.execute(text("SELECT name FROM projection_checkpoints"))}
        assert names == {"balances"}
        assert new.count() == 1
        # two owners, one task id: both rows fit now
        with new.engine.begin() as conn:
            for owner in (A, B):
                conn.execute(text("INSERT INTO tasks (task_id, owner, task_type, status, priority, escrow, "
                                  "max_price, paid, refund, chunks_total, chunks_done, chunks_failed, "
                                  "submitted_hash, spec, submitted_ts) VALUES ('same', :o, 'map', 'pending', 1, 0, "
                                  "0, 0, 0, 1, 0, 0, :h, '{}', 1)"), {"o": owner, "h": _h("sub", owner)})
    finally:
        new.close()
    _migrate(db_url, "downgrade", "0001")
    back = Store.open(db_url, upgrade=False)
    try:
        assert _revision(back) == "0001"
        insp = inspect(back.engine)
        assert insp.get_pk_constraint("tasks")["constrained_columns"] == ["task_id"]
        assert "task_assignments" not in insp.get_table_names() and back.count() == 1
    finally:
        back.close()


def test_upgrade_refolds_the_tasks_projection_from_the_log(db_url):
    """Projections at head, then the database taken back to 0001 and reopened: the upgrade
    drops the task rows and checkpoint, and the runner folds them again to the same state."""
    from ledger_net.ledger.chain import Ledger
    from ledger_net.ledger.events import Event
    from ledger_net.ledger.identity import Identity
    from ledger_net.projections import ProjectionRunner

    owners = [Identity.from_seed(bytes([70 + i]) * 32) for i in range(2)]
    led = Ledger.open(db_url, owners[0])
    runner = ProjectionRunner(led)
    led.create_network("mig", issuers=[o.node_id for o in owners])
    other = Ledger.open("sqlite://", owners[1])
    spec = {"task_id": "same", "task_type": "map", "escrow": 0, "max_price": 0, "chunks": 2, "spec": {}}
    other.ingest([Event.from_wire(r.raw, r.sig) for r in led.stored()])
    mine = led.append("task.submitted", spec)
    led.append("task.assigned", {"task_id": "same", "chunk": 1, "worker": owners[1].node_id, "price": 0},
               [mine.hash])
    led.ingest([other.append("task.submitted", dict(spec, chunks=3))])
    runner.flush()
    before = runner.state_hash()
    assert set(runner.tasks.owners_of("same")) == {o.node_id for o in owners}
    led.close()
    other.close()
    _migrate(db_url, "downgrade", "0001")
    again = Ledger.open(db_url)
    try:
        runner = ProjectionRunner(again)
        assert runner.state_hash() == before
        assert runner.tasks.chunks_of("same", owners[0].node_id)[1]["status"] == "assigned"
        with again.store.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM tasks")).scalar_one() == 2
            assert conn.execute(text("SELECT COUNT(*) FROM task_assignments")).scalar_one() == 1
    finally:
        again.close()


def test_upgrade_to_0007_refolds_the_tasks_projection_with_each_assignments_report(db_url):
    """A database taken back to 0006 (assignments without verdicts or reports) and reopened: 0007
    empties the task tables and drops their checkpoint, and the runner refolds them from the log
    to the same state, each assignment with its worker's report and the owner's verdict."""
    from ledger_net.ledger.chain import Ledger
    from ledger_net.ledger.events import Event
    from ledger_net.ledger.identity import Identity
    from ledger_net.projections import ProjectionRunner

    owner, worker = (Identity.from_seed(bytes([90 + i]) * 32) for i in range(2))
    led = Ledger.open(db_url, owner)
    runner = ProjectionRunner(led)
    led.create_network("mig7", issuers=[owner.node_id])
    sub = led.append("task.submitted", {"task_id": "t", "task_type": "map", "escrow": 0, "max_price": 0,
                                        "chunks": 1, "spec": {}})
    asg = led.append("task.assigned", {"task_id": "t", "chunk": 0, "worker": worker.node_id, "price": 0},
                     [sub.hash])
    other = Ledger.open("sqlite://", worker)
    other.ingest([Event.from_wire(r.raw, r.sig) for r in led.stored()])
    led.ingest([other.append("task.chunk_result", {"task_id": "t", "chunk": 0, "ok": True,
                                                   "result_hash": "ab" * 32}, [asg.hash])])
    led.append("task.chunk_rejected", {"task_id": "t", "chunk": 0, "worker": worker.node_id, "reason": "late"})
    runner.flush()
    before = runner.state_hash()
    led.close()
    other.close()
    _migrate(db_url, "downgrade", "0006")
    old = Store.open(db_url, upgrade=False)
    try:
        assert "verdict" not in {c["name"] for c in inspect(old.engine).get_columns("task_assignments")}
        with old.engine.begin() as conn:  # what a 0006 node left: its assignment rows and their checkpoint
            conn.execute(text("INSERT INTO task_assignments (hash, task_id, owner, chunk, worker) "
                              "VALUES (:h, 't', :o, 0, :w)"), {"h": asg.hash, "o": owner.node_id, "w": worker.node_id})
            conn.execute(text('INSERT INTO projection_checkpoints (name, "offset", state_hash) '
                              "VALUES ('tasks', 4, :h)"), {"h": "00" * 32})
    finally:
        old.close()
    again = Ledger.open(db_url)
    try:
        runner = ProjectionRunner(again)
        assert runner.state_hash() == before
        assert runner.tasks.chunks_of("t")[0]["status"] == "rejected"
        with again.store.engine.connect() as conn:
            row = conn.execute(text("SELECT verdict, reason, ok, result_hash FROM task_assignments")).one()
        assert tuple(row) == ("rejected", "late", True, "ab" * 32)
    finally:
        again.close()


def test_0010_makes_the_sqlite_offset_the_rowid_and_keeps_the_log(db_url):
    """A 0009 store's events survive 0010 with their offsets; on SQLite the offset becomes the
    rowid (INTEGER, no counter row); the log grows on gap-free, and a downgrade restores the
    counter at the last offset."""
    _migrate(db_url, "upgrade", "0009")
    old = Store.open(db_url, upgrade=False)
    try:
        assert old.insert_events([row(A, 1), row(A, 2), row(B, 1)]) == [1, 2, 3]
    finally:
        old.close()
    new = Store.open(db_url)
    try:
        sqlite = new.dialect == "sqlite"
        assert [(r.offset, r.author, r.seq) for r in new.select_events()] == [(1, A, 1), (2, A, 2), (3, B, 1)]
        with new.engine.connect() as conn:
            kind = {c["name"]: str(c["type"]) for c in inspect(conn).get_columns("events")}["offset"]
            counter = conn.execute(text("SELECT value FROM counters WHERE name = 'offset'")).scalar()
        assert (kind, counter) == (("INTEGER", None) if sqlite else ("BIGINT", 3))
        assert new.write([row(A, 3)]) == [4] and new.insert_events([row(B, 2), row(B, 3)]) == [5, 6]
        assert new.last_offset() == 6 and new.get_event(row(B, 3)["hash"]).offset == 6
    finally:
        new.close()
    _migrate(db_url, "downgrade", "0009")
    back = Store.open(db_url, upgrade=False)
    try:
        with back.engine.connect() as conn:
            assert conn.execute(text("SELECT value FROM counters WHERE name = 'offset'")).scalar() == 6
        assert [r.offset for r in back.select_events()] == [1, 2, 3, 4, 5, 6]
    finally:
        back.close()
