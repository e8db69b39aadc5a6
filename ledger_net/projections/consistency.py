"""Is what is stored what the log says? Loading stored projections the way a
restarting node does, and comparing them with a fresh fold.

A projection's tables and its checkpoint row are written in one transaction, so
the rows describe the state at the checkpoint's offset; the events after it (the
tail) are committed but not yet folded into the tables. `load_stored` loads each
projection as of its checkpoint and folds the tail, each event exactly once; any
sign that the rows do not fit the log is a problem, and the runner rebuilds that
projection from the log. `StoredCheck` is the audit's view of the same, in the
audit's one pass over the log: the stored rows against a fresh fold at the
checkpoint, row by row, and the stored state after the tail against a fresh fold
of the whole log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, func, select

from ..ledger.chain import Ledger
from ..ledger.events import Event
from ..ledger.store import StoredEvent
from .base import Context, Projection
from .tables import checkpoints

MAX_ROWS_SHOWN = 5  # differing rows named per table; the count says how many more
# Events folded between two hand-overs of history rows by a fold that writes nothing (verify's
# load_stored, the audit's StoredCheck): its memory is per account, never per event.
HISTORY_BATCH = 25_000


@dataclass
class Loaded:
    """What `load_stored` found: each projection's checkpoint offset (0 without one),
    why some cannot be trusted (name -> reason), those with nothing stored at all (no
    checkpoint, no rows), and the last offset folded."""

    checkpoints: dict[str, int] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)
    unstored: list[str] = field(default_factory=list)
    offset: int = 0


def snapshot(conn: Connection) -> Connection:
    """One consistent view for several reads: SQLite's transaction already is one
    (WAL); PostgreSQL's default (read committed) is not, so ask for repeatable read."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def _has_rows(conn: Connection, projection: Projection) -> bool:
    return any(conn.execute(select(func.count()).select_from(t)).scalar_one() for t in projection.tables)


def _rows_after(conn: Connection, projection: Projection, offset: int) -> str | None:
    """The first table with an `offset` column (a history) holding rows past `offset`."""
    for table in projection.tables:
        if "offset" in table.c:
            top = conn.execute(select(func.max(table.c.offset))).scalar_one()
            if top is not None and top > offset:
                return table.name
    return None


def load_rows(conn: Connection, projections: Sequence[Projection], last: int) -> Loaded:
    """Load every projection from its rows as of its checkpoint (no tail yet); `conn`
    should be a `snapshot`, `last` the log's last offset."""
    loaded = Loaded()
    saved = {r.name: (r.offset, r.state_hash) for r in conn.execute(select(checkpoints))}
    for p in projections:
        p.reset()
        if p.name not in saved:
            loaded.checkpoints[p.name] = 0
            if _has_rows(conn, p):
                loaded.problems[p.name] = "rows without a checkpoint"
            else:
                loaded.unstored.append(p.name)
            continue
        offset, digest = saved[p.name]
        loaded.checkpoints[p.name] = offset
        if not 0 <= offset <= last:
            loaded.problems[p.name] = f"checkpoint at offset {offset} is outside the log (0..{last})"
            continue
        ahead = _rows_after(conn, p, offset)
        if ahead is not None:
            loaded.problems[p.name] = f"table {ahead} holds rows of events after its checkpoint at offset {offset}"
            continue
        try:
            p.load(conn, offset)
        except Exception as exc:  # any failure means: do not trust these rows
            loaded.problems[p.name] = f"loading its rows failed ({type(exc).__name__}: {exc})"
            continue
        if p.state_hash() != digest:
            loaded.problems[p.name] = f"its rows do not match the state hash of their checkpoint at offset {offset}"
    loaded.offset = min((loaded.checkpoints[p.name] for p in projections if p.name not in loaded.problems),
                        default=last)
    return loaded


def fold_tail(loaded: Loaded, projections: Sequence[Projection], row: StoredEvent, event: Event,
              ctx: Context) -> None:
    """Fold one stored event into every loaded projection whose checkpoint it is past;
    a projection it fails on joins `loaded.problems` and is folded no further."""
    reason = None if row.valid else row.reason
    for p in projections:
        if row.offset > loaded.checkpoints[p.name] and p.name not in loaded.problems:
            try:
                p.apply(row.offset, event, reason, ctx)
            except Exception as exc:
                loaded.problems[p.name] = (f"folding the event at offset {row.offset} after its checkpoint "
                                           f"failed ({type(exc).__name__}: {exc})")
    loaded.offset = max(loaded.offset, row.offset)


def load_stored(ledger: Ledger, projections: Sequence[Projection], ctx: Context,
                on_batch: Callable[[Loaded], None] | None = None, every: int = 0,
                stored_only: bool = False) -> Loaded:
    """Load every projection from its rows as of its checkpoint, then fold the tail.

    With `on_batch`, it is called after every `every` tail events (the runner flushes
    there, so a long tail, e.g. the first catch-up of a big log, never holds more than
    `every` events' rows in memory).

    `stored_only` (verify) folds only the projections that have something stored: one
    with no checkpoint and no rows (`Loaded.unstored`) has nothing that could fail to fit
    the log, and folding it would cost a pass over the whole log for nothing (14 s of
    a 1M-event verify); with nothing stored at all, no event is folded.

    Never raises over derived state: a projection with rows but no checkpoint (the
    rebuild marker: an operator deleted its checkpoint), a checkpoint outside the log or
    behind its own history rows, rows that fail to load or do not hash to their
    checkpoint's state hash, or a tail event that fails to fold is listed in `problems`,
    left half-loaded, and folded no further; the caller rebuilds it (the runner) or
    reports it (verify)."""
    store = ledger.store
    last = store.last_offset()
    with store.engine.connect() as conn:
        loaded = load_rows(snapshot(conn), projections, last)
    if stored_only:
        projections = [p for p in projections if p.name not in loaded.unstored]
        loaded.offset = min((loaded.checkpoints[p.name] for p in projections if p.name not in loaded.problems),
                            default=last)
    if on_batch is None:  # a check only (verify): the tail's history rows are written nowhere
        every = every or HISTORY_BATCH
    for folded, row in enumerate(store.select_events(after=loaded.offset), 1):
        fold_tail(loaded, projections, row, Event.from_stored(row.raw, row.sig, row.hash), ctx)
        if every > 0 and folded % every == 0:
            if on_batch is not None:
                on_batch(loaded)
            else:
                drop_history(projections)
    return loaded


def drop_history(projections: Sequence[Projection]) -> None:
    """Forget the history rows these projections folded and will never write (a check's fold)."""
    for p in projections:
        p.take_history()


def history_tables(projection: Projection) -> list[Table]:
    """The projection's append-only history tables: those keyed by the event's `offset`."""
    return [t for t in projection.tables if "offset" in t.c]


def _key(table: Table, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


def _table_differences(table: Table, stored: list[dict[str, Any]], fresh: list[dict[str, Any]]
                       ) -> list[dict[str, Any]]:
    """Rows that differ between the table and the fold: missing, extra or changed columns."""
    columns = [c.name for c in table.columns]
    have = {_key(table, r): r for r in stored}
    want = {_key(table, r): r for r in fresh}
    out: list[dict[str, Any]] = []
    for key in sorted(set(have) | set(want), key=repr):
        a, b = have.get(key), want.get(key)
        if a is None or b is None:
            out.append({"key": list(key), "stored": None if a is None else "present",
                        "fold": None if b is None else "present"})
            continue
        changed = {c: {"stored": a[c], "fold": b.get(c)} for c in columns if a[c] != b.get(c)}
        if changed:
            out.append({"key": list(key), "columns": changed})
    return out


class StoredCheck:
    """The audit's check of the stored projections, driven by the audit's one pass over
    the log (`apply` each row in order, then `violations`).

    1. The stored projections are loaded as a restarting node loads them (`load_rows`)
       and fold the tail: every problem is a violation.
    2. Fresh projections fold the whole log (the caller's, if it folds them itself, as
       `replay.Fold` does, after calling `apply` with the same row; they must never have
       been flushed); at each checkpoint offset
       the stored rows and the checkpoint's state hash are compared with them, naming the
       table, each differing row's key and its differing columns.
    3. At the end of the log the stored state plus its tail must hash like the fresh one.

    The checkpoints and the keyed tables (per account, node or task) are read in one
    snapshot when the check starts. History tables (a row per event) are never held whole:
    every `HISTORY_BATCH` events the fresh fold hands over its new history rows
    (`take_history`), and they are compared with the stored rows of the same offset range
    up to the projection's checkpoint (history rows are append-only, so the rows at or
    before a checkpoint do not change while the check runs). Memory stays per account."""

    def __init__(self, ledger: Ledger, factories: Sequence[type[Projection]], ctx: Context,
                 fresh: Sequence[Projection] | None = None) -> None:
        self.ctx = ctx
        self.engine = ledger.store.engine
        self.stored = [factory() for factory in factories]
        self.own_fold = fresh is None
        self.fresh = list(fresh) if fresh is not None else [factory() for factory in factories]
        self.offset = 0
        self.found: list[dict[str, Any]] = []
        self._since = 0  # events folded since the last hand-over of history rows
        # History table name -> offset its stored rows were compared up to, and what differed.
        self._compared: dict[str, int] = {}
        self._history_diffs: dict[str, list[dict[str, Any]]] = {}
        self._history_counts: dict[str, int] = {}
        with ledger.store.engine.connect() as raw_conn:
            conn = snapshot(raw_conn)
            self.saved = {r.name: (r.offset, r.state_hash) for r in conn.execute(select(checkpoints))}
            self.tables = {t.name: [dict(r) for r in conn.execute(select(t)).mappings()]
                           for p in self.fresh for t in p.tables if t not in history_tables(p)}
            self.loaded = load_rows(conn, self.stored, ledger.store.last_offset())
        self.due = sorted({offset for offset, _ in self.saved.values()})

    def apply(self, row: StoredEvent, event: Event) -> None:
        # First, while the fresh fold (the caller's folds after this call) stands at self.offset.
        if self._since >= HISTORY_BATCH:
            self._compare_history()
            drop_history(self.stored)  # their tail's history is never written either
        while self.due and self.due[0] < row.offset:
            self._compare_at(self.due.pop(0))
        if self.own_fold:
            reason = None if row.valid else row.reason
            for p in self.fresh:
                p.apply(row.offset, event, reason, self.ctx)
        fold_tail(self.loaded, self.stored, row, event, self.ctx)
        self.offset = row.offset
        self._since += 1

    def _compare_history(self, upto: int | None = None) -> None:
        """Take the fresh fold's new history rows and compare those at or before each
        projection's checkpoint with the stored rows of the same offsets; `upto` (a checkpoint
        the fold has reached) stands for the fold's offset when it is further."""
        self._since = 0
        reached = self.offset if upto is None else max(self.offset, upto)
        for p in self.fresh:
            taken = p.take_history()
            if p.name not in self.saved:
                continue
            point = self.saved[p.name][0]
            for table in history_tables(p):
                low, high = self._compared.get(table.name, 0), min(reached, point)
                if high <= low:
                    continue
                fresh = [r for r in taken.get(table, []) if low < r["offset"] <= high]
                with self.engine.connect() as conn:
                    stored = [dict(r) for r in conn.execute(
                        select(table).where(table.c.offset > low, table.c.offset <= high)).mappings()]
                diffs = _table_differences(table, stored, fresh)
                self._compared[table.name] = high
                if diffs:
                    shown = self._history_diffs.setdefault(table.name, [])
                    shown += diffs[:MAX_ROWS_SHOWN - len(shown)]
                    self._history_counts[table.name] = self._history_counts.get(table.name, 0) + len(diffs)

    def _compare_at(self, point: int) -> None:
        self._compare_history(point)
        for p in self.fresh:
            if p.name not in self.saved or self.saved[p.name][0] != point:
                continue
            if p.state_hash() != self.saved[p.name][1]:
                self.found.append({"problem": f"the checkpoint of projection {p.name} at offset {point} has a "
                                              "state hash that a fresh fold of the log does not give",
                                   "projection": p.name})
            rows = p.rows()
            for table in p.tables:
                if table.name in self.tables:
                    diffs = _table_differences(table, self.tables[table.name], rows.get(table, []))
                    count = len(diffs)
                else:  # a history table, compared batch by batch up to this checkpoint
                    diffs, count = self._history_beyond(table, point)
                    diffs = self._history_diffs.get(table.name, []) + diffs
                    count += self._history_counts.get(table.name, 0)
                if diffs:
                    self.found.append({"problem": f"projection {p.name}: {count} row(s) of table {table.name} "
                                                  f"differ from a fresh fold of the log at offset {point}",
                                       "projection": p.name, "table": table.name, "rows": diffs[:MAX_ROWS_SHOWN]})

    def _history_beyond(self, table: Table, point: int) -> tuple[list[dict[str, Any]], int]:
        """Stored history rows after the checkpoint at `point`, which a fold at it does not
        hold: the first few as differences, and how many there are."""
        after = table.c.offset > point
        with self.engine.connect() as conn:
            count = conn.execute(select(func.count()).select_from(table).where(after)).scalar_one()
            if not count:
                return [], 0
            pk = list(table.primary_key.columns)
            first = conn.execute(select(*pk).where(after).order_by(*pk).limit(MAX_ROWS_SHOWN)).all()
        return [{"key": list(key), "stored": "present", "fold": None} for key in first], count

    def violations(self) -> list[dict[str, Any]]:
        """Everything found; call once, after the last row."""
        for point in self.due:
            self._compare_at(point)
        self.due = []
        out = [{"problem": f"stored projection {name} does not fit the log: {why} "
                           "(a node rebuilds it from the log on start)", "projection": name}
               for name, why in sorted(self.loaded.problems.items())]
        out += self.found
        for p, q in zip(self.stored, self.fresh, strict=False):
            if p.name not in self.loaded.problems and p.state_hash() != q.state_hash():
                out.append({"problem": f"stored projection {p.name}, loaded as a node loads it and folded to "
                                       f"offset {self.offset}, differs from a fresh fold of the log",
                            "projection": p.name})
        return out
