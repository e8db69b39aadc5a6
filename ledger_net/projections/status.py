"""The task and chunk status vocabulary: the one home of the names the tasks projection
writes into its rows and every reader (API, metrics, websocket, market, CLI, explorer)
compares them with.

It lives beside the projection that derives the statuses, the lowest layer that uses them;
`ledger_net.core.task` re-exports `TaskStatus` for the seed API. Members are `StrEnum`s, so
they compare equal to the plain strings stored in rows; rows themselves hold the plain
`.value` (canonical encoding, and so the state hash, takes `str` only).
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """Where a task stands."""

    PENDING = "pending"
    QUOTED = "quoted"
    BIDDING = "quoted"  # alias: a task collecting quotes/bids
    ASSIGNED = "assigned"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


class ChunkStatus(StrEnum):
    """Where one chunk of a task stands, derived from its assignments' reports and verdicts."""

    OPEN = "open"
    ASSIGNED = "assigned"
    REPORTED = "reported"
    ERRORED = "errored"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


TERMINAL: frozenset[str] = frozenset({TaskStatus.COMPLETED.value, TaskStatus.FAILED.value,
                                      TaskStatus.CANCELLED.value})
"""Statuses a task never leaves."""

ROW_STATUSES: tuple[str, ...] = (TaskStatus.PENDING.value, TaskStatus.QUOTED.value, TaskStatus.RUNNING.value,
                                 TaskStatus.COMPLETED.value, TaskStatus.FAILED.value, TaskStatus.CANCELLED.value)
"""The statuses a task row of the projection takes, in lifecycle order (a task is never
`assigned`: its chunks are). What the API's schema, the metrics and the CLI list."""

OPEN_CHUNK: frozenset[str] = frozenset({ChunkStatus.OPEN.value, ChunkStatus.ASSIGNED.value,
                                        ChunkStatus.ERRORED.value, ChunkStatus.REJECTED.value})
"""Chunk statuses still wanting a result."""

__all__ = ["ChunkStatus", "OPEN_CHUNK", "ROW_STATUSES", "TERMINAL", "TaskStatus"]
