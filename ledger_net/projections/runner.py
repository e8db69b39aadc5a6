"""The projection runner: keeps every projection caught up with the log, persists
rows with their checkpoint in one transaction, rebuilds from scratch, replays to a
point, and hashes the whole state.

Projections fold in memory as events are committed; `flush` writes what changed.
After a crash the tables are behind by at most the unflushed events, and `open`
folds them again from each projection's checkpoint.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any, Iterable, Sequence

from sqlalchemy import Connection, delete, select, tuple_

from ..ledger import encoding
from ..ledger.chain import Applied, Ledger
from ..ledger.events import Event
from .balances import BalancesProjection
from .base import Context, Projection
from .nodes import NodesProjection
from .reputation import ReputationProjection
from .tables import checkpoints
from .tasks import TasksProjection

DELETE_CHUNK = 500


def default_projections() -> list[Projection]:
    return [BalancesProjection(), ReputationProjection(), TasksProjection(), NodesProjection()]


class ProjectionRunner:
    """Owns the projections of one ledger."""

    def __init__(self, ledger: Ledger, projections: Sequence[Projection] | None = None, *,
                 flush_every: int = 2000, subscribe: bool = True) -> None:
        self.ledger = ledger
        self.projections = list(projections or default_projections())
        self.by_name = {p.name: p for p in self.projections}
        self.flush_every = flush_every
        self._lock = threading.RLock()
        self._offset = 0
        self._unflushed = 0
        self._open()
        if subscribe:
            ledger.subscribe(self._on_applied, self.rebuild)

    def __getitem__(self, name: str) -> Any:
        return self.by_name[name]

    # ------------------------------------------------------------------ setup
    def context(self) -> Context:
        state = self.ledger.state
        params = state.genesis.body.get("params", {}) if state.genesis else {}
        return Context(state.issuers, dict(state.frozen), params)

    def _open(self) -> None:
        if getattr(self.ledger, "verdicts_changed", False):
            self.rebuild()  # stored verdicts were re-judged on open: fold every projection anew
            return
        with self.ledger.store.engine.connect() as conn:
            saved = {name: offset for name, offset in conn.execute(select(checkpoints.c.name, checkpoints.c.offset))}
            for p in self.projections:
                if p.name in saved:
                    p.load(conn)
                else:
                    p.reset()
        behind = {p.name: saved.get(p.name, 0) for p in self.projections}
        start = min(behind.values(), default=0)
        ctx = self.context()
        self._offset = start
        for row in self.ledger.store.select_events(after=start):
            event = Event.from_stored(row.raw, row.sig, row.hash)
            for p in self.projections:
                if row.offset > behind[p.name]:
                    p.apply(row.offset, event, row.reason if not row.valid else None, ctx)
            self._offset = row.offset
            self._unflushed += 1
        self.flush()

    # ---------------------------------------------------------------- folding
    def _on_applied(self, applied: list[Applied]) -> None:
        with self._lock:
            ctx = self.context()
            for item in applied:
                if item.offset <= self._offset:
                    continue
                for p in self.projections:
                    p.apply(item.offset, item.event, item.reason, ctx)
                self._offset = item.offset
            self._unflushed += len(applied)
            if self._unflushed >= self.flush_every:
                self.flush()

    def flush(self) -> None:
        """Write every projection's changed rows and its checkpoint in one transaction.

        Takes the store's writer lock: on SQLite one writer at a time is the rule, and
        waiting here beats a 'database is locked' error in whoever wrote concurrently."""
        with self._lock, self.ledger.store.writer(), self.ledger.store.engine.begin() as conn:
            for p in self.projections:
                for table, (keys, rows) in p.dirty_rows().items():
                    _delete_keys(conn, table, keys)
                    if rows:
                        self.ledger.store.bulk_insert(conn, table, rows)
                conn.execute(delete(checkpoints).where(checkpoints.c.name == p.name))
                conn.execute(checkpoints.insert().values(name=p.name, offset=self._offset, state_hash=p.state_hash()))
            self._unflushed = 0

    def rebuild(self) -> None:
        """Drop every projection's rows and fold the whole log again."""
        with self._lock:
            with self.ledger.store.writer(), self.ledger.store.engine.begin() as conn:
                for p in self.projections:
                    for table in p.tables:
                        conn.execute(delete(table))
                conn.execute(delete(checkpoints))
            for p in self.projections:
                p.reset()
            self._offset = 0
            self._fold(self.projections, self.ledger.store.select_events())
            self.flush()

    def _fold(self, projections: Sequence[Projection], rows: Iterable[Any]) -> None:
        ctx = self.context()
        for row in rows:
            event = Event.from_stored(row.raw, row.sig, row.hash)
            reason = None if row.valid else row.reason
            for p in projections:
                p.apply(row.offset, event, reason, ctx)
            self._offset = max(self._offset, row.offset)

    # ---------------------------------------------------------------- reading
    @property
    def offset(self) -> int:
        return self._offset

    def state_hash(self, projections: Sequence[Projection] | None = None) -> str:
        """One hash of all projections' states; equal on any two stores holding the same events."""
        parts = {p.name: p.state_hash() for p in (projections or self.projections)}
        return hashlib.sha256(encoding.canonical_bytes(parts)).hexdigest()

    def replay(self, until: int | str | None = None) -> list[Projection]:
        """Fresh projections folded up to `until` (an offset or an event hash); nothing is written."""
        limit = self.resolve_point(until)
        fresh = [type(p)() for p in self.projections]
        ctx = self.context()
        for row in self.ledger.store.select_events(until=limit):
            event = Event.from_stored(row.raw, row.sig, row.hash)
            for p in fresh:
                p.apply(row.offset, event, None if row.valid else row.reason, ctx)
        return fresh

    def resolve_point(self, until: int | str | None) -> int | None:
        if until is None or isinstance(until, int):
            return until
        if len(until) == 64:
            offset = self.ledger.store.offset_of(until)
            if offset is None:
                from ..errors import LedgerError

                raise LedgerError(f"no event {until[:16]}… in this ledger")
            return offset
        return int(until)


def _delete_keys(conn: Connection, table: Any, keys: list[Any]) -> None:
    if not keys:
        return
    pk = list(table.primary_key.columns)
    for i in range(0, len(keys), DELETE_CHUNK):
        part = keys[i:i + DELETE_CHUNK]
        if len(pk) == 1:
            conn.execute(delete(table).where(pk[0].in_(part)))
        else:
            conn.execute(delete(table).where(tuple_(*pk).in_(part)))
