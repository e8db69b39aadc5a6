"""The recorder: SQLAlchemy storage of events, fork proofs and blobs.

One store contract for SQLite (the embedded default, WAL) and PostgreSQL. The
schema is created and upgraded only by Alembic; `Store.open` runs `upgrade head`.
Offsets are allocated by bumping the `counters` row inside the writing
transaction: its row lock serialises writers until commit, so offsets become
visible in order and a reader paging `offset > cursor` never skips one.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import logging
import mmap
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Boolean,
    Connection,
    Engine,
    Enum,
    Integer,
    LargeBinary,
    String,
    Table,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    func,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool

from .encoding import is_hash
from .merkle_log import MerkleLog
from .tables import blobs, counters, events, fork_proofs, judge_snapshots, meta, void_events


@dataclass(frozen=True, slots=True)
class StoredEvent:
    offset: int
    hash: str
    author: str
    seq: int
    type: str
    ts: int
    raw: bytes
    sig: bytes
    valid: bool
    reason: str | None


def _stored(row: Any) -> StoredEvent:
    """A `StoredEvent` from a row of `_EVENT_COLUMNS` (in its field order)."""
    return StoredEvent(*row)


@dataclass(frozen=True, slots=True)
class JudgeSnapshot:
    """A stored snapshot of the validity fold after the event at `offset` (see ledger/snapshot.py)."""

    offset: int
    rules: str
    digest: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ForkProof:
    author: str
    seq: int
    hash_a: str
    raw_a: bytes
    sig_a: bytes
    hash_b: str
    raw_b: bytes
    sig_b: bytes


_EVENT_COLUMNS = (events.c.offset, events.c.hash, events.c.author, events.c.seq, events.c.type, events.c.ts,
                  events.c.raw, events.c.sig, events.c.valid, events.c.reason)
_EVENT_COLUMN_LIST = '"offset", hash, author, seq, type, ts, raw, sig, valid, reason'
_COPY_EVENTS = f"COPY events ({_EVENT_COLUMN_LIST}) FROM STDIN"


BIG_BLOB = 1 << 20
_STREAM_SLICE = 1 << 20  # hash and write a big blob a slice at a time, while the slice is in cache


def sqlite_url(path: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(path)}"


def migrations_dir() -> Path:
    """The Alembic scripts shipped inside the package, found as a package resource so
    that an installed wheel (not only a checkout) can create and upgrade its database."""
    location = importlib.resources.files("ledger_net") / "migrations"
    if not isinstance(location, Path) or not (location / "env.py").is_file():
        raise RuntimeError(f"ledger_net's migrations are not on the file system ({location}); "
                           "install the package unzipped")
    return location


def _no_alembic_preamble(record: logging.LogRecord) -> bool:
    """Alembic says which dialect it uses and how it treats DDL on every start: noise in a
    node's story. Its "Running upgrade" lines (the schema changed) stay."""
    return not str(record.msg).startswith(("Context impl", "Will assume"))


logging.getLogger("alembic.runtime.migration").addFilter(_no_alembic_preamble)


def _alembic_config() -> Config:
    """An Alembic config built in code: no `alembic.ini` is needed, so it works from any cwd."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


class Store:
    """Events, forks and blobs in one database; thread-safe for one process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._write_lock = threading.Lock()
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql_bump = (f"UPDATE counters SET value = value + {mark} WHERE name = 'offset' RETURNING value")
        self._sql_insert = (f"INSERT INTO events ({_EVENT_COLUMN_LIST}) VALUES ({', '.join([mark] * 10)})")
        self._sql_select = f"SELECT {_EVENT_COLUMN_LIST} FROM events WHERE \"offset\" > {mark}"
        self._sql_select_until = self._sql_select + f" AND \"offset\" <= {mark}"
        self._mark = mark
        self._sql_bump_insert = (  # PostgreSQL: the counter bump and the insert as one statement
            "WITH c AS (UPDATE counters SET value = value + 1 WHERE name = 'offset' RETURNING value) "
            f"INSERT INTO events ({_EVENT_COLUMN_LIST}) SELECT c.value, {', '.join([mark] * 9)} FROM c "
            'RETURNING "offset"')
        self._sql_void = f"INSERT INTO void_events (hash, author, seq, raw, sig) VALUES ({', '.join([mark] * 5)})"
        self._sql_snapshot = ('INSERT INTO judge_snapshots ("offset", rules, digest, data, created_at) '
                              f"VALUES ({', '.join([mark] * 5)})")
        self._writer: Any = None  # the write path's DBAPI connection (see _raw_write)
        self.merkle = MerkleLog(mark)  # per-author Merkle nodes, written with the events
        # Where blobs of BIG_BLOB bytes or more live as files (set by the node that owns a
        # data directory); a database row per multi-megabyte operand would cost a copy into
        # SQLite's pages and another out, and could not be memory-mapped by workers.
        self.blob_dir: Path | None = None

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, url: str = "sqlite://", *, upgrade: bool = True) -> Store:
        """Open (and migrate) the database at `url`; `sqlite://` is a private in-memory ledger."""
        if url.startswith("sqlite"):
            in_memory = url in ("sqlite://", "sqlite:///:memory:")
            kwargs = {"poolclass": StaticPool} if in_memory else {}
            engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        store = cls(engine)
        if upgrade:
            store.upgrade()
        return store

    def upgrade(self) -> None:
        config = _alembic_config()
        with self.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                with contextlib.suppress(Exception):
                    writer.close()
        self.engine.dispose()

    def writer(self) -> threading.Lock:
        """The lock every writer of this store holds (projection flushes included)."""
        return self._write_lock

    # ----------------------------------------------------------------- writing
    def write(self, rows: Sequence[dict[str, Any]], void_rows: Sequence[dict[str, Any]] = (),
              snapshot: tuple[str, str, bytes] | None = None) -> list[int]:
        """Store a batch of log events and void events in one transaction; with `snapshot`
        ((rules, digest, data) of the judge after the batch), it replaces the stored one,
        at the batch's last offset, in the same transaction."""
        if not rows and not void_rows:
            return []
        with self._write_lock:
            return self._raw_write(rows, void_rows, snapshot if rows else None)

    def insert_events(self, rows: Sequence[dict[str, Any]], conn: Connection | None = None,
                      snapshot: tuple[str, str, bytes] | None = None) -> list[int]:
        """Store events (dicts of hash, author, seq, type, ts, raw, sig, valid, reason)
        in one transaction; returns their offsets, in order. `snapshot` as for `write`."""
        if not rows:
            return []
        if conn is not None:
            offsets = self._insert(conn, rows)
            if snapshot is not None:
                conn.exec_driver_sql("DELETE FROM judge_snapshots")
                conn.exec_driver_sql(self._sql_snapshot, (offsets[-1], *snapshot, _now_ms()))
            return offsets
        with self._write_lock:
            return self._raw_write(rows, (), snapshot)

    # The hot write path (every append and ingest): one long-lived DBAPI connection,
    # used only under the write lock, and plain driver statements. Errors come out as
    # the same SQLAlchemy exception classes Core raises.
    def _raw_write(self, rows: Sequence[dict[str, Any]], void_rows: Sequence[dict[str, Any]],
                   snapshot: tuple[str, str, bytes] | None = None) -> list[int]:
        for attempt in (1, 2):
            if self._writer is None:
                self._writer = self.engine.raw_connection()
            raw = self._writer
            cursor = raw.cursor()
            try:
                offsets = self._raw_insert(cursor, rows) if rows else []
                fronts = self._merkle_insert(rows, _cursor_query(cursor), cursor.executemany) if rows else {}
                if void_rows:
                    cursor.executemany(self._sql_void, [(r["hash"], r["author"], r["seq"], r["raw"], r["sig"])
                                                        for r in void_rows])
                if snapshot is not None and offsets:
                    cursor.execute("DELETE FROM judge_snapshots")
                    cursor.execute(self._sql_snapshot, (offsets[-1], *snapshot, _now_ms()))
                cursor.close()
                raw.commit()
                self.merkle.remember(fronts)
                return offsets
            except BaseException as exc:
                dbapi_error = self.engine.dialect.loaded_dbapi.Error
                lost = isinstance(exc, dbapi_error) and self.engine.dialect.is_disconnect(
                    exc, raw.driver_connection, cursor)
                try:
                    cursor.close()
                    raw.rollback()
                except Exception:
                    lost = True
                if lost:  # a dropped connection: nothing was committed; reconnect once
                    self._discard_writer()
                    if attempt == 1:
                        continue
                if isinstance(exc, dbapi_error):
                    raise DBAPIError.instance(self._sql_insert, None, exc, dbapi_error,
                                              connection_invalidated=lost) from exc
                raise
        raise AssertionError("unreachable")

    def _raw_insert(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> list[int]:
        n = len(rows)
        if n == 1 and self.dialect == "postgresql":  # one round trip for bump + insert
            r = rows[0]
            cursor.execute(self._sql_bump_insert, (r["hash"], r["author"], r["seq"], r["type"], r["ts"], r["raw"],
                                                   r["sig"], bool(r["valid"]), r["reason"]))
            offset = cursor.fetchall()[0][0]
            return [offset]
        cursor.execute(self._sql_bump, (n,))
        last = cursor.fetchall()[0][0]
        first = last - n + 1
        payload = [(first + i, r["hash"], r["author"], r["seq"], r["type"], r["ts"], r["raw"], r["sig"],
                    bool(r["valid"]), r["reason"]) for i, r in enumerate(rows)]
        if n == 1:
            cursor.execute(self._sql_insert, payload[0])
        elif self.dialect == "postgresql":
            with cursor.copy(_COPY_EVENTS) as copy:
                for row in payload:
                    copy.write_row(row)
        else:
            cursor.executemany(self._sql_insert, payload)
        return list(range(first, last + 1))

    def _discard_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.invalidate()

    def _insert(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        # Hot path: plain DBAPI statements (executemany of tuples) instead of compiled
        # Core constructs; the SQL is the same one Core would emit.
        n = len(rows)
        last = conn.exec_driver_sql(self._sql_bump, (n,)).scalar_one()
        first = last - n + 1
        payload = [(first + i, r["hash"], r["author"], r["seq"], r["type"], r["ts"], r["raw"], r["sig"],
                    bool(r["valid"]), r["reason"]) for i, r in enumerate(rows)]
        if self.dialect == "postgresql" and n > 1:
            self._copy_events(conn, payload)
        else:
            conn.exec_driver_sql(self._sql_insert, payload if n > 1 else payload[0])
        # The caller commits (or not): no frontier is cached from this path.
        self._merkle_insert(rows, _conn_query(conn), conn.exec_driver_sql)
        return list(range(first, last + 1))

    def _merkle_insert(self, rows: Sequence[dict[str, Any]], query: Any, executemany: Any) -> dict[str, Any]:
        """The Merkle nodes the new events complete, in the events' transaction; after the
        events' own insert, so a duplicate (author, seq) is the database's IntegrityError."""
        nodes, fronts = self.merkle.plan(rows, query)
        if nodes:
            executemany(self.merkle.sql_insert, nodes)
        return fronts

    def _copy_events(self, conn: Connection, payload: list[tuple[Any, ...]]) -> None:
        """PostgreSQL: stream a batch of event rows with COPY (psycopg 3)."""
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        driver = conn.connection.driver_connection
        assert driver is not None, "an open pooled connection holds its DBAPI connection"
        cursor = driver.cursor()
        try:
            with cursor.copy(_COPY_EVENTS) as copy:
                for row in payload:
                    copy.write_row(row)
        except dbapi_error as exc:  # the same exception classes Core would raise
            raise DBAPIError.instance(_COPY_EVENTS, None, exc, dbapi_error) from exc
        finally:
            cursor.close()

    def bulk_insert(self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert many dict rows into `table` inside `conn`'s transaction (projection flushes).

        Tables whose columns are all plain integers, strings, booleans or bytes go straight
        to the driver's executemany (no per-row SQLAlchemy processing); any other table, or
        rows of differing keys, take the ordinary Core path."""
        if not rows:
            return
        keys = tuple(rows[0])
        plain = _plain_insert_sql(conn.dialect, table, keys)
        if plain is None or any(len(r) != len(keys) for r in rows):
            conn.execute(table.insert(), list(rows))
            return
        conn.exec_driver_sql(plain, rows if isinstance(rows, list) else list(rows))

    def insert_void(self, rows: Sequence[dict[str, Any]], conn: Connection | None = None) -> None:
        """Keep void events of proven forkers (hash, author, seq, raw, sig) for causal delivery."""
        if not rows:
            return
        if conn is not None:
            conn.execute(void_events.insert(), list(rows))
            return
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(void_events.insert(), list(rows))

    # ----------------------------------------------------------------- judge snapshots
    def put_snapshot(self, offset: int, snapshot: tuple[str, str, bytes]) -> bool:
        """Replace the stored judge snapshot with one at `offset` (rules, digest, data), in
        its own transaction: for a state judged from events already committed. Refused
        (False) unless `offset` is still the log's last offset, so it never claims less or
        more than the events it covers."""
        with self._write_lock, self.engine.begin() as conn:
            last = conn.execute(select(counters.c.value).where(counters.c.name == "offset")).scalar_one()
            if last != offset:
                return False
            conn.execute(judge_snapshots.delete())
            conn.execute(judge_snapshots.insert().values(offset=offset, rules=snapshot[0], digest=snapshot[1],
                                                         data=snapshot[2], created_at=_now_ms()))
            return True

    def latest_snapshot(self) -> JudgeSnapshot | None:
        """The judge snapshot of highest offset, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(judge_snapshots.c.offset, judge_snapshots.c.rules, judge_snapshots.c.digest,
                                      judge_snapshots.c.data).order_by(judge_snapshots.c.offset.desc()).limit(1)).first()
        return JudgeSnapshot(row[0], row[1], row[2], bytes(row[3])) if row else None

    def has_hashes(self, hashes: Iterable[str]) -> set[str]:
        """Those of `hashes` held as events or void events (indexed lookups, in slices)."""
        ask = list(hashes)
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(ask), 500):
                part = ask[i:i + 500]
                marks = ", ".join([self._mark] * len(part))
                sql = (f"SELECT hash FROM events WHERE hash IN ({marks}) "
                       f"UNION ALL SELECT hash FROM void_events WHERE hash IN ({marks})")
                found.update(r[0] for r in conn.exec_driver_sql(sql, tuple(part) * 2).fetchall())
        return found

    def events_of_type(self, author: str, type_: str) -> list[StoredEvent]:
        """`author`'s events of one type (e.g. the fork proofs a node published), via the type index."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_EVENT_COLUMNS).where(events.c.type == type_, events.c.author == author)
                                .order_by(events.c.offset)).all()
        return [_stored(r) for r in rows]

    def void_hashes(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(void_events.c.hash)).scalars())

    def get_void(self, hash_: str) -> tuple[bytes, bytes] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(void_events.c.raw, void_events.c.sig).where(void_events.c.hash == hash_)).first()
        return (row[0], row[1]) if row else None

    def set_validity(self, verdicts: Iterable[tuple[str, bool, str | None]]) -> None:
        """Record re-evaluated verdicts (after a fork proof changed what is void)."""
        rows = [{"h": h, "v": v, "r": r} for h, v, r in verdicts]
        if not rows:
            return
        stmt = update(events).where(events.c.hash == bindparam("h")).values(valid=bindparam("v"), reason=bindparam("r"))
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(stmt, rows)

    def insert_fork_proof(self, proof: ForkProof) -> bool:
        """Keep a fork proof; False if one for that (author, seq) is already kept."""
        with self._write_lock, self.engine.begin() as conn:
            exists = conn.execute(select(fork_proofs.c.author).where(
                fork_proofs.c.author == proof.author, fork_proofs.c.seq == proof.seq)).first()
            if exists:
                return False
            conn.execute(fork_proofs.insert().values(**{f: getattr(proof, f) for f in ForkProof.__slots__}))
            return True

    def put_blob(self, hash_: str, data: Any) -> None:
        """Keep a blob the caller has checked against its hash. ``data`` is bytes-like, or an
        object with ``parts()`` (buffers written back to back, e.g. an array blob)."""
        size = len(data)
        if self.blob_dir is not None and size >= BIG_BLOB:
            path = self._blob_file(hash_)
            if path.exists():
                if getattr(data, "path", None) is not None:
                    Path(data.path).unlink(missing_ok=True)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            source = getattr(data, "path", None)
            if source is not None:  # a checked file on this file system: move it, do not copy
                try:
                    os.replace(source, path)
                    return
                except OSError:
                    pass
            tmp = self._tmp_blob_file()
            self._write_parts(tmp, data)
            os.replace(tmp, path)  # readers see the whole blob or none
            return
        with self._write_lock, self.engine.begin() as conn:
            if conn.execute(select(blobs.c.hash).where(blobs.c.hash == hash_)).first() is None:
                raw = bytes(data) if not isinstance(data, bytes) else data
                conn.execute(blobs.insert().values(hash=hash_, size=size, data=raw))

    def put_new_blob(self, data: Any) -> str:
        """Keep a blob made here and return its hash, hashing while writing: one pass over
        the bytes instead of a hash pass and a write pass (for big operands, half the time)."""
        if self.blob_dir is None or len(data) < BIG_BLOB:
            h = hashlib.sha256()
            for part in (data.parts() if hasattr(data, "parts") else [data]):
                h.update(part)
            hash_ = h.hexdigest()
            self.put_blob(hash_, data)
            return hash_
        tmp = self._tmp_blob_file()
        hash_ = self._write_parts(tmp, data, hashlib.sha256()).hexdigest()
        path = self._blob_file(hash_)
        if path.exists():
            tmp.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        return hash_

    def _tmp_blob_file(self) -> Path:
        assert self.blob_dir is not None
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        return self.blob_dir / f".new.{os.getpid()}.{threading.get_ident()}.tmp"

    @staticmethod
    def _write_parts(path: Path, data: Any, h: Any = None) -> Any:
        """Write a blob's buffers to ``path`` a slice at a time, feeding ``h`` (a hash) as it goes."""
        with open(path, "wb") as f:
            for part in (data.parts() if hasattr(data, "parts") else [data]):
                view = memoryview(part).cast("B")
                for start in range(0, len(view), _STREAM_SLICE):
                    piece = view[start:start + _STREAM_SLICE]
                    if h is not None:
                        h.update(piece)
                    f.write(piece)
        return h

    def _blob_file(self, hash_: str) -> Path:
        assert self.blob_dir is not None
        if not is_hash(hash_):
            raise ValueError(f"{hash_[:80]!r} is not a blob hash")
        return self.blob_dir / hash_[:2] / hash_

    def blob_path(self, hash_: str) -> Path | None:
        """The file holding a big blob, or None when the blob is kept in the database (or absent)."""
        if self.blob_dir is None:
            return None
        try:
            path = self._blob_file(hash_)
        except ValueError:
            return None
        return path if path.is_file() else None

    def blob_view(self, hash_: str) -> Any:
        """A blob as a read-only buffer: a memory map of its file when big (no copy), else bytes."""
        path = self.blob_path(hash_)
        if path is not None:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return b""
                return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        return self.get_blob(hash_)

    def get_blob(self, hash_: str) -> bytes | None:
        path = self.blob_path(hash_)
        if path is not None:
            return path.read_bytes()
        with self.engine.connect() as conn:
            return conn.execute(select(blobs.c.data).where(blobs.c.hash == hash_)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(meta.delete().where(meta.c.key == key))
            conn.execute(meta.insert().values(key=key, value=value))

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()

    # ----------------------------------------------------------------- reading
    def select_events(self, after: int = 0, limit: int | None = None, until: int | None = None,
                      batch: int = 5000) -> Iterator[StoredEvent]:
        """Events in ingestion order with offset > `after` (and <= `until`), streamed in batches."""
        for rows in self.select_rows(after, limit, until, batch):
            for o, h, a, s, t, ts, raw, sig, valid, reason in rows:
                yield StoredEvent(o, h, a, s, t, ts, raw, sig, bool(valid), reason)

    def select_rows(self, after: int = 0, limit: int | None = None, until: int | None = None,
                    batch: int = 5000) -> Iterator[Sequence[Any]]:
        """Like `select_events`, as lists of plain DBAPI tuples in `StoredEvent` field order
        (`valid` as the driver returns it: 0/1 on SQLite). For bulk readers (rebuilds, feeds)."""
        remaining = limit
        cursor = after
        sql = self._sql_select if until is None else self._sql_select_until
        sql += f' ORDER BY "offset" LIMIT {self._mark}'
        while remaining is None or remaining > 0:
            size = batch if remaining is None else min(batch, remaining)
            params = (cursor, size) if until is None else (cursor, until, size)
            with self.engine.connect() as conn:
                result = conn.exec_driver_sql(sql, params)
                rows = result.cursor.fetchall()
                result.close()
            if rows:
                yield rows
            if len(rows) < size:
                return
            cursor = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)

    def get_event(self, hash_: str) -> StoredEvent | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_EVENT_COLUMNS).where(events.c.hash == hash_)).first()
        return _stored(row) if row else None

    def get_by_author_seq(self, author: str, seq: int) -> StoredEvent | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_EVENT_COLUMNS).where(events.c.author == author, events.c.seq == seq)).first()
        return _stored(row) if row else None

    def chain_segment(self, author: str, from_seq: int = 1, limit: int = 1000) -> list[StoredEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*_EVENT_COLUMNS).where(events.c.author == author, events.c.seq >= from_seq)
                                .order_by(events.c.seq).limit(limit)).all()
        return [_stored(r) for r in rows]

    def events_by_author(self, author: str, *, before: int = 0, limit: int = 50) -> list[StoredEvent]:
        """`author`'s stored events newest first (those with offset < `before` when given): a page
        of an account's own chain, in this node's storage order, with its verdicts."""
        stmt = select(*_EVENT_COLUMNS).where(events.c.author == author)
        if before:
            stmt = stmt.where(events.c.offset < before)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(events.c.offset.desc()).limit(limit)).all()
        return [_stored(r) for r in rows]

    def events_about_task(self, task_id: str, *, start: int = 0, limit: int = 500,
                          scan: int = 20_000) -> list[StoredEvent]:
        """Stored events from offset `start` on whose body names `task_id`, oldest first: at most
        `limit` of them, among the first `scan` events whose bytes hold the id (a bound on the work).

        Canonical JSON writes the id exactly so, which SQL matches byte-wise (SQLite's instr() on
        BLOBs, PostgreSQL's bytea LIKE, where `_`/`%` only widen the match); the body check keeps
        the events that name the task itself, not a field that merely contains the text."""
        needle = b"\"task_id\":" + orjson.dumps(task_id)
        if self.dialect == "sqlite":
            match = func.instr(events.c.raw, needle) > 0
        else:
            match = events.c.raw.like(b"%" + needle + b"%")
        stmt = select(*_EVENT_COLUMNS).where(events.c.offset >= start, match).order_by(events.c.offset).limit(scan)
        out: list[StoredEvent] = []
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                body = orjson.loads(row.raw).get("body")
                if isinstance(body, dict) and body.get("task_id") == task_id:
                    out.append(_stored(row))
                    if len(out) >= limit:
                        break
        return out

    # ----------------------------------------------------------------- Merkle proofs
    def author_root(self, author: str, size: int) -> bytes:
        """RFC 9162 root of `author`'s chain as of its first `size` events (see merkle_log)."""
        with self.engine.connect() as conn:
            return self.merkle.root(author, size, _conn_query(conn))

    def inclusion_proof(self, author: str, seq: int, size: int) -> list[bytes]:
        """Hashes proving `author`'s event at `seq` is in its chain of `size` events."""
        with self.engine.connect() as conn:
            return self.merkle.inclusion_proof(author, seq, size, _conn_query(conn))

    def consistency_proof(self, author: str, old_size: int, new_size: int) -> list[bytes]:
        """Hashes proving `author`'s chain of `old_size` events is a prefix of that of `new_size`."""
        with self.engine.connect() as conn:
            return self.merkle.consistency_proof(author, old_size, new_size, _conn_query(conn))

    def heads(self) -> dict[str, tuple[int, str]]:
        """author -> (latest seq, its hash)."""
        with self.engine.connect() as conn:
            latest = select(events.c.author, func.max(events.c.seq).label("seq")).group_by(events.c.author).subquery()
            rows = conn.execute(select(events.c.author, events.c.seq, events.c.hash).join(
                latest, (events.c.author == latest.c.author) & (events.c.seq == latest.c.seq))).all()
        return {a: (s, h) for a, s, h in rows}

    def last_offset(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(counters.c.value).where(counters.c.name == "offset")).scalar_one()

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(events)).scalar_one()

    def fork_proofs(self) -> list[ForkProof]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*fork_proofs.c).order_by(fork_proofs.c.author, fork_proofs.c.seq)).all()
        return [ForkProof(*r) for r in rows]

    def offset_of(self, hash_: str) -> int | None:
        with self.engine.connect() as conn:
            return conn.execute(select(events.c.offset).where(events.c.hash == hash_)).scalar()

    def offset_at_time(self, ts_ms: int) -> int:
        """The last offset whose event's author clock is <= ts_ms (informative time)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(func.max(events.c.offset)).where(events.c.ts <= ts_ms)).scalar()
        return value or 0


def _now_ms() -> int:
    return int(time.time() * 1000)


_PLAIN_TYPES = (Integer, String, Boolean, LargeBinary)  # BigInteger and Text are subclasses
_plain_sql_cache: dict[tuple[str, str, tuple[str, ...]], str | None] = {}


def _cursor_query(cursor: Any) -> Any:
    def query(sql: str, params: Sequence[Any]) -> list[Any]:
        cursor.execute(sql, tuple(params))
        return cursor.fetchall()
    return query


def _conn_query(conn: Connection) -> Any:
    def query(sql: str, params: Sequence[Any]) -> list[Any]:
        return list(conn.exec_driver_sql(sql, tuple(params)).fetchall())
    return query


def _plain_insert_sql(dialect: Any, table: Table, keys: tuple[str, ...]) -> str | None:
    """Driver-level INSERT with named parameters for `keys`, or None if a column needs
    SQLAlchemy's type processing (or a key is not a column)."""
    cache_key = (dialect.name, table.name, keys)
    if cache_key in _plain_sql_cache:
        return _plain_sql_cache[cache_key]
    sql = None
    columns = table.columns
    if all(k in columns and isinstance(columns[k].type, _PLAIN_TYPES)
           and not isinstance(columns[k].type, (TypeDecorator, Enum)) for k in keys):
        quote = dialect.identifier_preparer.quote
        style = ":{}" if dialect.name == "sqlite" else "%({})s"
        sql = (f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
               f"({', '.join(quote(k) for k in keys)}) VALUES ({', '.join(style.format(k) for k in keys)})")
    _plain_sql_cache[cache_key] = sql
    return sql


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
