"""The projection runner: keeps every projection caught up with the log, persists
rows with their checkpoint in one transaction, rebuilds from scratch, replays to a
point, and hashes the whole state.

Projections fold in memory as events are committed; `flush` writes what changed,
rows and checkpoint in one transaction. After a crash the tables are behind by at
most the unflushed events, and `open` loads each projection as of its checkpoint and
folds the events after it, each once; a projection that does not fit the log is
rebuilt from it (one warning line), so derived state never keeps a node down.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self, TypeVar, cast

from sqlalchemy import Connection, Index, delete, literal, select, tuple_

from ..faults import crash_point
from ..ledger import encoding
from ..ledger.chain import Applied, Ledger
from ..ledger.events import Event
from .balances import BalancesProjection
from .base import Context, Projection, RowBatch
from .consistency import Loaded, history_tables, load_stored
from .flush_writer import FlushWriter, Recorder, usable
from .nodes import NodesProjection
from .reputation import ReputationProjection
from .rows import HistoryRow
from .tables import checkpoints, credit_history, projection_memory
from .tasks import TasksProjection

log = logging.getLogger(__name__)

DELETE_CHUNK = 500
# Keys a statement when a flush deletes the changed rows of a one-column key on SQLite: a
# 10k-account flush's deletes took 0.026 s CPU one key a statement.
SQLITE_DELETE_KEYS = 50
# Events folded between flushes when folding a long stretch of the log (a rebuild, the first
# catch-up): bounds the rows held in memory (~1.5 history rows per money event, tuples of
# ~0.3 KB with their strings, so ~25 MiB) while keeping flushes few (each rewrites and hashes
# every account and node it touched, ~0.13 s CPU for 10k of each: at 25,000 events these
# flushes were a fifth of a 100k-event rebuild; at 2,000 it ran at half the speed of one flush).
FOLD_BATCH = 50_000
# Rows a rebuild reads and hands to the projections at a time (`Projection.fold_rows`): each
# batch costs every projection its per-batch work (nodes: one row update per distinct author).
REBUILD_READ = 10_000
P = TypeVar("P", bound=Projection)


def default_projections() -> list[Projection]:
    return [BalancesProjection(), ReputationProjection(), TasksProjection(), NodesProjection()]


def state_hash_of(projections: Sequence[Projection]) -> str:
    """One hash of these projections' states (the runner's state hash, and a replay's): the
    sha256 of the canonical bytes of {name: projection state hash}."""
    parts = {p.name: p.state_hash() for p in projections}
    return hashlib.sha256(encoding.canonical_bytes(parts)).hexdigest()


class ProjectionSet:
    """The typed face of a set of projections (the runner's, a replay's fold): one accessor
    per projection, returning its class, and `reading()`, which holds the lock they fold
    under. Readers outside `projections/` use these, never a name or the lock itself."""

    ledger: Ledger
    projections: list[Projection]
    _lock: threading.RLock

    def _own(self, projections: Sequence[Projection]) -> None:
        """Take `projections` as this set's, folded and read under one lock of its own."""
        self.projections = list(projections)
        self.by_name = {p.name: p for p in self.projections}
        self._by_type: dict[type[Projection], Projection] = {type(p): p for p in self.projections}
        self._lock = threading.RLock()
        for p in self.projections:
            p.share_lock(self._lock)

    def __getitem__(self, name: str) -> Projection:
        """A projection by name, for code generic over projections; readers use the typed accessors."""
        return self.by_name[name]

    def of(self, kind: type[P]) -> P:
        """This set's projection of class `kind` (KeyError if it has none)."""
        found = self._by_type.get(kind)
        if found is None:
            found = next((p for p in self.projections if isinstance(p, kind)), None)
            if found is None:
                raise KeyError(kind.name or kind.__name__)
        assert isinstance(found, kind)
        return found

    @property
    def balances(self) -> BalancesProjection:
        return self.of(BalancesProjection)

    @property
    def reputation(self) -> ReputationProjection:
        return self.of(ReputationProjection)

    @property
    def tasks(self) -> TasksProjection:
        return self.of(TasksProjection)

    @property
    def nodes(self) -> NodesProjection:
        return self.of(NodesProjection)

    @contextmanager
    def reading(self) -> Iterator[Self]:
        """Hold the lock every projection here folds under: reads inside see whole events only
        (the runner folds on the writer thread)."""
        with self._lock:
            yield self


class ProjectionRunner(ProjectionSet):
    """Owns the projections of one ledger."""

    # Long rebuilds on a SQLite file may commit their flushes in a writer process
    # (flush_writer.py): True always, False never, None (the default) when the machine has a
    # core to spare. It takes ~22 % of the rebuild's CPU off this process but adds ~7 % in all
    # (pickling, the child's reads), so on busy cores the rebuild's wall time only grows
    # (docs/performance.md, "A writer process for rebuilds").
    rebuild_writer: bool | None = None

    def __init__(self, ledger: Ledger, projections: Sequence[Projection] | None = None, *,
                 flush_every: int = 2000, subscribe: bool = True, fold_batch: int = FOLD_BATCH) -> None:
        self.ledger = ledger
        self._own(projections or default_projections())
        self.flush_every = flush_every
        self.fold_batch = fold_batch
        self._offset = 0
        self._unflushed = 0
        self._open()
        self._ensure_indexes()
        if subscribe:
            ledger.subscribe(self._on_applied, self.rebuild)

    # ------------------------------------------------------------------ setup
    def context(self) -> Context:
        state = self.ledger.state
        params = state.genesis.body.get("params", {}) if state.genesis else {}
        return Context(state.issuers, dict(state.frozen), params)

    def _open(self) -> None:
        """Load every projection from its checkpoint and fold the tail, each event once.

        A projection whose stored rows do not fit the log (see `consistency.load_stored`)
        is rebuilt from the log, with one warning line: derived state never keeps a node
        from starting."""
        if getattr(self.ledger, "verdicts_changed", False):
            self.rebuild()  # stored verdicts were re-judged on open: fold every projection anew
            return
        if self._nothing_stored():  # a first start: the whole log is folded the way a rebuild folds it
            self.rebuild()
            return
        loaded = load_stored(self.ledger, self.projections, self.context(), self._flush_loaded, self.fold_batch)
        self._offset = loaded.offset
        if loaded.problems:
            log.warning("rebuilding projection(s) %s from the log: %s", ", ".join(sorted(loaded.problems)),
                        "; ".join(f"{name}: {why}" for name, why in sorted(loaded.problems.items())))
            self._rebuild([p for p in self.projections if p.name in loaded.problems])
            return
        try:
            self.flush()
        except Exception as exc:  # the folded tail does not fit the stored rows after all
            log.warning("rebuilding projection(s) %s from the log: writing the folded tail failed (%s: %s)",
                        ", ".join(p.name for p in self.projections), type(exc).__name__, exc)
            self.rebuild()

    def _nothing_stored(self) -> bool:
        """No checkpoint and no row of any of these projections is stored (rows without a
        checkpoint are a problem `load_stored` names before they are rebuilt)."""
        names = [p.name for p in self.projections]
        with self.ledger.store.engine.connect() as conn:
            if conn.execute(select(checkpoints.c.name).where(checkpoints.c.name.in_(names)).limit(1)).first():
                return False
            return not any(conn.execute(select(literal(1)).select_from(table).limit(1)).first()
                           for p in self.projections for table in p.tables)

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
        with self._lock:
            self._flush(self.projections, self._offset)
            self._unflushed = 0

    def _flush(self, projections: Sequence[Projection], offset: int, writer: FlushWriter | None = None) -> None:
        """Write these projections' changed rows and their checkpoints at `offset` (the
        last event each has folded) in one transaction: this thread's, or the `writer`
        process's (it commits while the caller folds on)."""
        with self._lock:
            parts = []
            for p in projections:  # rows, then the hash and memory they leave
                changed = p.flush_rows()
                parts.append((p.name, changed, p.state_hash(), p.memory()))
            if writer is not None:
                recorder = Recorder(self.ledger.store.engine.dialect)
                self._write_flush(recorder, parts, offset)
                writer.commit(recorder.statements)
                return
            with self.ledger.store.writer(), self.ledger.store.engine.begin() as conn:
                self._write_flush(conn, parts, offset)
                crash_point("flush.before_commit")

    def _write_flush(self, conn: Connection | Recorder, parts: list[tuple[str, Any, str, bytes | None]],
                     offset: int) -> None:
        """A flush's statements on `conn` (or kept by a `Recorder` as the same driver SQL)."""
        recorded = isinstance(conn, Recorder)
        for name, changed, state_hash, memory in parts:
            for table, (keys, rows) in changed.items():
                _delete_keys(cast(Connection, conn), table, keys)
                if rows:
                    self.ledger.store.bulk_insert(cast(Connection, conn), table, rows)
            digest = hashlib.sha256(memory).hexdigest() if memory is not None else ""
            if recorded:  # the writer process runs SQLite driver SQL only
                conn.exec_driver_sql('DELETE FROM projection_checkpoints WHERE name = ?', (name,))
                conn.exec_driver_sql('INSERT INTO projection_checkpoints (name, "offset", state_hash) '
                                     'VALUES (?, ?, ?)', (name, offset, state_hash))
                if memory is not None:
                    conn.exec_driver_sql('DELETE FROM projection_memory WHERE name = ?', (name,))
                    conn.exec_driver_sql('INSERT INTO projection_memory (name, "offset", digest, data) '
                                         'VALUES (?, ?, ?, ?)', (name, offset, digest, memory))
                continue
            assert isinstance(conn, Connection)
            crash_point("flush.mid_write")
            conn.execute(delete(checkpoints).where(checkpoints.c.name == name))
            conn.execute(checkpoints.insert().values(name=name, offset=offset, state_hash=state_hash))
            if memory is not None:  # with its checkpoint, in the same transaction
                conn.execute(delete(projection_memory).where(projection_memory.c.name == name))
                conn.execute(projection_memory.insert().values(name=name, offset=offset, digest=digest, data=memory))

    def _flush_loaded(self, loaded: Loaded) -> None:
        """Mid-tail on open: flush the projections folded up to `loaded.offset` (not those
        with a problem, which will be rebuilt, nor those whose checkpoint is still ahead),
        so the rows of a long tail do not pile up in memory."""
        ready = [p for p in self.projections
                 if p.name not in loaded.problems and loaded.checkpoints[p.name] <= loaded.offset]
        if ready:
            self._flush(ready, loaded.offset)

    def rebuild(self) -> None:
        """Drop every projection's rows and fold the whole log again."""
        self._rebuild(self.projections)

    def _rebuild(self, projections: Sequence[Projection]) -> None:
        """Drop these projections' rows and checkpoints, fold the whole log into them, and
        flush every projection (the others are already caught up to the same offset)."""
        with self._lock:
            names = [p.name for p in projections]
            # The history tables' secondary indexes are dropped for the rebuild and built again
            # in one pass at its end (at 1M events keeping one up row by row cost more than all
            # the other writes); if the rebuild dies in between, `_ensure_indexes` on the next
            # open builds them.
            slow = _history_indexes(projections)
            with self.ledger.store.writer(), self.ledger.store.engine.begin() as conn:
                for index in slow:
                    index.drop(conn, checkfirst=True)
                for p in projections:
                    for table in p.tables:
                        conn.execute(delete(table))
                conn.execute(delete(checkpoints).where(checkpoints.c.name.in_(names)))
                conn.execute(delete(projection_memory).where(projection_memory.c.name.in_(names)))
            for p in projections:
                p.reset()
            writer = self._rebuild_writer()
            try:
                self._fold(projections, self.ledger.store.select_rows(batch=REBUILD_READ), writer)
                self._flush(self.projections, self._offset, writer)
                self._unflushed = 0
                if writer is not None:
                    writer.close()  # the last flush committed
                    writer = None
            finally:
                if writer is not None:
                    writer.abort()
            self._ensure_indexes(slow)

    def _writer_pays(self) -> bool:
        """`rebuild_writer`, or if None: whether the last minute's load leaves 1.5 cores idle."""
        if self.rebuild_writer is not None:
            return self.rebuild_writer
        try:
            return os.getloadavg()[0] <= (os.cpu_count() or 1) - 1.5
        except OSError:
            return False

    def _rebuild_writer(self) -> FlushWriter | None:
        """A writer process for a rebuild on a SQLite file that flushes mid-fold (see
        flush_writer.py); None for short logs, in-memory databases and other dialects."""
        engine = self.ledger.store.engine
        path = engine.url.database
        if (not self._writer_pays() or engine.dialect.name != "sqlite" or not path or path == ":memory:"
                or self.fold_batch <= 0 or self.ledger.store.last_offset() <= self.fold_batch
                or os.name != "posix"  # the child's pipe is passed as a descriptor
                or not usable(engine.dialect, [t for p in self.projections for t in p.tables])):
            return None
        try:
            return FlushWriter(path)
        except OSError as exc:  # no interpreter to start: the rebuild writes its flushes itself
            log.warning("rebuilding without a writer process: %s: %s", type(exc).__name__, exc)
            return None

    def _ensure_indexes(self, indexes: Sequence[Index] | None = None) -> None:
        """Build any of these indexes (default: the history tables') that is missing: a
        rebuild drops them while it folds."""
        with self.ledger.store.writer(), self.ledger.store.engine.begin() as conn:
            for index in indexes if indexes is not None else _history_indexes(self.projections):
                index.create(conn, checkfirst=True)

    def _fold(self, projections: Sequence[Projection], batches: Iterable[Sequence[Any]],
              writer: FlushWriter | None = None) -> None:
        """Fold batches of stored rows (`Store.select_rows`: plain tuples, verdicts as stored,
        nothing re-validated) into `projections`, each projection a whole batch at a time
        (`Projection.fold_rows`), flushing them (rows and checkpoints at the row folded last)
        every `fold_batch` rows: a rebuild's memory is bounded, and a crash in the middle
        resumes from the last of these checkpoints."""
        ctx = self.context()
        every = self.fold_batch if self.fold_batch > 0 else 0
        due = every
        for rows in batches:
            start = 0
            while start < len(rows):
                end = len(rows) if not every else min(len(rows), start + due)
                part = rows if start == 0 and end == len(rows) else rows[start:end]
                batch = RowBatch(part)
                for p in projections:
                    p.fold_rows(batch, ctx)
                if writer is not None:  # the history rows go now, into the flush's open transaction
                    self._send_history(projections, writer)
                last = part[-1][0]
                self._offset = max(self._offset, last)
                start = end
                if every:
                    due -= len(part)
                    if not due:
                        self._flush(projections, last, writer)
                        due = every

    def _send_history(self, projections: Sequence[Projection], writer: FlushWriter) -> None:
        """The history rows folded since the last send, to the writer process."""
        recorder = Recorder(self.ledger.store.engine.dialect)
        for p in projections:
            for table, rows in p.take_history_rows().items():
                if rows:
                    self.ledger.store.bulk_insert(cast(Connection, recorder), table, rows)
        writer.send(recorder.statements)

    # ---------------------------------------------------------------- reading
    @property
    def offset(self) -> int:
        return self._offset

    def account_history(self, account: str, *, before: int = 0, limit: int = 500) -> list[HistoryRow]:
        """`account`'s newest `limit` credit history rows (offset < `before` when given), oldest
        first: the stored rows and those folded since the last flush. The unflushed rows are taken
        first, then the table read: a flush in between only moves rows seen twice (deduplicated)."""
        with self.reading():
            fresh = self.balances.unflushed_history(account)
        stmt = select(credit_history).where(credit_history.c.account == account)
        if before:
            stmt = stmt.where(credit_history.c.offset < before)
        stmt = stmt.order_by(credit_history.c.offset.desc(), credit_history.c.part.desc()).limit(limit)
        with self.ledger.store.engine.connect() as conn:
            rows = {(r["offset"], r["part"]): cast(HistoryRow, dict(r)) for r in conn.execute(stmt).mappings()}
        for r in fresh:
            if not before or r["offset"] < before:
                rows[(r["offset"], r["part"])] = r
        return sorted(rows.values(), key=lambda r: (r["offset"], r["part"]))[-limit:]

    def state_hash(self, projections: Sequence[Projection] | None = None) -> str:
        """One hash of all projections' states; equal on any two stores holding the same events."""
        return state_hash_of(projections or self.projections)

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


def _history_indexes(projections: Sequence[Projection]) -> list[Index]:
    """The secondary indexes of these projections' history tables (a row per event)."""
    return [index for p in projections for table in history_tables(p) for index in sorted(table.indexes, key=str)]


def _delete_keys(conn: Connection, table: Any, keys: list[Any]) -> None:
    if not keys:
        return
    pk = list(table.primary_key.columns)
    if conn.dialect.name == "sqlite":  # prepared statements run by the driver: no IN list to compile
        quote = conn.dialect.identifier_preparer.quote
        name = quote(table.name)
        if len(pk) == 1:  # SQLITE_DELETE_KEYS keys a statement, then one a statement for the rest
            column, n = quote(pk[0].name), SQLITE_DELETE_KEYS
            full = len(keys) // n * n
            if full:
                conn.exec_driver_sql(f"DELETE FROM {name} WHERE {column} IN ({', '.join(['?'] * n)})",
                                     [tuple(keys[i:i + n]) for i in range(0, full, n)])
            if full < len(keys):
                conn.exec_driver_sql(f"DELETE FROM {name} WHERE {column} = ?", [(k,) for k in keys[full:]])
            return
        where = " AND ".join(f"{quote(c.name)} = ?" for c in pk)
        conn.exec_driver_sql(f"DELETE FROM {name} WHERE {where}", [tuple(k) for k in keys])
        return
    for i in range(0, len(keys), DELETE_CHUNK):
        part = keys[i:i + DELETE_CHUNK]
        if len(pk) == 1:
            conn.execute(delete(table).where(pk[0].in_(part)))
        else:
            conn.execute(delete(table).where(tuple_(*pk).in_(part)))
