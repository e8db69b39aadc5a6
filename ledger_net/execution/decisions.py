"""What the engine's policies decide, as values: the thin loop (engine.py) carries them out.

Why values: a policy is then a plain function ``(state, event) → decisions`` that tests call
without asyncio, a ledger or a database, and the loop owns every side effect. The one rule
that keeps the engine's memory honest lives here: an ``Emit``'s ``on_commit`` is the only way a
decision changes memory, and the loop calls it only once the outbox has committed the event
(with the signed event); a refused event never calls it, so it leaves no trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..ledger.events import Event

OnCommit = Callable[[Event], None]


@dataclass
class Emit:
    """Append a local event; ``on_commit`` updates memory once (and only if) it is committed."""

    type: str
    body: dict[str, Any]
    deps: tuple[str, ...] = ()
    on_commit: OnCommit | None = None


@dataclass(frozen=True)
class Run:
    """Run an assignment to this node (the worker's sandboxed execution)."""

    assignment: Event


@dataclass(frozen=True)
class Fetch:
    """Fetch a reported result by hash before judging it (the worker's node serves it)."""

    task_id: str
    result: Event


@dataclass(frozen=True)
class Notify:
    """Tell the engine's listeners that a task reached a terminal status."""

    task_id: str
    status: str


Decision = Emit | Run | Fetch | Notify


@dataclass
class Decisions:
    """Decisions of one step, in order, with what they promise to pay per task (a refund
    decided later in the same step must leave that much in escrow)."""

    items: list[Decision] = field(default_factory=list)

    def add(self, decision: Decision) -> None:
        self.items.append(decision)

    def extend(self, decisions: Iterable[Decision]) -> None:
        self.items.extend(decisions)

    def emits(self) -> list[Emit]:
        return [d for d in self.items if isinstance(d, Emit)]

    def payments(self, task_id: str) -> int:
        return sum(d.body["payment"] for d in self.emits()
                   if d.type == "task.chunk_accepted" and d.body["task_id"] == task_id)

    def closes(self, task_id: str) -> bool:
        """Has this step already decided to close ``task_id``?"""
        return any(d.type in CLOSING and d.body["task_id"] == task_id for d in self.emits())


CLOSING = frozenset({"task.completed", "task.failed", "task.cancelled"})
