"""Causal delivery of one ingested batch: what is ready is judged (ledger/judge.py) and
applied, in an order where every event comes after its prev and deps; what lacks its
causal past waits in the pending buffer and is released when that arrives; an event at a
seq its author already used, with other content, is a fork (a proof, and the author
frozen from that seq), and a proven forker's later events are void.

A `Delivery` works on the ledger's state, hash cache and pending buffer with the
ledger's lock held (`Ledger.ingest`), and writes nothing: the ledger stores what it
returns. Its source is part of the judge snapshots' fingerprint (ledger/snapshot.py):
which events reach the judge, and in which order, is part of judging.
"""

from __future__ import annotations

from collections import deque

from ..errors import ChainError, PendingLimitError
from .events import Event
from .judge import PROOF_TYPES, fork_proof, judge
from .known import KnownHashes
from .outcomes import IngestReport
from .pending import PendingBuffer, PendingQuotaError
from .rules import LedgerState
from .store import ForkProof, Store


class Delivery:
    """One ingest's pass over its batch (see the module docstring); `me` is this node's id."""

    def __init__(self, state: LedgerState, known: KnownHashes, pending: PendingBuffer, store: Store,
                 me: str | None) -> None:
        self.state, self.known, self.pending, self.store, self.me = state, known, pending, store, me

    def _note_equivocation(self, event: Event, by_author_seq: dict[tuple[str, int], Event],
                           proofs: list[ForkProof], report: IngestReport) -> None:
        """An event at a seq its author already used: if it differs from the one held, that is a
        fork. Record the proof once per (author, seq) and freeze the author from that seq."""
        other = by_author_seq.get((event.author, event.seq)) or self._stored_event(event.author, event.seq)
        if other is not None and other.hash != event.hash:
            if (event.author, event.seq) not in {(p.author, p.seq) for p in proofs}:
                proofs.append(fork_proof(other, event))
                report.forks.append((event.author, event.seq))
            self.state.frozen[event.author] = min(event.seq, self.state.frozen.get(event.author, event.seq))

    def run(self, fresh: list[Event], report: IngestReport, source: str | None = None
            ) -> tuple[list[tuple[Event, str | None]], list[ForkProof], list[Event]]:
        """Deliver `fresh` (signed, of this network, not yet held): returns (the judged batch
        to store, in delivery order, with each event's reason or None; the fork proofs it
        showed; the void events of proven forkers), and fills in `report`. ChainError when an
        event breaks its author's chain; PendingLimitError when the pending buffer is full."""
        batch: list[tuple[Event, str | None]] = []
        void: list[Event] = []
        by_author_seq: dict[tuple[str, int], Event] = {}
        proofs: list[ForkProof] = []
        queue = deque(reversed(fresh))  # a stack: released events go next, before the rest
        parked: set[str] = set()
        while queue:
            event = queue.pop()
            if event.hash in self.known:
                continue
            acct = self.state.accounts.get(event.author)
            head_seq = acct.seq if acct else 0
            if event.seq <= head_seq:
                self._note_equivocation(event, by_author_seq, proofs, report)
            frozen_at = self.state.frozen.get(event.author)
            if frozen_at is not None and event.seq >= frozen_at:
                # A proven forker's branch beyond the fork: void, kept aside only so that
                # events naming it in deps are delivered and judged alike on every peer.
                if len(void) < self.pending.max_events:
                    void.append(event)
                    self.known.add(event.hash)
                    report.refused[event.hash] = f"void: author equivocated at seq {frozen_at}"
                    queue.extend(reversed(self.pending.arrived(event.hash)))
                continue
            if event.seq <= head_seq:
                continue
            # A prev that is its author's head is held (the head was applied): not asked about.
            prev = event.prev
            needs = event.deps if prev is None or (acct is not None and prev == acct.head) else (prev, *event.deps)
            if self.state.net is None and not event.is_genesis:
                needs += (event.net,)  # the genesis it belongs to comes first
            missing = {h for h in needs if h not in self.known} if needs else set()
            if event.seq > head_seq + 1 and event.prev and event.prev in self.known:
                raise ChainError(f"event {event.hash[:16]}… links to a prev that is not its author's "
                                 f"seq {event.seq - 1}")
            if missing or event.seq != head_seq + 1:
                if not missing:
                    raise ChainError(f"event {event.hash[:16]}… (seq {event.seq}) skips its author's "
                                     f"seq {head_seq + 1}")
                try:
                    self.pending.add(event, missing, source=source, stranger=self._stranger(event.author))
                except PendingQuotaError as exc:  # this author's or source's share is full: drop it
                    report.throttled[event.hash] = str(exc)
                    continue
                parked.add(event.hash)
                continue
            reason = judge(self.state, event, signature_checked=True)  # by _check_batch, on all cores
            self.state.apply(event, reason)
            if event.type in PROOF_TYPES and reason is None:
                proof = PROOF_TYPES[event.type](event.body, None)
                if proof and (proof.author, proof.seq) not in {(p.author, p.seq) for p in proofs}:
                    proofs.append(proof)
                    report.forks.append((proof.author, proof.seq))
            self.known.add(event.hash)
            by_author_seq[(event.author, event.seq)] = event
            batch.append((event, reason))
            report.stored.append(event.hash)
            if reason is not None:
                report.invalid[event.hash] = reason
            parked.discard(event.hash)
            queue.extend(reversed(self.pending.arrived(event.hash)))
        report.pending.extend(h for h in (e.hash for e in fresh) if h in parked)
        return batch, proofs, void

    def requeue(self, entries: list[tuple[Event, str | None, bool]]) -> None:
        """Put events a failed batch had released back into the pending buffer."""
        for event, source, stranger in entries:
            needs = ((event.prev,) if event.prev else ()) + event.deps
            missing = {h for h in needs if h not in self.known}
            if missing and event.hash not in self.known:
                try:
                    self.pending.add(event, missing, source=source, stranger=stranger)
                except PendingLimitError:
                    continue

    def _stranger(self, author: str) -> bool:
        """An author with no stake here (see `LedgerState.is_established`), nor this node."""
        if author == self.me:
            return False
        return not self.state.is_established(author)  # (rare: only for events about to wait)

    def _stored_event(self, author: str, seq: int) -> Event | None:
        row = self.store.get_by_author_seq(author, seq)
        return Event.from_wire(row.raw, row.sig) if row else None
