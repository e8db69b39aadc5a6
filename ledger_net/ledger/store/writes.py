"""The event write path: offsets, events, void events, verdicts and fork proofs.

Offsets must become visible in order, so a reader paging `offset > cursor` never skips one.
SQLite allows one writing transaction at a time, and the insert takes its offset in the
same statement (`COALESCE((SELECT MAX("offset") FROM events), 0) + 1`, a seek on the
primary key, which is the rowid since migration 0010): one statement per event, nothing
else bumped. PostgreSQL lets writers run side by side, so there offsets are allocated by
bumping the `counters` row inside the writing transaction: its row lock serialises writers
until commit (a one-event write is one statement, the bump and the insert). Appends and
ingests go through one long-lived DBAPI connection with plain driver statements (the hot
path); a caller's own transaction (the chain's re-fold) goes through
`insert_events(conn=...)`. Both write the Merkle nodes the new events complete in the same
transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import DBAPIError

from ...faults import crash_point
from ..tables import events, fork_proofs, void_events
from .base import StoreBase, conn_query, cursor_query, now_ms
from .records import EVENT_COLUMN_LIST, ForkProof
from .wal import WalCheckpointer

_COPY_EVENTS = f"COPY events ({EVENT_COLUMN_LIST}) FROM STDIN"


class EventWrites(StoreBase):
    """The store's write methods for the log (mixed into `Store`)."""

    def _init_writes(self, mark: str) -> None:
        self._sql_bump = (f"UPDATE counters SET value = value + {mark} WHERE name = 'offset' RETURNING value")
        self._sql_insert = (f"INSERT INTO events ({EVENT_COLUMN_LIST}) VALUES ({', '.join([mark] * 10)})")
        self._sql_insert_next = (  # SQLite: the offset taken in the insert (see the module's docstring)
            f'INSERT INTO events ({EVENT_COLUMN_LIST}) VALUES (COALESCE((SELECT MAX("offset") FROM events), 0) + 1, '
            f"{', '.join([mark] * 9)})")
        self._sql_bump_insert = (  # PostgreSQL: the counter bump and the insert as one statement
            "WITH c AS (UPDATE counters SET value = value + 1 WHERE name = 'offset' RETURNING value) "
            f"INSERT INTO events ({EVENT_COLUMN_LIST}) SELECT c.value, {', '.join([mark] * 9)} FROM c "
            'RETURNING "offset"')
        self._sql_void = f"INSERT INTO void_events (hash, author, seq, raw, sig) VALUES ({', '.join([mark] * 5)})"
        self._sql_snapshot = ('INSERT INTO judge_snapshots ("offset", rules, digest, data, created_at) '
                              f"VALUES ({', '.join([mark] * 5)})")
        self._writer: Any = None  # the write path's DBAPI connection (see _raw_write)
        self.wal: WalCheckpointer | None = None  # SQLite files: checkpoints off the commit path

    def _close_writer(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                with contextlib.suppress(Exception):
                    writer.close()

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
                conn.exec_driver_sql(self._sql_snapshot, (offsets[-1], *snapshot, now_ms()))
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
                fronts = self._merkle_insert(rows, cursor_query(cursor), cursor.executemany) if rows else {}
                if void_rows:
                    cursor.executemany(self._sql_void, [(r["hash"], r["author"], r["seq"], r["raw"], r["sig"])
                                                        for r in void_rows])
                if snapshot is not None and offsets:
                    cursor.execute("DELETE FROM judge_snapshots")
                    cursor.execute(self._sql_snapshot, (offsets[-1], *snapshot, now_ms()))
                crash_point("events.mid_write")
                cursor.close()
                raw.commit()
                self.merkle.remember(fronts)
                if self.wal is not None:
                    self.wal.poke()
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
        if self.dialect == "sqlite":
            params = _params(rows)
            if n == 1:
                cursor.execute(self._sql_insert_next + ' RETURNING "offset"', params[0])
                return [cursor.fetchall()[0][0]]
            cursor.executemany(self._sql_insert_next, params)
            cursor.execute('SELECT MAX("offset") FROM events')  # ours: this transaction is the only writer
            last = cursor.fetchall()[0][0]
            return list(range(last - n + 1, last + 1))
        if n == 1:  # PostgreSQL: one round trip for bump + insert
            r = rows[0]
            cursor.execute(self._sql_bump_insert, (r["hash"], r["author"], r["seq"], r["type"], r["ts"], r["raw"],
                                                   r["sig"], bool(r["valid"]), r["reason"]))
            return [cursor.fetchall()[0][0]]
        cursor.execute(self._sql_bump, (n,))
        last = cursor.fetchall()[0][0]
        first = last - n + 1
        with cursor.copy(_COPY_EVENTS) as copy:
            for i, r in enumerate(rows):
                copy.write_row((first + i, r["hash"], r["author"], r["seq"], r["type"], r["ts"], r["raw"], r["sig"],
                                bool(r["valid"]), r["reason"]))
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
        if self.dialect == "sqlite":
            conn.exec_driver_sql(self._sql_insert_next, _params(rows))
            last = conn.exec_driver_sql('SELECT MAX("offset") FROM events').scalar_one()
        else:
            last = conn.exec_driver_sql(self._sql_bump, (n,)).scalar_one()
            first = last - n + 1
            payload = [(first + i, r["hash"], r["author"], r["seq"], r["type"], r["ts"], r["raw"], r["sig"],
                        bool(r["valid"]), r["reason"]) for i, r in enumerate(rows)]
            if n > 1:
                self._copy_events(conn, payload)
            else:
                conn.exec_driver_sql(self._sql_insert, payload[0])
        # The caller commits (or not): no frontier is cached from this path.
        self._merkle_insert(rows, conn_query(conn), conn.exec_driver_sql)
        return list(range(last - n + 1, last + 1))

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

    def insert_void(self, rows: Sequence[dict[str, Any]], conn: Connection | None = None) -> None:
        """Keep void events of proven forkers (hash, author, seq, raw, sig) for causal delivery."""
        if not rows:
            return
        if conn is not None:
            conn.execute(void_events.insert(), list(rows))
            return
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(void_events.insert(), list(rows))

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


def _params(rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Event rows as the parameters of `_sql_insert_next` (every column but the offset)."""
    return [(r["hash"], r["author"], r["seq"], r["type"], r["ts"], r["raw"], r["sig"], bool(r["valid"]), r["reason"])
            for r in rows]
