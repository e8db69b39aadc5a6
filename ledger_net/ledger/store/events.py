"""Reading the log: events by offset, hash, author and type; heads and counts; void events,
fork proofs; and the Merkle roots and proofs of an author's chain (see `merkle_log`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import func, select

from ..tables import events, fork_proofs, void_events
from .base import StoreBase, conn_query
from .records import EVENT_COLUMN_LIST, EVENT_COLUMNS, ForkProof, StoredEvent, stored


class EventReads(StoreBase):
    """The store's read methods for the log (mixed into `Store`)."""

    def _init_reads(self, mark: str) -> None:
        self._sql_select = f"SELECT {EVENT_COLUMN_LIST} FROM events WHERE \"offset\" > {mark}"
        self._sql_select_until = self._sql_select + f" AND \"offset\" <= {mark}"

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
            row = conn.execute(select(*EVENT_COLUMNS).where(events.c.hash == hash_)).first()
        return stored(row) if row else None

    def get_by_author_seq(self, author: str, seq: int) -> StoredEvent | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*EVENT_COLUMNS).where(events.c.author == author, events.c.seq == seq)).first()
        return stored(row) if row else None

    def chain_segment(self, author: str, from_seq: int = 1, limit: int = 1000) -> list[StoredEvent]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(*EVENT_COLUMNS).where(events.c.author == author, events.c.seq >= from_seq)
                                .order_by(events.c.seq).limit(limit)).all()
        return [stored(r) for r in rows]

    def events_of_type(self, author: str, type_: str) -> list[StoredEvent]:
        """`author`'s events of one type (e.g. the fork proofs a node published), via the type index."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(*EVENT_COLUMNS).where(events.c.type == type_, events.c.author == author)
                                .order_by(events.c.offset)).all()
        return [stored(r) for r in rows]

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

    def void_hashes(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(void_events.c.hash)).scalars())

    def get_void(self, hash_: str) -> tuple[bytes, bytes] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(void_events.c.raw, void_events.c.sig).where(void_events.c.hash == hash_)).first()
        return (row[0], row[1]) if row else None

    def heads(self) -> dict[str, tuple[int, str]]:
        """author -> (latest seq, its hash)."""
        with self.engine.connect() as conn:
            latest = select(events.c.author, func.max(events.c.seq).label("seq")).group_by(events.c.author).subquery()
            rows = conn.execute(select(events.c.author, events.c.seq, events.c.hash).join(
                latest, (events.c.author == latest.c.author) & (events.c.seq == latest.c.seq))).all()
        return {a: (s, h) for a, s, h in rows}

    def last_offset(self) -> int:
        """The offset of the newest committed event (0 for an empty log): a seek on the primary key."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(events.c.offset), 0))).scalar_one())

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

    # ----------------------------------------------------------------- Merkle proofs
    def author_root(self, author: str, size: int) -> bytes:
        """RFC 9162 root of `author`'s chain as of its first `size` events (see merkle_log)."""
        with self.engine.connect() as conn:
            return self.merkle.root(author, size, conn_query(conn))

    def inclusion_proof(self, author: str, seq: int, size: int) -> list[bytes]:
        """Hashes proving `author`'s event at `seq` is in its chain of `size` events."""
        with self.engine.connect() as conn:
            return self.merkle.inclusion_proof(author, seq, size, conn_query(conn))

    def consistency_proof(self, author: str, old_size: int, new_size: int) -> list[bytes]:
        """Hashes proving `author`'s chain of `old_size` events is a prefix of that of `new_size`."""
        with self.engine.connect() as conn:
            return self.merkle.consistency_proof(author, old_size, new_size, conn_query(conn))
