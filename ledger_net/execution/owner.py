"""The owner's memory of a task: what it submitted, who bid, who runs which chunk, which
results came back and which were paid. Pure bookkeeping, changed only by committed events
(observed, or an ``Emit``'s ``on_commit``); owner_policy.py and results.py decide from it."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from .framing import encode_frame

REPLICATED_QUORUM = 2  # a chunk the adaptive policy replicates is accepted once two results agree


def result_hash(wire: Any) -> str:
    """The hash a worker reports for a result: of its frame, whose wire form names every
    blob by its own hash, so the blobs are covered too."""
    return hashlib.sha256(encode_frame({"result": wire})).hexdigest()


@dataclass
class Bid:
    worker: str
    price: int
    quote_hash: str
    inputs: dict[str, int]


@dataclass
class Attempt:
    worker: str
    assignment: str  # hash of the task.assigned event
    price: int
    deadline: float  # local monotonic clock
    result_hash: str | None = None
    ok: bool | None = None
    error: str | None = None
    result: Any = None  # wire form, once known
    event: str | None = None  # hash of the task.chunk_result event
    check_label: str | None = None  # names the owner's secret committed to in the assignment (check mode)


@dataclass
class ChunkWork:
    index: int
    payload: Any  # wire form
    payload_hash: str | None
    attempts: list[Attempt] = field(default_factory=list)
    accepted: list[Attempt] = field(default_factory=list)
    rejected_workers: set[str] = field(default_factory=set)
    settled: bool = False  # accepted (paid) or given up
    # The adaptive policy's record of the decision that replicated this chunk (compute.verdicts):
    # carried by the replica's assignment, and by every verdict of the chunk; its quorum is then 2.
    replication: dict[str, Any] | None = None

    def open_attempts(self) -> list[Attempt]:
        return [a for a in self.attempts if a.ok is None and a.worker not in self.rejected_workers]

    def reported(self) -> list[Attempt]:
        return [a for a in self.attempts if a.ok is not None]

    def tried_workers(self) -> set[str]:
        return {a.worker for a in self.attempts}


@dataclass
class OwnedTask:
    task_id: str
    task_type: str
    config: Any  # wire form of the task's config (blobs by hash)
    requirements: dict[str, Any]
    priority: int
    replicas: int
    quorum: int
    per_chunk_cap: int
    timeout: float
    chunks: list[ChunkWork]
    submitted: str | None = None  # hash of task.submitted
    quote_deadline: float = 0.0
    bids: dict[str, Bid] = field(default_factory=dict)
    state: str = "quoting"  # quoting -> running -> closed
    seen: bool = False  # has the engine's loop looked at it yet
    waiting: Any = None  # the routing question that found every usable worker full, while it stays so
    max_attempts: int = 3
    created: float = field(default_factory=time.monotonic)
    work_units: int = 1  # of the largest chunk: what a worker's quote is for
    # compute.checks.verification_spec of the config; "check" and "none" apply to single replicas only
    verification: dict[str, Any] = field(default_factory=lambda: {"mode": "quorum"})

    def single_verified(self) -> bool:
        """Is each chunk judged alone first, by the adaptive policy: checked, trusted, or (an
        ``adaptive`` quorum) given a second replica when the policy says so (issue 12)?"""
        return self.replicas == 1 and (self.verification.get("mode") in ("check", "none")
                                       or bool(self.verification.get("adaptive")))

    def quorum_of(self, chunk: ChunkWork) -> int:
        """The replicas that must agree on ``chunk``: the task's, or 2 once the policy replicated it."""
        return REPLICATED_QUORUM if chunk.replication is not None else self.quorum

    def unsettled(self) -> list[ChunkWork]:
        return [c for c in self.chunks if not c.settled]

    def attempt_by_assignment(self, assignment: str) -> tuple[ChunkWork, Attempt] | None:
        for chunk in self.chunks:
            for attempt in chunk.attempts:
                if attempt.assignment == assignment:
                    return chunk, attempt
        return None
