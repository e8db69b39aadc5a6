"""When the judge's state is saved, and whether a saved one may be trusted on open.

A `Ledger` keeps one `SnapshotKeeper`: every `every` events (or `seconds`) the judge's
state is packed (ledger/snapshot.py) and written with the batch that makes it due, in
its transaction, so opening judges only the tail after it. A snapshot that cannot be
trusted (unreadable, of other rules, damaged, past the log, or made before a fork proof
now stored) is refused with one warning line, and the caller judges the whole log again.
A snapshot is an optimisation: its failure never fails a write or a close.
"""

from __future__ import annotations

import logging
import time

from .rules import LedgerState
from .snapshot import SnapshotError, pack, rules_fingerprint, unpack
from .store import Store

log = logging.getLogger(__name__)

Snapshot = tuple[str, str, bytes]  # (rules fingerprint, digest, data): a row for the store

SNAPSHOT_EVERY = 10_000  # events between judge snapshots (the most a reopen judges)
SNAPSHOT_SECONDS = 300.0  # or this long, if fewer events came


class SnapshotKeeper:
    """The judge snapshots of one store; `every` <= 0 turns them off."""

    def __init__(self, store: Store, every: int = SNAPSHOT_EVERY, seconds: float = SNAPSHOT_SECONDS) -> None:
        self.store = store
        self.every = every
        self.seconds = seconds
        self.since = 0  # events queued or committed after the stored snapshot
        self._clock = time.monotonic()

    def latest(self, frozen: dict[str, int]) -> tuple[LedgerState | None, int, bool]:
        """The latest stored snapshot as (state, its offset, False), or (None, 0, refused)
        when there is none, snapshots are off, or it cannot be trusted (refused, logged:
        the log is judged again). `frozen`: the forkers the stored fork proofs freeze."""
        if self.every <= 0:
            return None, 0, False
        try:
            snap = self.store.latest_snapshot()
        except Exception:  # an unreadable row must not keep the node down: judge the log
            log.warning("judge snapshot unreadable: judging the whole log again", exc_info=True)
            return None, 0, True
        if snap is None:
            return None, 0, False
        try:
            if snap.offset > self.store.last_offset():
                raise SnapshotError(f"it is past the log's last offset {self.store.last_offset()}")
            state = unpack(snap.data, snap.digest, snap.rules)
            if state.frozen != frozen:
                raise SnapshotError("fork proofs stored since change what is void")
        except SnapshotError as exc:
            log.warning("judge snapshot at offset %d not used (%s): judging the whole log again", snap.offset, exc)
            return None, 0, True
        return state, snap.offset, False

    def loaded(self, judged: int) -> None:
        """The state was loaded: `judged` events after the stored snapshot."""
        self.since = judged
        self._clock = time.monotonic()

    def due(self, state: LedgerState, count: int, allowed: bool = True) -> Snapshot | None:
        """The snapshot to write with a batch of `count` events judged into `state`, if one
        is due then and `allowed` (the count is noted either way)."""
        if not allowed or self.every <= 0 or count == 0 or (
                self.since + count < self.every and time.monotonic() - self._clock < self.seconds):
            self.since += count
            return None
        snapshot = self.pack(state)
        if snapshot is None:
            self.since += count
        else:
            self.loaded(0)
        return snapshot

    def pack(self, state: LedgerState) -> Snapshot | None:
        """`state` as a snapshot row; None, and snapshots turned off, for a state the codec
        does not know (never a partial snapshot)."""
        try:
            data, digest = pack(state)
        except SnapshotError as exc:
            log.warning("judge snapshots turned off: %s", exc)
            self.every = 0
            return None
        return rules_fingerprint(), digest, data

    def save(self, state: LedgerState, offset: int) -> bool:
        """Store `state` as the snapshot at `offset` (the log's last) on its own."""
        snapshot = self.pack(state)
        if snapshot is None:
            return False
        try:
            if not self.store.put_snapshot(offset, snapshot):
                return False
        except Exception:  # a snapshot is an optimisation: its failure must not fail the caller
            log.warning("could not store a judge snapshot at offset %d", offset, exc_info=True)
            return False
        self.loaded(0)
        return True
