"""The projection contract: an in-memory fold over effective events that can write
its rows to tables, load them back, and hash itself.

Projections fold in memory (so a rebuild runs at memory speed) and persist dirty
rows with their checkpoint in one transaction when the runner flushes.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

    @abstractmethod
    def rows(self) -> dict[Table, list[dict[str, Any]]]:
        """Every row of every table, as they should be stored."""

    @abstractmethod
    def dirty_rows(self) -> dict[Table, tuple[list[Any], list[dict[str, Any]]]]:
        """Rows changed since the last flush: table -> (keys to delete, rows to insert)."""

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


def stored_memory(conn: Connection, name: str, offset: int) -> bytes | None:
    """The memory bytes stored with projection `name`'s checkpoint at `offset`, or None if
    there are none, they belong to another offset, or they do not match their digest."""
    row = conn.execute(select(projection_memory.c.offset, projection_memory.c.digest, projection_memory.c.data)
                       .where(projection_memory.c.name == name)).first()
    if row is None or row[0] != offset:
        return None
    data = bytes(row[2])
    return data if hashlib.sha256(data).hexdigest() == row[1] else None
