"""The projection contract: an in-memory fold over effective events that can write
its rows to tables, load them back, and hash itself.

Projections fold in memory (so a rebuild runs at memory speed) and persist dirty
rows with their checkpoint in one transaction when the runner flushes.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Self

import orjson
from sqlalchemy import Connection, Table, select

from ..ledger.events import Event
from .tables import projection_memory


@dataclass(frozen=True, slots=True)
class Context:
    """What a projection may know beyond the event: the ledger's network facts."""

    issuers: frozenset[str]
    frozen: dict[str, int]
    params: dict[str, Any]


class RowBatch:
    """Stored rows folded together (`Store.select_rows` tuples: offset, hash, author, seq, type,
    ts, raw, sig, valid, reason; verdicts as stored), handed to every projection in turn
    (`Projection.fold_rows`). An event is decoded only when a projection asks for it, and once."""

    __slots__ = ("rows", "types", "_events")

    def __init__(self, rows: Sequence[Any]) -> None:
        self.rows = rows
        self.types: frozenset[str] = frozenset(map(_TYPE, rows))  # what a projection may skip the batch for
        self._events: dict[int, Event] = {}

    def event(self, i: int) -> Event:
        """The event of row `i`, decoded from its stored bytes (checked before they were stored)."""
        event = self._events.get(i)
        if event is None:
            row = self.rows[i]
            event = self._events[i] = Event.from_stored(row[6], row[7], row[1])
        return event


_TYPE = itemgetter(4)


class Projection(ABC):
    name: str = ""
    tables: tuple[Table, ...] = ()
    _lock: threading.RLock | None = None  # the runner's, once it owns this projection

    def share_lock(self, lock: threading.RLock) -> None:
        """Fold and read under `lock` (the runner's: it folds every projection under one)."""
        self._lock = lock

    @contextmanager
    def reading(self) -> Iterator[Self]:
        """Hold the lock this projection folds under while reading it: the runner folds on the
        writer thread, and a reader that copies rows outside the lock may see half an event."""
        if self._lock is None:
            self._lock = threading.RLock()
        with self._lock:
            yield self

    @abstractmethod
    def reset(self) -> None:
        """Forget everything (before a rebuild or replay)."""

    @abstractmethod
    def apply(self, offset: int, event: Event, reason: str | None, ctx: Context) -> None:
        """Fold one stored event; `reason` is None for effective events."""

    def fold_rows(self, batch: RowBatch, ctx: Context) -> None:
        """Fold a batch of stored rows, in order, to the state `apply` reaches row by row (a
        rebuild's path). This default applies each row; a projection overrides it to skip the
        rows it ignores without decoding them, or to fold the batch in one tight loop
        (property_tests/test_rebuild_props.py holds every override to `apply`'s result)."""
        self.apply_rows(batch, range(len(batch.rows)), ctx)

    def apply_rows(self, batch: RowBatch, indexes: Iterable[int], ctx: Context) -> None:
        """`apply` the rows of `batch` at `indexes` (ascending), one by one."""
        rows, apply = batch.rows, self.apply
        for i in indexes:
            row = rows[i]
            apply(row[0], batch.event(i), None if row[8] else row[9], ctx)

    @abstractmethod
    def rows(self) -> dict[Table, list[dict[str, Any]]]:
        """Every row of every table, as they should be stored."""

    @abstractmethod
    def dirty_rows(self) -> dict[Table, tuple[list[Any], list[dict[str, Any]]]]:
        """Rows changed since the last flush: table -> (keys to delete, rows to insert)."""

    def flush_rows(self) -> dict[Table, tuple[list[Any], Sequence[dict[str, Any]] | Sequence[tuple[Any, ...]]]]:
        """`dirty_rows` as the runner writes them: a table's rows may instead be tuples in the
        table's column order (driver executemany binds a tuple in half a dict's time). The
        default: `dirty_rows`."""
        return dict(self.dirty_rows())

    def take_history_rows(self) -> dict[Table, Sequence[dict[str, Any]] | Sequence[tuple[Any, ...]]]:
        """`take_history` as `flush_rows` gives them (tuples where the projection keeps
        tuples): a rebuild with a writer process streams them between flushes."""
        return dict(self.take_history())

    @abstractmethod
    def load(self, conn: Connection, offset: int) -> None:
        """Rebuild the in-memory view from the tables (on open), as of the checkpoint at
        `offset`: the runner then folds the events after it, so anything re-derived from
        the log here must stop at `offset` or the tail would be counted twice."""

    def memory(self) -> bytes | None:
        """What this projection keeps only in memory (not in its tables) and `load` would
        otherwise re-derive from the log, as bytes: the runner stores it with every
        checkpoint (table projection_memory) so that opening costs the rows, not the log.
        None (the default): nothing of the kind."""
        return None

    def take_history(self) -> dict[Table, list[dict[str, Any]]]:
        """Hand over the rows of append-only history tables (those with an `offset` column)
        folded since the last flush or take, and forget them: a fold that checks or replays
        without writing drains them as it goes, so its memory grows per account, not per
        event. The default: no history tables."""
        return {}

    def full_rows(self) -> dict[Table, list[dict[str, Any]]]:
        """Every row of every table of a projection folded from scratch and never flushed:
        what its tables must hold at the fold's offset (the audit compares them).
        Projections with append-only history tables add the rows they have not flushed."""
        return self.rows()

    @abstractmethod
    def digest_items(self) -> Iterable[Any]:
        """The projection's state without local details (offsets), in a canonical order."""

    def state_hash(self) -> str:
        """sha256 over each digest item's canonical bytes, one line each. The items are lists of
        the integers, strings and None a projection keeps (built from bodies the schemas
        checked), so they are encoded as canonical bytes are, with orjson's sorted keys,
        without `encoding.canonical_bytes`' per-value walk: it took 0.50 s of a 100k-event
        rebuild's 5.1 s profile (every flush writes a checkpoint with this hash)."""
        h = hashlib.sha256()
        dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS
        for item in self.digest_items():
            h.update(dumps(item, option=sort_keys))
            h.update(b"\n")
        return h.hexdigest()


class DigestLines:
    """The lines of a projection's state hash for its keyed rows (an item's canonical bytes and
    a newline, as `Projection.state_hash` writes them), kept between hashes and re-encoded only
    for keys changed since: a hash then costs the changed rows' encoding and one C-level join of
    all lines, not the encoding of every account at every flush (the runner hashes at each).

    Readers may hash outside the runner's lock (the status endpoint does), as before: the fold
    marks a key changed (the projection's dirty set) before it changes the row, and the dirty
    keys move here (`mark`) under this object's own lock, so a line read mid-event is encoded
    again at the next hash."""

    __slots__ = ("lines", "stale", "_lock")

    def __init__(self) -> None:
        self.lines: dict[Any, bytes] = {}
        self.stale: set[Any] = set()  # keys whose line may be out of date
        self._lock = threading.Lock()

    def mark(self, keys: Iterable[Any]) -> None:
        """Note `keys` as changed (the projection forgets them as dirty right after)."""
        with self._lock:
            self.stale.update(keys)

    def feed(self, h: Any, item_of: Callable[[Any], Any], changed: Iterable[Any]) -> None:
        """Update `h` with every line in key order, after re-encoding those of the `stale` and
        `changed` keys (`item_of(key)`: the key's digest item, None for a key that is gone)."""
        dumps, sort_keys = orjson.dumps, orjson.OPT_SORT_KEYS
        with self._lock:
            lines = self.lines
            for key in self.stale.union(changed):
                item = item_of(key)
                if item is None:
                    lines.pop(key, None)
                else:
                    lines[key] = dumps(item, option=sort_keys) + b"\n"
            self.stale.clear()
            h.update(b"".join(map(lines.__getitem__, sorted(lines))))


def stored_memory(conn: Connection, name: str, offset: int) -> bytes | None:
    """The memory bytes stored with projection `name`'s checkpoint at `offset`, or None if
    there are none, they belong to another offset, or they do not match their digest."""
    row = conn.execute(select(projection_memory.c.offset, projection_memory.c.digest, projection_memory.c.data)
                       .where(projection_memory.c.name == name)).first()
    if row is None or row[0] != offset:
        return None
    data = bytes(row[2])
    return data if hashlib.sha256(data).hexdigest() == row[1] else None
