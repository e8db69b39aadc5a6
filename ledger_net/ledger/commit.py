"""Group commit: concurrent writers of one ledger share a transaction and its commit.

A commit costs the same for one event as for a hundred (a WAL append and, depending on
the durability setting, an fsync), so when several threads append at once, the first
to find no commit running becomes the leader: it takes every write queued so far, stores
them in one transaction, hands the events to the ledger's listeners in commit order and
wakes the others. Writes queued while it commits form the next group. Every caller
returns (or raises) only once its own events are durable (or known lost).

Writes are queued in the order the ledger judged them (under its lock), and groups are
committed in queue order by one leader at a time, so offsets, author chains and listener
notifications keep that order. When a group's write fails, that group and everything
queued after it (which was judged on top of it) fail together, the epoch advances, and
the ledger must reload its state from the store before judging anything else.

This module never takes the ledger's lock: a caller holding it (an ingest) may wait here
for a leader in another thread without a deadlock. Listeners run in the leader's thread
and must not wait for the ledger's lock held by another thread.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import LedgerError
from ..faults import crash_point

Row = dict[str, Any]
Snapshot = tuple[str, str, bytes]


class GroupFailed(LedgerError):
    """An earlier write of the same group commit failed: nothing of this write was stored."""


@dataclass(eq=False)
class Write:
    """One caller's rows waiting for the group commit. `payload` travels back with the
    offsets to `on_commit` (the ledger keeps its events there)."""

    rows: list[Row]
    void_rows: list[Row]
    snapshot: Snapshot | None
    payload: Any
    offsets: list[int] = field(default_factory=list)
    done: bool = False
    error: BaseException | None = None


StoreWrite = Callable[[Sequence[Row], Sequence[Row], Snapshot | None], list[int]]
OnCommit = Callable[[list[Write]], None]


class GroupCommit:
    """The queue of writes of one ledger and the leader that commits them."""

    def __init__(self, write: StoreWrite, on_commit: OnCommit) -> None:
        self._write = write
        self._on_commit = on_commit  # called by the leader after each durable group, in order
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[Write] = []
        self._leader: int | None = None  # thread id of the committing thread
        self._waiting = 0  # threads in `_cond.wait()` (no notify when there are none)
        self.epoch = 0  # advances when a write fails: state judged before it is stale
        self.groups = 0  # groups committed (for benches and tests: events per commit)

    def submit(self, write: Write, epoch: int) -> None:
        """Queue `write`, judged on state of `epoch` (call with the ledger's lock held, so
        the queue keeps the order of judging). GroupFailed if a write failed since."""
        with self._cond:
            if epoch != self.epoch:
                raise GroupFailed("an earlier write failed and the ledger was not reloaded; nothing was stored")
            self._queue.append(write)

    def wait(self, write: Write) -> list[int]:
        """Return `write`'s offsets once it is durable, committing as the leader when no
        other thread is; raise what made it fail."""
        me = threading.get_ident()
        with self._cond:
            while not write.done and self._leader is not None and self._leader != me:
                self._sleep()
            if write.done:
                return _result(write)
            outer, self._leader = self._leader, me  # outer: a listener of ours appending
        try:
            while not write.done:
                self._commit_next()
        finally:
            with self._cond:
                self._leader = outer
                if self._waiting:  # those whose writes are done, and the next leader
                    self._cond.notify_all()
        return _result(write)

    def _sleep(self) -> None:
        self._waiting += 1
        try:
            self._cond.wait()
        finally:
            self._waiting -= 1

    def drain(self) -> None:
        """Wait until everything queued so far is committed or failed (call with the
        ledger's lock held, so nothing new is queued meanwhile)."""
        with self._cond:
            last = self._queue[-1] if self._queue else None
        if last is not None:
            with contextlib.suppress(Exception):  # its own caller reports it; the ledger reloads
                self.wait(last)
        me = threading.get_ident()
        with self._cond:
            while self._leader is not None and self._leader != me:
                self._sleep()

    def _commit_next(self) -> None:
        """Commit the writes at the head of the queue as one transaction (a group ends at the
        first write carrying a judge snapshot: the snapshot is stored at that write's last
        offset)."""
        with self._cond:
            cut = next((i + 1 for i, w in enumerate(self._queue) if w.snapshot is not None), len(self._queue))
            group, self._queue = self._queue[:cut], self._queue[cut:]
        if not group:
            return
        rows = [r for w in group for r in w.rows]
        void_rows = [r for w in group for r in w.void_rows]
        try:
            offsets = self._write(rows, void_rows, group[-1].snapshot) if rows or void_rows else []
            crash_point("events.committed")
        except BaseException as exc:
            with self._cond:
                self.epoch += 1
                later, self._queue = self._queue, []
                for w in group:
                    w.error, w.done = exc, True
                for w in later:
                    w.error = GroupFailed(f"an earlier write of its group commit failed: {type(exc).__name__}")
                    w.error.__cause__ = exc
                    w.done = True
                self._cond.notify_all()
            return
        start = 0
        for w in group:
            w.offsets = offsets[start:start + len(w.rows)]
            start += len(w.rows)
        self.groups += 1
        try:
            self._on_commit(group)  # listeners see groups in commit order: the next leader waits
        finally:
            for w in group:  # their callers are woken when this leader steps down (`wait`)
                w.done = True


def _result(write: Write) -> list[int]:
    if write.error is not None:
        raise write.error
    return write.offsets
