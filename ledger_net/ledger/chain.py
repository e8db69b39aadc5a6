"""The log: appends for the local author, verified ingestion of foreign events,
causal delivery through the pending buffer, and fork proofs.

`Ledger` owns the in-memory `LedgerState` (the validity fold) and the store.
Every mutation takes one lock; writes of a batch land in one transaction; the
in-memory state is reloaded from the store if a write fails, so memory and disk
never disagree. The parts are modules of their own: judging an event (judge.py),
delivering an ingested batch in causal order (delivery.py), judge snapshots
(snapshot_keeper.py), group commits (commit.py), signing and checking signatures on
every core (crypto_pool.py) and what a write did (outcomes.py). What stays here (a
little over 400 lines) is what shares the lock, the group commit and the reload on
failure: loading, appending, ingesting and publishing fork proofs.

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
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import LedgerError, PendingLimitError, SignatureError, WrongNetwork
from ..faults import crash_point
from . import encoding
from .checkpoint import CHECKPOINT_CONFLICT
from .commit import GroupCommit, Write
from .crypto_pool import VERIFY_CHUNK as VERIFY_CHUNK  # re-exported: the size `verify_ahead` checks in
from .crypto_pool import CryptoPool, SignatureChecks, WireChecks
from .delivery import Delivery
from .events import FORMAT_VERSION, GENESIS, Event, check_size, validate_envelope
from .identity import Identity
from .judge import FORK_PROOF, judge, parse_checkpoint_conflict, verdict
from .known import DEFAULT_CACHE, KnownHashes
from .outcomes import Applied, IngestReport, Listener, ResetListener, RuleViolation, event_row, void_row
from .pending import PendingBuffer
from .rules import LedgerState
from .snapshot_keeper import SNAPSHOT_EVERY, SNAPSHOT_SECONDS, SnapshotKeeper
from .store import ForkProof, Store, StoredEvent
from .wire import to_wire

log = logging.getLogger(__name__)

class Ledger:
    """An append-only, signed, hash-chained log with its validity fold."""

    def __init__(self, store: Store, identity: Identity | None = None, *, pending_limit: int = 10_000,
                 signer_threads: int | None = None, snapshot_every: int = SNAPSHOT_EVERY,
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
        self._crypto = CryptoPool(signer_threads)  # one thread per core by default
        self.state = LedgerState()
        self.known = KnownHashes(store, known_cache)
        self._published_proofs: set[tuple[str, int]] = set()
        self.snapshots = SnapshotKeeper(store, snapshot_every, snapshot_seconds)
        self.snapshot_on_close = snapshot_on_close
        self._group = GroupCommit(lambda r, v, s: self.store.write(r, v, s), self._on_commit)
        self._epoch = 0  # the group commit's epoch the in-memory state was loaded in
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
        if self.snapshot_on_close and self.snapshots.since > 0:
            try:  # an optimisation for the next open: never a reason for close to fail
                self.save_snapshot()
            except Exception:
                log.warning("could not store a judge snapshot on close", exc_info=True)
        self._crypto.shutdown()
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

    def _notify_reset(self) -> None:
        for listener in list(self._reset_listeners):
            try:
                listener()
            except Exception:
                log.exception("ledger reset listener failed")

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
        state, after, refused = self.snapshots.latest(frozen)
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
        self.snapshots.loaded(last - after)
        if self.snapshot_every > 0 and (refused or self.judged_on_open >= self.snapshot_every):
            self.snapshots.save(state, last)  # so the next open starts here (and the refused one is gone)
        return changed

    def _queue(self, batch: list[tuple[Event, str | None]], void: Sequence[Event] = (),
               snapshot_allowed: bool = True) -> Write:
        """Queue a judged batch for the group commit (with the lock held, right after judging
        it: a snapshot packed now is the state after exactly this batch)."""
        snapshot = self.snapshots.due(self.state, len(batch), snapshot_allowed)
        write = Write([event_row(e, r) for e, r in batch], [void_row(e) for e in void], snapshot, batch)
        self._group.submit(write, self._epoch)
        return write

    def _on_commit(self, group: list[Write]) -> None:
        """A group is durable (called by its leader, in commit order): hashes to the cache,
        events to the listeners."""
        self.known.commit()
        applied = [Applied(o, e, r) for w in group for o, (e, r) in zip(w.offsets, w.payload, strict=True)]
        if applied:
            self._notify(applied)

    def save_snapshot(self) -> bool:
        """Store a judge snapshot of the whole log now (e.g. before a planned restart); False
        if snapshots are off or it could not be stored."""
        with self._lock:
            if self.snapshot_every <= 0:
                return False
            self._group.drain()
            return self.snapshots.save(self.state, self.store.last_offset())

    def locked(self) -> threading.RLock:
        """The ledger's (re-entrant) write lock, to hold across several ingests: a caller that
        must apply pages in feed order takes it before the signature checks of the next page."""
        return self._lock

    # ------------------------------------------------------------- properties
    @property
    def snapshot_every(self) -> int:
        """Events between judge snapshots; <= 0: none (see ledger/snapshot_keeper.py)."""
        return self.snapshots.every

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
            signatures = self._crypto.sign_all(identity, [d for _, _, d in prepared])
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

    # ------------------------------------------------------------- ingesting
    def verify_signatures(self, events: Sequence[Event]) -> list[bool]:
        """Check signatures on all cores (PyNaCl releases the GIL)."""
        return self._crypto.verify(events)

    def verify_ahead(self, events: Sequence[Event], processes: bool = True) -> SignatureChecks:
        """Start checking `events`' signatures on the pool (in worker processes for a batch of
        `crypto_pool.PROCESS_FROM` or more) and return at once: hand the result to
        `ingest(events, checks=...)`. A reader of pages verifies the next page this way
        while the current one is judged and written (one writer, every core verifying).
        `processes=False`: threads only, for a caller whose own process is GIL-bound anyway."""
        return self._crypto.verify_ahead(events, processes)

    def check_wire_ahead(self, pairs: Sequence[tuple[bytes, bytes]], processes: bool = True,
                         hashes: Sequence[str] | None = None) -> WireChecks:
        """`verify_ahead` for a page still in its wire form, (canonical bytes, signature) pairs:
        the workers parse and check the events too, so the writer only builds them.
        `.result()` gives (events, checks) for `ingest(events, checks=...)`. `hashes`: each
        pair's content hash, if the caller took them already (so they are taken once)."""
        return self._crypto.check_wire_ahead(pairs, processes, hashes)

    def ingest(self, events: Sequence[Event], source: str | None = None,
               checks: SignatureChecks | None = None) -> IngestReport:
        """Verify and store foreign events. A batch with any forged, malformed or
        foreign-network event is refused whole (nothing stored). Events whose causal
        past is missing wait in the pending buffer (partitioned by author and by `source`,
        the peer they came from); equivocations become fork proofs. `checks`, from
        `verify_ahead` of these events, saves checking their signatures again."""
        unknown = self.known.unknown(e.hash for e in events)
        fresh = [e for e in events if e.hash in unknown]
        report = IngestReport(duplicates=len(events) - len(fresh))
        if not fresh:
            return report
        self._check_batch(fresh, checks)
        with self._lock:
            if self._epoch != self._group.epoch:
                self._load()  # a write failed since the state was loaded
            waiting = self.pending.entries()
            try:
                self.known.prefetch({h for e in fresh for h in (((e.prev,) if e.prev else ()) + e.deps)})
                batch, proofs, void = self._delivery().run(fresh, report, source)
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
                self._delivery().requeue(released)
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
            self._notify_reset()
        for proof in new_forks:
            self._publish_fork(proof)
        return report

    def _check_batch(self, fresh: list[Event], checks: SignatureChecks | None = None) -> None:
        """Refuse the whole batch (ChainError, SignatureError) if any event is of another
        network or carries a bad signature: nothing of it is stored."""
        net = self.state.net
        for event in fresh:
            if event.is_genesis:
                if net is not None and event.hash != net:
                    raise WrongNetwork(f"genesis {event.hash[:16]}… is another network's")
            elif net is not None and event.net != net:
                raise WrongNetwork(f"event {event.hash[:16]}… belongs to network {event.net[:16]}…")
        if checks is not None:
            bad, checked = checks.result()
            flagged = {id(e) for e in bad}  # by identity: `e in bad` compared whole events, bad x fresh times
            fresh = [e for e in fresh if id(e) in flagged or id(e) not in checked]  # those not checked ahead, too
        for event, ok in zip(fresh, self.verify_signatures(fresh), strict=False):
            if not ok:
                raise SignatureError(f"bad signature on event {event.hash} by {event.author[:16]}… seq {event.seq}")

    def _delivery(self) -> Delivery:
        return Delivery(self.state, self.known, self.pending, self.store,
                        self.identity.node_id if self.identity is not None else None)

    def report_conflict(self, earlier: Event, later: Event, author: str, proof: Sequence[str],
                        leaves: dict[str, Any] | None = None) -> Event | None:
        """Publish, as a `checkpoint.conflict` of this node's chain, that `later` (a checkpoint
        of the same signer) does not extend `earlier` at `author` (`leaves`: the evidence of a
        detached frontier), and freeze the signer from `later`'s seq like a forker: the
        fork-proof path (stored, gossiped, refolded). None when already known; RuleViolation
        when the evidence does not hold."""
        body = {"signer": later.author, "seq": later.seq, "author": author, "proof": list(proof),
                "a": earlier.to_json(), "b": later.to_json()}
        if leaves is not None:
            body["leaves"] = leaves
        fork = parse_checkpoint_conflict(body, self.state.net)
        if fork is None:
            raise RuleViolation("checkpoint conflict does not show two inconsistent checkpoints of one signer")
        if any((p.author, p.seq) == (fork.author, fork.seq) for p in self.store.fork_proofs()):
            return None
        event = self.append(CHECKPOINT_CONFLICT, body)
        with self._lock:
            self.store.insert_fork_proof(fork)
            self._load()
        self._notify_reset()
        return event

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
