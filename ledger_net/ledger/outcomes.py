"""What a write of the log did, as its callers and listeners see it, and the rows a
judged batch is stored as. Kept apart from the log (ledger/chain.py) so that readers of
these records (projections, replication, the engine) need not know how it writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LedgerError
from .events import Event


class RuleViolation(LedgerError):
    """A local append would be invalid under the ledger's rules (e.g. an overdraft)."""


@dataclass(frozen=True, slots=True)
class Applied:
    """One event as committed: its offset, the event, and why it has no effect (or None)."""

    offset: int
    event: Event
    reason: str | None


@dataclass
class IngestReport:
    stored: list[str] = field(default_factory=list)
    duplicates: int = 0
    pending: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    forks: list[tuple[str, int]] = field(default_factory=list)
    throttled: dict[str, str] = field(default_factory=dict)  # dropped by an admission quota (not stored)

    def as_dict(self) -> dict[str, Any]:
        return {"stored": len(self.stored), "duplicates": self.duplicates, "pending": len(self.pending),
                "invalid": self.invalid, "refused": self.refused,
                "forks": [{"author": a, "seq": s} for a, s in self.forks], "throttled": self.throttled}


Listener = Callable[[list[Applied]], None]
ResetListener = Callable[[], None]


def event_row(event: Event, reason: str | None) -> dict[str, Any]:
    """A judged event as a row of the events table."""
    return {"hash": event.hash, "author": event.author, "seq": event.seq, "type": event.type, "ts": event.ts,
            "raw": event.raw, "sig": event.sig, "valid": reason is None, "reason": reason}


def void_row(event: Event) -> dict[str, Any]:
    """A proven forker's event beyond its fork, as a row of the void events table."""
    return {"hash": event.hash, "author": event.author, "seq": event.seq, "raw": event.raw, "sig": event.sig}
