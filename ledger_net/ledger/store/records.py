"""What the store hands back: stored events, fork proofs and judge snapshots, as frozen rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..tables import events


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


def stored(row: Any) -> StoredEvent:
    """A `StoredEvent` from a row of `EVENT_COLUMNS` (in its field order)."""
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


EVENT_COLUMNS = (events.c.offset, events.c.hash, events.c.author, events.c.seq, events.c.type, events.c.ts,
                 events.c.raw, events.c.sig, events.c.valid, events.c.reason)
EVENT_COLUMN_LIST = '"offset", hash, author, seq, type, ts, raw, sig, valid, reason'
