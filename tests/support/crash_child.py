"""The process that tests/execution/test_crash_recovery.py kills: two nodes, X1 (the issuer) and
X2, each with its own SQLite data directory and projection runner (checkpoints every
`flush_every` events), exchanging transfers, receipts and small tasks until killed.

Usage: python -m tests.support.crash_child ROOT SEED FLUSH_EVERY ROUNDS (from the checkout's root)

After every local append returns (committed) it prints `ack <node> <hash>` and flushes
stdout, so the parent knows which events were acknowledged before the kill. It prints
`open` once both nodes have reopened their books (the restart the test is about).
Not a test module: pytest collects only test_*.py.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.store import sqlite_url
from ledger_net.projections import ProjectionRunner

X1 = Identity.from_seed(bytes([21]) * 32)
X2 = Identity.from_seed(bytes([22]) * 32)


class Peer:
    """One node's books, and how far it has read each other node's log."""

    def __init__(self, root: Path, name: str, identity: Identity, flush_every: int) -> None:
        (root / name).mkdir(parents=True, exist_ok=True)
        self.name = name
        self.ledger = Ledger.open(sqlite_url(root / name / "ledger.db"), identity)
        self.runner = ProjectionRunner(self.ledger, flush_every=flush_every)
        self.read_of: dict[str, int] = {}

    def append(self, type_: str, body: dict[str, Any], deps: Iterable[str] = ()) -> Event:
        event = self.ledger.append(type_, body, deps)
        print(f"ack {self.name} {event.hash}", flush=True)
        return event

    def pull(self, other: Peer) -> None:
        """Ingest what `other` stored since the last pull (anti-entropy without HTTP)."""
        rows = list(other.ledger.stored(after=self.read_of.get(other.name, 0)))
        if rows:
            self.ledger.ingest([Event.from_stored(r.raw, r.sig, r.hash) for r in rows])
            self.read_of[other.name] = rows[-1].offset

    def receive_all(self) -> None:
        me = self.ledger.node_id
        for source, _ in self.ledger.state.open_credits_to(me):
            self.append("credit.received", {"source": source}, [source])

    def balance(self) -> int:
        return self.ledger.state.spendable(self.ledger.node_id)


def task(owner: Peer, worker: Peer, rng: random.Random) -> None:
    """One single-chunk task from submission to completion, paid and praised."""
    task_id = f"t-{owner.ledger.head()[0]}"
    escrow, payment = 40, rng.randint(1, 30)
    owner.append("task.submitted", {"task_id": task_id, "task_type": "map", "escrow": escrow, "max_price": escrow,
                                    "chunks": 1, "spec": {"f": "sq"}})
    assigned = owner.append("task.assigned", {"task_id": task_id, "chunk": 0, "worker": worker.ledger.node_id,
                                              "price": payment})
    worker.pull(owner)
    result = worker.append("task.chunk_result", {"task_id": task_id, "chunk": 0, "ok": True,
                                                 "result_hash": "ab" * 32}, [assigned.hash])
    owner.pull(worker)
    owner.append("task.chunk_accepted", {"task_id": task_id, "chunk": 0, "worker": worker.ledger.node_id,
                                         "payment": payment}, [result.hash])
    owner.append("reputation.feedback", {"subject": worker.ledger.node_id, "positive": True,
                                         "quality_ppm": 900_000, "weight_ppm": 1_000_000, "task_id": task_id})
    owner.append("task.completed", {"task_id": task_id, "refund": escrow - payment, "result": [1]})


def main(root: Path, seed: int, flush_every: int, rounds: int) -> None:
    rng = random.Random(seed)
    x1 = Peer(root, "x1", X1, flush_every)
    x2 = Peer(root, "x2", X2, flush_every)
    print("open", flush=True)
    if x1.ledger.net is None:
        x1.ledger.create_network("crash", issuers=[X1.node_id])
        x1.append("credit.minted", {"to": X1.node_id, "amount": 10**9, "reason": "seed"})
        x1.append("credit.minted", {"to": X2.node_id, "amount": 10**4, "reason": "seed"})
    for _ in range(rounds):
        x2.pull(x1)
        x1.pull(x2)
        x1.receive_all()
        x2.receive_all()
        for _ in range(rng.randint(1, 3)):
            x1.append("credit.transfer", {"to": X2.node_id, "amount": rng.randint(1, 50)})
        x2.pull(x1)
        x2.receive_all()  # receipts of transfers on both sides of X2's last checkpoint
        if rng.random() < 0.6 and x2.balance() > 0:
            x2.append("credit.transfer", {"to": X1.node_id, "amount": rng.randint(1, min(20, x2.balance()))})
        if rng.random() < 0.25:
            task(x1, x2, rng)
    x1.runner.flush()
    x2.runner.flush()
    print("done", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
