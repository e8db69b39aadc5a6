"""The log: appends for the local author, verified ingestion of foreign events,
causal delivery through the pending buffer, and fork proofs.

`Ledger` owns the in-memory `LedgerState` (the validity fold) and the store.
Every mutation takes one lock; writes of a batch land in one transaction; the
in-memory state is reloaded from the store if a write fails, so memory and disk
never disagree.

Opening costs the tail, not the log: every `snapshot_every` events (or
`snapshot_seconds`) the fold's state is written with the batch, in its transaction
(ledger/snapshot.py), and `_load` starts from the latest snapshot and judges only the
events after it. A snapshot of other rules, a damaged one or one made before a fork
proof now stored is not used (one warning line) and the whole log is judged again.
Nothing per event stays in memory: which hashes are held is asked of the store
(ledger/known.py), behind a bounded cache.

Crash safety of appends: an event is signed, then committed, and only after the
commit is it handed to listeners (and so to peers). A crash before the commit
loses an event that nobody else ever saw, so re-signing that seq with other
content is not a fork. (SQLite runs WAL with synchronous=NORMAL: committed data
survives a process crash; survive power loss with `synchronous=FULL`.)

Concurrent appends and ingests share commits (ledger/commit.py): each is judged and
queued under the lock, then committed with whatever else is queued, and its caller
returns only when its events are durable. A failed write fails its group and what was
queued after it, and the state is reloaded from the store before anything else is judged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import ChainError, LedgerError, PendingLimitError, SignatureError, WrongNetwork
from ..faults import crash_point
from . import encoding
from .checkpoint import CHECKPOINT_CONFLICT
from .commit import GroupCommit, Write
from .events import FORMAT_VERSION, GENESIS, Event, check_size, validate_envelope
from .identity import Identity
from .judge import FORK_PROOF, PROOF_TYPES, fork_proof, judge, parse_checkpoint_conflict, verdict
from .known import DEFAULT_CACHE, KnownHashes
from .pending import PendingBuffer, PendingQuotaError
from .rules import LedgerState
from .snapshot import SnapshotError, pack, rules_fingerprint, unpack
from .store import ForkProof, Store, StoredEvent
from .wire import to_wire

log = logging.getLogger(__name__)

SNAPSHOT_EVERY = 10_000  # events between judge snapshots (the most a reopen judges)
SNAPSHOT_SECONDS = 300.0  # or this long, if fewer events came


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


class Ledger:
    """An append-only, signed, hash-chained log with its validity fold."""

    def __init__(self, store: Store, identity: Identity | None = None, *, pending_limit: int = 10_000,
                 signer_threads: int = 2, snapshot_every: int = SNAPSHOT_EVERY,
                 snapshot_seconds: float = SNAPSHOT_SECONDS, known_cache: int = DEFAULT_CACHE,
                 snapshot_on_close: bool = True) -> None:
        """`snapshot_every` <= 0 turns judge snapshots off (every open judges the whole log);
        `snapshot_on_close` stores one on a clean `close`, so the next open judges nothing."""
        self.store = store
        self.identity = identity
        self.pending = PendingBuffer(max_events=pending_limit)
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._reset_listeners: list[ResetListener] = []
        self._pool = ThreadPoolExecutor(max_workers=max(1, signer_threads), thread_name_prefix="ledger-crypto")
        self._threads = max(1, signer_threads)
        self.state = LedgerState()
        self.known = KnownHashes(store, known_cache)
        self._published_proofs: set[tuple[str, int]] = set()
        self.snapshot_every = snapshot_every
        self.snapshot_seconds = snapshot_seconds
        self.snapshot_on_close = snapshot_on_close
        self._since_snapshot = 0  # events queued or committed after the stored snapshot
        self._group = GroupCommit(lambda r, v, s: self.store.write(r, v, s), self._on_commit)
        self._epoch = 0  # the group commit's epoch the in-memory state was loaded in
        self._snapshot_clock = time.monotonic()
        self.judged_on_open = 0  # events the last `_load` judged (the tail after its snapshot)
        changed = self._load()
        # True when the current rules judged stored events differently than when they were
        # stored (a newer version of the rules): ProjectionRunner then refolds every projection,
        # or this node would disagree with a fresh peer folding the same log.
        self.verdicts_changed = bool(changed)
        if changed:
            log.warning("re-judged %d stored event(s) under the current rules", len(changed))

    @classmethod
    def open(cls, url: str = "sqlite://", identity: Identity | None = None, **kwargs: Any) -> Ledger:
        return cls(Store.open(url), identity, **kwargs)

    def close(self) -> None:
        with self._lock:
            self._group.drain()
        if self.snapshot_on_close and self._since_snapshot > 0:
            try:  # an optimisation for the next open: never a reason for close to fail
                self.save_snapshot()
            except Exception:
                log.warning("could not store a judge snapshot on close", exc_info=True)
        self._pool.shutdown(wait=True)
        self.store.close()

    # ------------------------------------------------------------- listeners
    def subscribe(self, listener: Listener, on_reset: ResetListener | None = None) -> None:
        """`listener` gets every committed batch; `on_reset` when verdicts changed (a fork)."""
        self._listeners.append(listener)
        if on_reset is not None:
            self._reset_listeners.append(on_reset)

    def unsubscribe(self, listener: Listener) -> None:
        """Detach a listener (and its reset hook, if it is a bound method's sibling)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, applied: list[Applied]) -> None:
        for listener in list(self._listeners):
            try:
                listener(applied)
            except Exception:  # a listener must not break the log
                log.exception("ledger listener failed")

    # ------------------------------------------------------------- loading
    def _load(self) -> list[tuple[str, bool, str | None]]:
        """Fold the stored log under the current rules (on open; after a failed write; when
        fork proofs change what is void) and store the verdicts that changed: from the
        latest usable judge snapshot, judging only the events after it."""
        self._group.drain()  # what is queued is committed (or failed) first
        epoch = self._group.epoch
        frozen: dict[str, int] = {}
        for proof in self.store.fork_proofs():
            frozen[proof.author] = min(proof.seq, frozen.get(proof.author, proof.seq))
        state, after, refused = self._from_snapshot(frozen)
        if state is None:
            state = LedgerState()
            state.frozen.update(frozen)
        changed = []
        last = after
        for row in self.store.select_events(after=after):
            # Rows of the local store were judged in full (signature, link) before they were stored.
            event = Event.from_stored(row.raw, row.sig, row.hash)
            reason = verdict(state, event)
            state.apply(event, reason)
            if (reason is None) != row.valid or reason != row.reason:
                changed.append((event.hash, reason is None, reason))
            last = row.offset
        if changed:
            self.store.set_validity(changed)
        published: set[tuple[str, int]] = set()
        if self.identity is not None:  # the fork proofs this node put into its own chain
            for r in self.store.events_of_type(self.identity.node_id, FORK_PROOF):
                body = Event.from_stored(r.raw, r.sig, r.hash).body
                published.add((body["author"], body["seq"]))
        self.known.reset()
        self.state, self._published_proofs = state, published
        self._epoch = epoch
        self.judged_on_open = last - after
        self._since_snapshot = last - after
        self._snapshot_clock = time.monotonic()
        if self.snapshot_every > 0 and (refused or self._since_snapshot >= self.snapshot_every):
            self._save_snapshot(last)  # so the next open starts here (and the refused one is gone)
        return changed

    def _from_snapshot(self, frozen: dict[str, int]) -> tuple[LedgerState | None, int, bool]:
        """The latest stored judge snapshot as (state, its offset, False), or (None, 0, refused)
        when there is none, snapshots are off, or it cannot be trusted (refused, logged: the
        log is judged again)."""
        if self.snapshot_every <= 0:
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

    def _snapshot_due(self, count: int) -> tuple[str, str, bytes] | None:
        """A snapshot of the current state to write with a batch of `count` events, if one is due."""
        if self.snapshot_every <= 0 or count == 0:
            return None
        if (self._since_snapshot + count < self.snapshot_every
                and time.monotonic() - self._snapshot_clock < self.snapshot_seconds):
            return None
        return self._pack()

    def _pack(self) -> tuple[str, str, bytes] | None:
        try:
            data, digest = pack(self.state)
        except SnapshotError as exc:  # a state the codec does not know: never a partial snapshot
            log.warning("judge snapshots turned off: %s", exc)
            self.snapshot_every = 0
            return None
        return rules_fingerprint(), digest, data

    def _queue(self, batch: list[tuple[Event, str | None]], void: Sequence[Event] = (),
               snapshot_allowed: bool = True) -> Write:
        """Queue a judged batch for the group commit (with the lock held, right after judging
        it: a snapshot packed now is the state after exactly this batch)."""
        snapshot = self._snapshot_due(len(batch)) if snapshot_allowed else None
        write = Write([_row(e, r) for e, r in batch], [_void_row(e) for e in void], snapshot, batch)
        self._group.submit(write, self._epoch)
        if snapshot is not None:
            self._since_snapshot = 0
            self._snapshot_clock = time.monotonic()
        else:
            self._since_snapshot += len(batch)
        return write

    def _on_commit(self, group: list[Write]) -> None:
        """A group is durable (called by its leader, in commit order): hashes to the cache,
        events to the listeners."""
        self.known.commit()
        applied = [Applied(o, e, r) for w in group for o, (e, r) in zip(w.offsets, w.payload, strict=True)]
        if applied:
            self._notify(applied)

    def _save_snapshot(self, offset: int) -> bool:
        """Store the current state as the snapshot at `offset` (the log's last) on its own."""
        snapshot = self._pack()
        if snapshot is None:
            return False
        try:
            if not self.store.put_snapshot(offset, snapshot):
                return False
        except Exception:  # a snapshot is an optimisation: its failure must not fail the caller
            log.warning("could not store a judge snapshot at offset %d", offset, exc_info=True)
            return False
        self._since_snapshot = 0
        self._snapshot_clock = time.monotonic()
        return True

    def save_snapshot(self) -> bool:
        """Store a judge snapshot of the whole log now (e.g. before a planned restart); False
        if snapshots are off or it could not be stored."""
        with self._lock:
            if self.snapshot_every <= 0:
                return False
            self._group.drain()
            return self._save_snapshot(self.store.last_offset())

    def locked(self) -> threading.RLock:
        """The ledger's (re-entrant) write lock, to hold across several ingests: a caller that
        must apply pages in feed order takes it before the signature checks of the next page."""
        return self._lock

    # ------------------------------------------------------------- properties
    @property
    def net(self) -> str | None:
        return self.state.net

    @property
    def node_id(self) -> str:
        if self.identity is None:
            raise LedgerError("this ledger has no local identity")
        return self.identity.node_id

    def head(self, author: str | None = None) -> tuple[int, str | None]:
        acct = self.state.accounts.get(author or self.node_id)
        return (acct.seq, acct.head) if acct else (0, None)

    # ------------------------------------------------------------- appending
    def create_network(self, name: str, issuers: Iterable[str] | None = None, decimals: int = 6,
                       params: dict[str, Any] | None = None) -> Event:
        """Start a new network: the genesis is this node's first event."""
        issuers = sorted(set(issuers or [self.node_id]))
        body: dict[str, Any] = {"name": name, "issuers": issuers, "decimals": decimals}
        if params:
            body["params"] = params
        return self.append(GENESIS, body)

    def append(self, type: str, body: dict[str, Any], deps: Iterable[str] = ()) -> Event:
        return self.append_batch([(type, body, tuple(deps))])[0]

    def append_batch(self, items: Sequence[tuple[str, dict[str, Any], Iterable[str]]]) -> list[Event]:
        """Sign and commit several local events in one transaction, all or none; returns once
        they are durable (sharing the commit with concurrent callers, see ledger/commit.py)."""
        identity = self.identity
        if identity is None:
            raise LedgerError("this ledger has no local identity to sign with")
        with self._lock:
            if self._epoch != self._group.epoch:
                self._load()  # a write failed since the state was loaded
            prepared = []  # (envelope, raw, digest)
            acct = self.state.accounts.get(identity.node_id)
            seq, prev = (acct.seq, acct.head) if acct else (0, None)
            now = max(int(time.time() * 1000), acct.ts if acct else 0)  # never run the clock backwards
            for type_, body, deps in items:
                deps = sorted(set(deps))
                for dep in deps:
                    if dep not in self.known:
                        raise LedgerError(f"dependency {dep[:16]}… is not in this ledger")
                seq += 1
                net = "" if type_ == GENESIS else (self.state.net or "")
                envelope = {"v": FORMAT_VERSION, "net": net, "author": identity.node_id,
                            "seq": seq, "prev": prev, "deps": deps, "type": type_, "body": body, "ts": now}
                validate_envelope(envelope)
                raw = encoding.canonical_bytes(envelope)
                check_size(type_, raw)
                digest = encoding.digest(raw)
                prepared.append((envelope, raw, digest))
                prev = digest.hex()
            signatures = self._sign_all(identity, [d for _, _, d in prepared])
            created = []
            try:
                for (envelope, raw, digest), sig in zip(prepared, signatures, strict=False):
                    event = Event._from_envelope(envelope, raw, digest.hex(), sig)
                    reason = judge(self.state, event, signature_checked=True)  # signed just now
                    if reason is not None:
                        raise RuleViolation(reason)
                    self.state.apply(event, None)
                    self.known.add(event.hash)
                    created.append(event)
                crash_point("append.before_commit")
                write = self._queue([(e, None) for e in created])
            except BaseException:
                if created:  # the state holds part of the batch: judge the stored log again
                    self._load()
                raise
        try:
            self._group.wait(write)  # the listeners have it when this returns
        except BaseException:
            with self._lock:
                if self._epoch != self._group.epoch:
                    self._load()
            raise
        return created

    def _sign_all(self, identity: Identity, digests: list[bytes]) -> list[bytes]:
        if len(digests) < 64 or self._threads == 1:
            return [identity.sign(d) for d in digests]
        size = -(-len(digests) // self._threads)
        parts = [digests[i:i + size] for i in range(0, len(digests), size)]
        return [sig for part in self._pool.map(lambda p: [identity.sign(d) for d in p], parts) for sig in part]

    # ------------------------------------------------------------- ingesting
    def verify_signatures(self, events: Sequence[Event]) -> list[bool]:
        """Check signatures on all cores (PyNaCl releases the GIL)."""
        if len(events) < 64 or self._threads == 1:
            return [e.verify_signature() for e in events]
        size = -(-len(events) // self._threads)
        parts = [events[i:i + size] for i in range(0, len(events), size)]
        return [ok for part in self._pool.map(lambda p: [e.verify_signature() for e in p], parts) for ok in part]

    def ingest(self, events: Sequence[Event], source: str | None = None) -> IngestReport:
        """Verify and store foreign events. A batch with any forged, malformed or
        foreign-network event is refused whole (nothing stored). Events whose causal
        past is missing wait in the pending buffer (partitioned by author and by `source`,
        the peer they came from); equivocations become fork proofs."""
        unknown = self.known.unknown(e.hash for e in events)
        fresh = [e for e in events if e.hash in unknown]
        report = IngestReport(duplicates=len(events) - len(fresh))
        if not fresh:
            return report
        self._check_batch(fresh)
        with self._lock:
            if self._epoch != self._group.epoch:
                self._load()  # a write failed since the state was loaded
            waiting = self.pending.entries()
            try:
                self.known.prefetch({h for e in fresh for h in (((e.prev,) if e.prev else ()) + e.deps)})
                batch, proofs, void = self._process(fresh, report, source)
                self.known.forget_absent()
                if batch or void:  # committed with any queued appends; the listeners get it there
                    # No snapshot with a batch that proved a fork: the proof is stored after it.
                    self._group.wait(self._queue(batch, void, snapshot_allowed=not proofs))
                new_forks = [p for p in proofs if self.store.insert_fork_proof(p)]
            except PendingLimitError:
                # The refused batch leaves nothing behind, and what waited before still waits.
                before = {e.hash for e, _, _ in waiting}
                for event in fresh:
                    if event.hash not in before:
                        self.pending.discard(event.hash)
                released = [w for w in waiting if w[0].hash not in self.pending]
                self._load()
                self._requeue(released)
                raise
            except BaseException:
                self._load()
                self.pending.clear()
                raise
            refolded = False
            if new_forks:
                self._load()  # what is void changed: every verdict is judged again (and snapshot)
                refolded = True
        if refolded:
            for listener in list(self._reset_listeners):
                try:
                    listener()
                except Exception:
                    log.exception("ledger reset listener failed")
        for proof in new_forks:
            self._publish_fork(proof)
        return report

    def _check_batch(self, fresh: list[Event]) -> None:
        """Refuse the whole batch (ChainError, SignatureError) if any event is of another
        network or carries a bad signature: nothing of it is stored."""
        net = self.state.net
        for event in fresh:
            if event.is_genesis:
                if net is not None and event.hash != net:
                    raise WrongNetwork(f"genesis {event.hash[:16]}… is another network's")
            elif net is not None and event.net != net:
                raise WrongNetwork(f"event {event.hash[:16]}… belongs to network {event.net[:16]}…")
        for event, ok in zip(fresh, self.verify_signatures(fresh), strict=False):
            if not ok:
                raise SignatureError(f"bad signature on event {event.hash} by {event.author[:16]}… seq {event.seq}")

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

    def _process(self, fresh: list[Event], report: IngestReport, source: str | None = None
                 ) -> tuple[list[tuple[Event, str | None]], list[ForkProof], list[Event]]:
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
            needs = ((event.prev,) if event.prev else ()) + event.deps
            if self.state.net is None and not event.is_genesis:
                needs += (event.net,)  # the genesis it belongs to comes first
            missing = {h for h in needs if h not in self.known}
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

    def _requeue(self, entries: list[tuple[Event, str | None, bool]]) -> None:
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
        if self.identity is not None and author == self.identity.node_id:
            return False
        return not self.state.is_established(author)  # (rare: only for events about to wait)

    def report_conflict(self, earlier: Event, later: Event, author: str, proof: Sequence[str]) -> Event | None:
        """Publish, as a `checkpoint.conflict` of this node's chain, that `later` (a checkpoint
        of the same signer) does not extend `earlier` at `author`, and freeze the signer from
        `later`'s seq like a forker: the fork-proof path (stored, gossiped, refolded). None
        when already known; RuleViolation when the evidence does not hold."""
        body = {"signer": later.author, "seq": later.seq, "author": author, "proof": list(proof),
                "a": earlier.to_json(), "b": later.to_json()}
        fork = parse_checkpoint_conflict(body, self.state.net)
        if fork is None:
            raise RuleViolation("checkpoint conflict does not show two inconsistent checkpoints of one signer")
        if any((p.author, p.seq) == (fork.author, fork.seq) for p in self.store.fork_proofs()):
            return None
        event = self.append(CHECKPOINT_CONFLICT, body)
        with self._lock:
            self.store.insert_fork_proof(fork)
            self._load()
        for listener in list(self._reset_listeners):
            try:
                listener()
            except Exception:
                log.exception("ledger reset listener failed")
        return event

    def _stored_event(self, author: str, seq: int) -> Event | None:
        row = self.store.get_by_author_seq(author, seq)
        return Event.from_wire(row.raw, row.sig) if row else None

    def _publish_fork(self, proof: ForkProof) -> None:
        """Gossip a fork proof by putting it into this node's own chain."""
        key = (proof.author, proof.seq)
        if Event.from_wire(proof.raw_a, proof.sig_a).seq != proof.seq:
            return  # a checkpoint conflict: its own event already travels, and fork.proof cannot carry it
        if self.identity is None or key in self._published_proofs or proof.author == self.node_id:
            return
        body = {"author": proof.author, "seq": proof.seq,
                "a": to_wire(proof.raw_a, proof.sig_a), "b": to_wire(proof.raw_b, proof.sig_b)}
        try:
            self.append(FORK_PROOF, body)
            self._published_proofs.add(key)
        except LedgerError:
            log.exception("could not publish fork proof for %s seq %s", proof.author[:16], proof.seq)

    # ------------------------------------------------------------- reading
    def event(self, hash_: str) -> Event | None:
        """Any event this ledger holds by hash, void forker branches included."""
        row = self.store.get_event(hash_)
        if row:
            return Event.from_wire(row.raw, row.sig)
        void = self.store.get_void(hash_)
        return Event.from_wire(*void) if void else None

    def stored(self, after: int = 0, limit: int | None = None, until: int | None = None) -> Iterable[StoredEvent]:
        return self.store.select_events(after=after, limit=limit, until=until)


def _row(event: Event, reason: str | None) -> dict[str, Any]:
    return {"hash": event.hash, "author": event.author, "seq": event.seq, "type": event.type, "ts": event.ts,
            "raw": event.raw, "sig": event.sig, "valid": reason is None, "reason": reason}


def _void_row(event: Event) -> dict[str, Any]:
    return {"hash": event.hash, "author": event.author, "seq": event.seq, "raw": event.raw, "sig": event.sig}
