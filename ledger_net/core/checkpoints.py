"""A node's checkpoints: signing them, witnessing other nodes' ones, and serving proofs.

The pure rules (leaves, notes, conflicts) are `ledger/checkpoint.py`; this module reads the
node's store and projections. Three jobs:

* **Signing.** A checkpoint is taken at the node's *applied* frontier: the events its
  projections have folded (offset <= the runner's offset), whose per-author sizes come from
  the store, and whose state is read from the projections in memory under their lock. No
  replay: the frontier is what the node holds. The state tree is kept by a `StateBuilder`
  between checkpoints, so each one rehashes only the rows changed since the last, and saved
  in the store (`save_state`, table state_trees) to be restored when the service starts,
  so the first checkpoint after a restart does too. `tick`
  signs one every `every_events` events or `every_seconds` seconds (both off by default).
* **Witnessing.** A checkpoint of another signer is cosigned only once verified: this node
  holds every author at the checkpoint's size with the same author root, recomputes the
  same state root (from memory when its frontier is the checkpoint's, else by folding the
  balances and reputation projections over exactly those events), and the checkpoint
  extends the signer's previous one. A provable inconsistency becomes a
  `checkpoint.conflict` (the fork-proof path: stored, gossiped, signer frozen).
* **Proofs.** Balance (or absence), event and author-consistency proofs against a checkpoint,
  with its cosignatures, in the JSON forms `ledger_net.light` verifies (format 1; the HTTP
  routes and the CLI send them in format 2, `ledger.proof_codec`). A checkpoint's cosignatures
  are an indexed query (table cosignatures, brought up to the log before a lookup).

A frontier of more than `checkpoint.FRONTIER_INLINE` authors is detached: the signer keeps it
as a blob, and a witness waits for it (`wanted_frontiers`; the node server fetches it from
peers and hands it to `put_frontier`, backing a missed blob off: `frontier_missed`), checks it
against the note, then judges as above.
Over 400 lines: the three jobs share the frontier and state caches, the cosignatures index
and the live state tree (its save and restore included).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from ..errors import LedgerError, NodeError, ProofError
from ..ledger.chain import Ledger
from ..ledger.checkpoint import (
    ACCOUNT,
    CHECKPOINT_COSIGNED,
    CHECKPOINT_SIGNED,
    StateTree,
    check_frontier,
    cosign_message,
    detached_frontier,
    find_conflict,
    frontier_evidence,
    frontier_tree,
    make_body,
    note_digest,
    note_of,
    sorted_frontier,
)
from ..ledger.encoding import decode
from ..ledger.events import Event
from ..ledger.state_tree import StateBuilder
from ..ledger.tables import cosignatures, meta, state_trees
from ..ledger.tables import events as events_table
from ..projections.balances import BalancesProjection
from ..projections.reputation import ReputationProjection
from ..projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

Frontier = list[list[Any]]  # sorted [author, size, root hex]
LIVE_TREE = "applied"  # state_trees row of the live builder
COSIGN_MARK = "cosignatures_indexed"  # meta key: the offset up to which `cosignatures` holds the log's
SAVE_EVERY = 300.0  # seconds between saves of the live state tree after signing (and one on stop)
FETCH_BACKOFF, FETCH_BACKOFF_MAX = 2.0, 600.0  # seconds before a missing frontier blob is asked for again
FETCH_TIMEOUT, FETCH_BUDGET = 5.0, 15.0  # seconds per peer, and for all peers, of one such fetch


class CheckpointService:
    """Checkpoints of one node's ledger and projections (see the module docstring)."""

    def __init__(self, ledger: Ledger, runner: ProjectionRunner, *, every_events: int = 0, every_seconds: float = 0.0,
                 witness: bool = True) -> None:
        if every_events < 0 or every_seconds < 0:
            raise NodeError("checkpoint intervals must not be negative")
        self.ledger = ledger
        self.runner = runner
        self.every_events = every_events
        self.every_seconds = every_seconds
        self.witness = witness
        self._lock = threading.RLock()
        self._states: OrderedDict[str, StateTree] = OrderedDict()  # state root hex -> tree (a few)
        self._pending: list[str] = []  # checkpoints of others not yet judged
        self._judged: dict[str, str] = {}  # checkpoint hash -> what this witness concluded
        self._last_signed = time.monotonic()
        self._builder = StateBuilder()  # the applied frontier's state, kept between checkpoints
        self._build_lock = threading.Lock()
        self._restored = False  # whether the builder was offered the saved tree (first build)
        self._saved_at: float | None = None  # monotonic time of the last save; None: not since start
        self._builds = self._saved_builds = 0  # live builds so far, and at the last save
        self.save_every = SAVE_EVERY
        # cosignatures are looked up in the store's `cosignatures` index, which this service
        # brings up to the log (from its meta mark) before a lookup once the listener saw new ones
        self._cosigs_stale = True
        self._cosigs_from_start = False  # verdicts changed: index the log again from its start
        self._frontiers: dict[str, Frontier] = {}  # checkpoint hash -> its detached frontier (a few)
        # detached frontier blobs that waiting checkpoints need -> (failed fetches, monotonic time of the next try)
        self._wanted: dict[str, tuple[int, float]] = {}
        ledger.subscribe(self._on_applied, self._on_reset)
        self._restore_state()
        self._pending.extend(self._not_cosigned())

    @property
    def _me(self) -> str | None:
        return self.ledger.identity.node_id if self.ledger.identity else None

    def _on_applied(self, applied: Sequence[Any]) -> None:
        with self._lock:
            self._pending.extend(a.event.hash for a in applied if a.event.type == CHECKPOINT_SIGNED
                                 and a.reason is None and a.event.author != self._me)
            if any(a.event.type == CHECKPOINT_COSIGNED for a in applied):
                self._cosigs_stale = True

    def _on_reset(self) -> None:
        with self._lock:  # validity is read with each lookup; the log itself may have been re-read
            self._cosigs_stale = self._cosigs_from_start = True

    def _index_cosignatures(self) -> None:
        """Bring the store's `cosignatures` index up to the log: every checkpoint.cosigned event
        after the offset kept in meta (valid or not: the lookup joins `events` for validity)."""
        with self._lock:
            if not self._cosigs_stale:
                return
            self._cosigs_stale, from_start, self._cosigs_from_start = False, self._cosigs_from_start, False
        store = self.ledger.store
        try:
            mark = 0 if from_start else int(store.get_meta(COSIGN_MARK) or 0)
            with store.engine.connect() as conn:
                rows = conn.execute(select(events_table.c.offset, events_table.c.raw, events_table.c.sig,
                                           events_table.c.hash)
                                    .where(events_table.c.type == CHECKPOINT_COSIGNED, events_table.c.offset > mark)
                                    .order_by(events_table.c.offset)).all()
            if not rows:
                return
            found = [Event.from_stored(r.raw, r.sig, r.hash) for r in rows]
            hashes = [e.hash for e in found]
            with store.writer(), store.engine.begin() as conn:
                for start in range(0, len(hashes), 500):
                    conn.execute(cosignatures.delete().where(cosignatures.c.hash.in_(hashes[start:start + 500])))
                conn.execute(cosignatures.insert(), [{"hash": e.hash, "checkpoint": str(e.body.get("checkpoint"))[:64],
                                                      "witness": e.author} for e in found])
                conn.execute(meta.delete().where(meta.c.key == COSIGN_MARK))
                conn.execute(meta.insert().values(key=COSIGN_MARK, value=str(rows[-1].offset)))
        except BaseException:
            with self._lock:  # try again at the next lookup
                self._cosigs_stale, self._cosigs_from_start = True, self._cosigs_from_start or from_start
            raise

    def _cosign_rows(self, checkpoint_hash: str, witness: str | None = None) -> list[Event]:
        """A checkpoint's effective cosignatures, one per witness (its latest valid one), from the index."""
        self._index_cosignatures()
        q = select(events_table.c.raw, events_table.c.sig, events_table.c.hash) \
            .join(cosignatures, cosignatures.c.hash == events_table.c.hash) \
            .where(cosignatures.c.checkpoint == checkpoint_hash, events_table.c.valid.is_(True))
        if witness is not None:
            q = q.where(cosignatures.c.witness == witness)
        with self.ledger.store.engine.connect() as conn:
            rows = conn.execute(q.order_by(events_table.c.offset)).all()
        latest: dict[str, Event] = {}
        for r in rows:  # oldest first: a later one of a witness wins
            event = Event.from_stored(r.raw, r.sig, r.hash)
            latest[event.author] = event
        return list(latest.values())

    # ------------------------------------------------------------------ state
    def applied_frontier(self) -> tuple[Frontier, StateTree]:
        """The frontier the projections have folded and the state tree at it."""
        with self.runner.reading():  # nothing folds while we read
            offset = self.runner.offset
            with self.ledger.store.engine.connect() as conn:
                sizes = conn.execute(select(events_table.c.author, func.max(events_table.c.seq))
                                     .where(events_table.c.offset <= offset)
                                     .group_by(events_table.c.author)).all()
            state = self._tree_of(self.runner.balances, self.runner.reputation)
        frontier = [[a, int(s), self.ledger.store.author_root(a, int(s)).hex()] for a, s in sorted(sizes)]
        self._remember(state)
        return frontier, state

    def _tree_of(self, balances: BalancesProjection, reputation: ReputationProjection,
                 builder: StateBuilder | None = None) -> StateTree:
        """The state tree over these projections: through the live builder (which rehashes only
        the rows changed since its last build) when none is given. The live builder's first
        build starts from the tree saved before the last stop (`save_state`), if any."""
        if builder is not None:
            return builder.build(balances.accounts, reputation.subjects)
        self._restore_state()  # done at start already: a no-op
        with self._build_lock:
            self._builds += 1
            return self._builder.build(balances.accounts, reputation.subjects)

    def _restore_state(self) -> None:
        """Offer the live builder the tree saved before the last stop, once (at start, so that
        the first checkpoint pays only for the rows changed since)."""
        with self._build_lock:
            if self._restored:
                return
            self._restored = True
            try:
                with self.ledger.store.engine.connect() as conn:
                    data = conn.execute(select(state_trees.c.data).where(state_trees.c.name == LIVE_TREE)).scalar()
                why = None if data is None else self._builder.restore(bytes(data))
            except Exception as exc:  # a cache: never keeps a node from starting
                why = f"{type(exc).__name__}: {exc}"
            if why is not None:
                log.warning("the saved checkpoint state tree is not used (%s): building it in full", why)

    def save_state(self, *, force: bool = True) -> bool:
        """Keep the live builder's last tree in the store, so the first checkpoint after a
        restart rehashes only the rows changed since (table state_trees). Only if it built
        since the last save and, unless `force`, `save_every` seconds passed since then (or none
        was made since start). Returns whether it saved; a failure is one warning, never an
        error (the tree is a cache: without it the next start builds in full)."""
        now = time.monotonic()
        if not force and self._saved_at is not None and now - self._saved_at < self.save_every:
            return False
        store = self.ledger.store
        try:
            with self._build_lock:
                data = self._builder.dump() if self._builds != self._saved_builds else b""
                builds = self._builds
            if not data:
                return False
            with store.writer(), store.engine.begin() as conn:
                conn.execute(state_trees.delete().where(state_trees.c.name == LIVE_TREE))
                conn.execute(state_trees.insert().values(name=LIVE_TREE, data=data,
                                                         created_at=int(time.time() * 1000)))
        except Exception as exc:
            log.warning("could not save the checkpoint state tree: %s: %s", type(exc).__name__, exc)
            return False
        self._saved_at, self._saved_builds = now, builds
        return True

    def _save_if_due(self) -> None:
        self.save_state(force=False)

    def _remember(self, state: StateTree) -> None:
        with self._lock:
            self._states[state.tree.root.hex()] = state
            self._states.move_to_end(state.tree.root.hex())
            while len(self._states) > 4:
                self._states.popitem(last=False)

    def state_at(self, frontier: Frontier) -> StateTree:
        """The state tree at `frontier` (which this node must hold): from memory when it is
        the applied frontier, else by folding fresh projections over exactly its events (the
        log from its start to the frontier's last event, not the tail after it)."""
        current, state = self.applied_frontier()
        if [e[:2] for e in current] == [e[:2] for e in frontier]:
            return state
        sizes = {a: s for a, s, _ in frontier}
        balances, reputation = BalancesProjection(), ReputationProjection()
        ctx = self.runner.context()
        left = sum(sizes.values())  # the log is causal: the fold ends at the frontier's last event
        for row in self.ledger.store.select_events():
            if left == 0:
                break
            if row.seq <= sizes.get(row.author, 0):
                left -= 1
                event = Event.from_stored(row.raw, row.sig, row.hash)
                reason = None if row.valid else row.reason
                balances.apply(row.offset, event, reason, ctx)
                reputation.apply(row.offset, event, reason, ctx)
        tree = self._tree_of(balances, reputation, StateBuilder())  # not the live builder: it would rehash twice
        self._remember(tree)
        return tree

    def _state_for(self, body: dict[str, Any], frontier: Frontier) -> StateTree:
        with self._lock:
            cached = self._states.get(body["state_root"])
        return cached if cached is not None else self.state_at(frontier)

    # ------------------------------------------------------------------ frontiers
    def frontier_of(self, event: Event) -> Frontier | None:
        """A checkpoint's frontier entries: inline, or its detached blob from the store once
        held and checked against the note (None while this node does not hold it)."""
        body = event.body
        if "frontier_blob" not in body:
            return list(body["frontier"])
        with self._lock:
            cached = self._frontiers.get(event.hash)
        if cached is not None:
            return cached
        data = self.ledger.store.get_blob(body["frontier_blob"])
        if data is None:
            return None
        try:
            entries = decode(bytes(data))
        except LedgerError:
            entries = None
        if check_frontier(body, entries) is not None:
            return None  # a blob with the right hash is the signer's: consider() refuses it
        with self._lock:
            self._frontiers[event.hash] = entries
            while len(self._frontiers) > 8:
                self._frontiers.pop(next(iter(self._frontiers)))
        return list(entries)

    def wanted_frontiers(self, now: float | None = None) -> list[str]:
        """Blob hashes of detached frontiers that checkpoints waiting here need and that are
        due (fetch them from peers, then `put_frontier`, or `frontier_missed` if none had it)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return sorted(h for h, (_, due) in self._wanted.items() if due <= now)

    def frontier_missed(self, blob_hash: str, now: float | None = None) -> float:
        """No peer served a wanted frontier blob: try it again after a backoff that doubles
        with each miss (FETCH_BACKOFF, at most FETCH_BACKOFF_MAX seconds), so one missing blob
        costs the witness loop one bounded fetch per backoff, not one per round. Returns the
        delay."""
        now = time.monotonic() if now is None else now
        with self._lock:
            misses = self._wanted.get(blob_hash, (0, now))[0] + 1
            delay = min(FETCH_BACKOFF_MAX, FETCH_BACKOFF * 2 ** min(misses - 1, 30))
            self._wanted[blob_hash] = (misses, now + delay)
        return delay

    def put_frontier(self, blob_hash: str, data: bytes) -> bool:
        """Keep a fetched detached frontier if its bytes hash to `blob_hash`."""
        if hashlib.sha256(data).hexdigest() != blob_hash:
            return False
        self.ledger.store.put_blob(blob_hash, data)
        with self._lock:
            self._wanted.pop(blob_hash, None)
        return True

    # ------------------------------------------------------------------ signing
    def make(self) -> Event:
        """Sign a checkpoint of the applied frontier as this node's next event."""
        identity = self.ledger.identity
        if identity is None or self.ledger.net is None:
            raise NodeError("a checkpoint needs a node key and a network")
        frontier, state = self.applied_frontier()
        body = make_body(net=self.ledger.net, signer=identity.node_id, sign=identity.sign, frontier=frontier,
                         state=state, ts=int(time.time() * 1000))
        if "frontier_blob" in body:  # kept before the event exists: witnesses fetch it from here
            blob_hash, data = detached_frontier(sorted_frontier(frontier))
            self.ledger.store.put_blob(blob_hash, data)
        event = self.ledger.append(CHECKPOINT_SIGNED, body)
        self._last_signed = time.monotonic()
        self._save_if_due()
        return event

    def due(self) -> bool:
        """Whether `every_events` events or `every_seconds` seconds passed since the last one."""
        if not (self.every_events or self.every_seconds) or self.ledger.net is None or self._me is None:
            return False
        last = self.latest(self._me)
        grown = self.ledger.store.count() - (self._offset_of(last) if last else 0)
        if grown <= 1:  # nothing new but (at most) the last checkpoint itself
            return False
        if self.every_events and grown > self.every_events:
            return True
        return bool(self.every_seconds) and time.monotonic() - self._last_signed >= self.every_seconds

    def tick(self) -> list[str]:
        """One round: sign if due, then judge waiting checkpoints of others. Returns what
        happened, one line each (for logs and tests)."""
        done: list[str] = []
        if self.due():
            done.append(f"signed {self.make().hash}")
        if self.witness:
            with self._lock:
                pending, self._pending = self._pending, []
            keep = []
            for h in dict.fromkeys(pending):
                outcome = self.consider(h)
                if outcome.startswith("waiting"):
                    keep.append(h)
                else:
                    done.append(f"{outcome} {h}")
            needed = {e.body.get("frontier_blob") for e in map(self.ledger.event, keep) if e is not None}
            with self._lock:
                self._pending[:0] = keep
                for blob in set(self._wanted) - needed:  # its checkpoints were judged (or dropped) meanwhile
                    del self._wanted[blob]
            self._save_if_due()  # a witness builds the tree too
        return done

    # ------------------------------------------------------------------ witnessing
    def consider(self, checkpoint_hash: str) -> str:
        """Judge another signer's checkpoint: 'cosigned', 'conflict', 'refused: why' or
        'waiting: why' (this node does not hold the frontier yet)."""
        if checkpoint_hash in self._judged:
            return self._judged[checkpoint_hash]
        event = self.ledger.event(checkpoint_hash)
        if event is None or event.type != CHECKPOINT_SIGNED:
            return "refused: not a checkpoint this node holds"
        if event.author == self._me or self._cosigned(checkpoint_hash):
            return self._judge(checkpoint_hash, "refused: own or already cosigned")
        if self.ledger.state.frozen.get(event.author, event.seq + 1) <= event.seq:
            return self._judge(checkpoint_hash, "refused: the signer is frozen")
        body = event.body
        frontier = self.frontier_of(event)
        if frontier is None:
            blob = body["frontier_blob"]
            if self.ledger.store.get_blob(blob) is not None:
                return self._judge(checkpoint_hash, "refused: its detached frontier does not match its note")
            with self._lock:
                self._wanted.setdefault(blob, (0, 0.0))  # due now; `frontier_missed` backs it off
            return f"waiting: fetching its detached frontier {blob[:16]}…"
        previous = self._previous(event)
        earlier = self.frontier_of(previous) if previous is not None else None
        if previous is not None and earlier is not None:
            conflict = find_conflict({**previous.body, "frontier": earlier}, {**body, "frontier": frontier},
                                     self._root_at, self._full_path)
            if conflict is not None:
                author, path = conflict
                leaves = {"a": frontier_evidence(earlier, author), "b": frontier_evidence(frontier, author)} \
                    if "frontier_blob" in body or "frontier_blob" in previous.body else None
                try:
                    self.ledger.report_conflict(previous, event, author, path, leaves)
                except LedgerError as exc:
                    log.warning("could not publish a checkpoint conflict: %s", exc)
                return self._judge(checkpoint_hash, "conflict")
        for author, size, root in frontier:
            held, _ = self.ledger.head(author)
            if held < size:
                return f"waiting: holds {held} of {author[:16]}…'s {size} events"
            if self.ledger.store.author_root(author, size).hex() != root:
                return self._judge(checkpoint_hash, f"refused: {author[:16]}…'s root at {size} differs here")
        if self._state_for(body, frontier).tree.root.hex() != body["state_root"]:
            return self._judge(checkpoint_hash, "refused: this node computes another state root")
        digest = note_digest(note_of(event.net, event.author, body))
        assert self.ledger.identity is not None
        cosign = {"checkpoint": checkpoint_hash, "note": digest.hex(),
                  "sig": self.ledger.identity.sign(cosign_message(digest)).hex()}
        self.ledger.append(CHECKPOINT_COSIGNED, cosign, deps=[checkpoint_hash])
        return self._judge(checkpoint_hash, "cosigned")

    def _judge(self, checkpoint_hash: str, outcome: str) -> str:
        self._judged[checkpoint_hash] = outcome
        return outcome

    def _previous(self, event: Event) -> Event | None:
        """The signer's latest effective checkpoint before `event` that this node holds."""
        found = self._rows(CHECKPOINT_SIGNED, event.author, before_seq=event.seq, limit=1)
        return Event.from_stored(found[0].raw, found[0].sig, found[0].hash) if found else None

    def _not_cosigned(self) -> list[str]:
        """Effective checkpoints of others this node has no effective cosignature of, oldest
        first (what a witness judges when it starts): one query over the cosignatures index."""
        me = self._me
        q = select(events_table.c.hash).where(events_table.c.type == CHECKPOINT_SIGNED,
                                              events_table.c.valid.is_(True))
        if me is not None:
            self._index_cosignatures()
            mine = select(cosignatures.c.checkpoint).join(events_table, events_table.c.hash == cosignatures.c.hash) \
                .where(cosignatures.c.witness == me, events_table.c.valid.is_(True))
            q = q.where(events_table.c.author != me, events_table.c.hash.not_in(mine))
        with self.ledger.store.engine.connect() as conn:
            return list(conn.execute(q.order_by(events_table.c.offset)).scalars())

    def _root_at(self, author: str, size: int) -> bytes | None:
        return self.ledger.store.author_root(author, size) if self.ledger.head(author)[0] >= size else None

    def _full_path(self, author: str, old: int, new: int) -> list[bytes] | None:
        if self.ledger.head(author)[0] < new:
            return None
        path = self.ledger.store.consistency_proof(author, old, new)
        return ([self.ledger.store.author_root(author, old)] if old & (old - 1) == 0 else []) + path

    def _cosigned(self, checkpoint_hash: str) -> bool:
        me = self._me
        return me is not None and bool(self._cosign_rows(checkpoint_hash, me))

    # ------------------------------------------------------------------ reading
    def _rows(self, event_type: str, author: str | None = None, *, before_seq: int | None = None,
              prefix: str | None = None, limit: int | None = None) -> list[Any]:
        """Effective events of a type, newest first: of `author`, below `before_seq`, whose hash
        starts with `prefix` (lowercase hex), at most `limit` of them; all in the query."""
        q = select(events_table.c.offset, events_table.c.raw, events_table.c.sig, events_table.c.hash) \
            .where(events_table.c.type == event_type, events_table.c.valid.is_(True))
        if author is not None:
            q = q.where(events_table.c.author == author)
        if before_seq is not None:
            q = q.where(events_table.c.seq < before_seq)
        if prefix is not None:  # a range over the hash index: hex digits all sort below "g"
            q = q.where(events_table.c.hash >= prefix, events_table.c.hash < prefix + "g")
        q = q.order_by(events_table.c.offset.desc())
        if limit is not None:
            q = q.limit(limit)
        with self.ledger.store.engine.connect() as conn:
            return list(conn.execute(q).all())

    def checkpoints_cosigned_by(self, witness: str) -> list[Event]:
        """Effective cosignatures `witness` made, newest first."""
        return [Event.from_stored(r.raw, r.sig, r.hash) for r in self._rows(CHECKPOINT_COSIGNED, witness)]

    def checkpoints(self, signer: str | None = None, limit: int | None = None) -> list[Event]:
        """Effective checkpoints this node holds, newest first (of `signer` when given; the
        newest `limit` when given)."""
        return [Event.from_stored(r.raw, r.sig, r.hash) for r in self._rows(CHECKPOINT_SIGNED, signer, limit=limit)]

    def latest(self, signer: str | None = None) -> Event | None:
        """The newest effective checkpoint (of `signer`, else this node's own, else anyone's)."""
        found = self._rows(CHECKPOINT_SIGNED, signer or self._me, limit=1)
        if not found and signer is None:
            found = self._rows(CHECKPOINT_SIGNED, limit=1)
        return Event.from_stored(found[0].raw, found[0].sig, found[0].hash) if found else None

    def _offset_of(self, event: Event) -> int:
        return self.ledger.store.offset_of(event.hash) or 0

    def resolve(self, ref: str | None) -> Event:
        """A checkpoint by hash or unique hash prefix (None: the latest); NodeError otherwise."""
        if ref is None:
            found = self.latest()
            if found is None:
                raise NodeError("no checkpoint yet: make one with `ledger-net checkpoint --make`")
            return found
        ref = ref.lower()
        hexits = len(ref) >= 4 and all(c in "0123456789abcdef" for c in ref)
        matches = [Event.from_stored(r.raw, r.sig, r.hash)
                   for r in self._rows(CHECKPOINT_SIGNED, prefix=ref, limit=2)] if hexits else []
        if len(matches) != 1:
            raise NodeError(f"{ref[:64]!r} names {'no' if not matches else 'more than one'} checkpoint here")
        return matches[0]

    def cosignature_events(self, checkpoint_hash: str) -> list[Event]:
        """Effective cosignatures of a checkpoint, one per witness (an indexed query; the index
        takes in the cosignatures appended since its last use first)."""
        return self._cosign_rows(checkpoint_hash)

    def cosigned(self, event: Event) -> dict[str, Any]:
        """A checkpoint as a light client takes it: note, signer's signature, cosignatures."""
        cosigs = sorted({c.author: c.body["sig"] for c in self.cosignature_events(event.hash)}.items())
        return {"note": note_of(event.net, event.author, event.body), "sig": event.body["sig"],
                "cosignatures": [{"witness": w, "sig": s} for w, s in cosigs]}

    def describe(self, event: Event) -> dict[str, Any]:
        """A checkpoint for people and the HTTP API (the frontier left out: see /frontier)."""
        body = event.body
        return {"hash": event.hash, "signer": event.author, "seq": event.seq,
                "id": note_digest(note_of(event.net, event.author, body)).hex(),
                **{k: body[k] for k in ("frontier_root", "authors", "events", "state_root", "state_size", "ts")},
                "cosigners": [c["witness"] for c in self.cosigned(event)["cosignatures"]]}

    # ------------------------------------------------------------------ proofs
    def balance_proof(self, account: str, at: str | None = None) -> dict[str, Any]:
        """The proof of `account`'s state leaf in a checkpoint's state root (light.verify_balance),
        or, for an account without one, of its absence (light.verify_absence: it held nothing)."""
        event = self.resolve(at)
        state = self._state_for(event.body, self.held_frontier(event))
        if state.tree.root.hex() != event.body["state_root"]:
            raise NodeError("this node computes another state root at that checkpoint; ask another node")
        index = state.index(ACCOUNT + account)
        if index is None:
            left, right = state.neighbours(ACCOUNT + account)
            return {"type": "absence", "account": account, "checkpoint": self.cosigned(event),
                    "left": self._state_leaf(state, left), "right": self._state_leaf(state, right)}
        leaf = self._state_leaf(state, index)
        assert leaf is not None
        return {"type": "balance", "account": account, "checkpoint": self.cosigned(event),
                "leaf": {k: leaf[k] for k in ("index", "key", "value")}, "proof": leaf["proof"]}

    @staticmethod
    def _state_leaf(state: StateTree, index: int | None) -> dict[str, Any] | None:
        if index is None:
            return None
        key, value = decode(state.tree.leaves[index])
        return {"index": index, "key": key, "value": value, "proof": [h.hex() for h in state.tree.proof(index)]}

    def held_frontier(self, event: Event) -> Frontier:
        """A checkpoint's frontier entries; NodeError while a detached one is not held here."""
        frontier = self.frontier_of(event)
        if frontier is None:
            raise NodeError(f"this node does not hold checkpoint {event.hash[:16]}…'s detached frontier yet")
        return frontier

    def author_leaf(self, event: Event, author: str) -> dict[str, Any]:
        """`author`'s frontier leaf in a checkpoint, with its inclusion proof."""
        frontier = self.held_frontier(event)
        for index, (a, size, root) in enumerate(frontier):
            if a == author:
                tree = frontier_tree(frontier)
                return {"index": index, "size": size, "root": root, "proof": [h.hex() for h in tree.proof(index)]}
        raise NodeError(f"author {author[:16]}… is not in checkpoint {event.hash[:16]}…")

    def event_proof(self, event_hash: str, at: str | None = None) -> dict[str, Any]:
        """The proof that an event is in its author's chain as named by a checkpoint."""
        target = self.ledger.event(event_hash)
        if target is None:
            raise NodeError(f"no event {event_hash[:64]!r} here")
        if at is None:
            found = next((c for c in self.checkpoints()  # newest first: stop at the first that covers it
                          if any(a == target.author and s >= target.seq for a, s, _ in self.frontier_of(c) or ())),
                         None)
            if found is None:
                raise NodeError("no checkpoint here covers that event yet")
            checkpoint = found
        else:
            checkpoint = self.resolve(at)
        leaf = self.author_leaf(checkpoint, target.author)
        if leaf["size"] < target.seq:
            raise NodeError("that checkpoint does not cover the event")
        try:
            path = self.ledger.store.inclusion_proof(target.author, target.seq, leaf["size"])
        except ProofError as exc:
            raise NodeError(f"cannot prove the event: {exc}") from None
        return {"type": "event", "checkpoint": self.cosigned(checkpoint), "author": leaf,
                "event": target.to_json(), "proof": [h.hex() for h in path]}

    def consistency(self, author: str, old: str | None, new: str | None) -> dict[str, Any]:
        """The proof that `author`'s chain in checkpoint `old` is a prefix of its chain in `new`."""
        a, b = self.resolve(old), self.resolve(new)
        leaf_a, leaf_b = self.author_leaf(a, author), self.author_leaf(b, author)
        if leaf_a["size"] > leaf_b["size"]:
            raise NodeError("the old checkpoint holds more of that author than the new one")
        try:
            path = self.ledger.store.consistency_proof(author, leaf_a["size"], leaf_b["size"])
        except ProofError as exc:
            raise NodeError(f"cannot prove the growth: {exc}") from None
        return {"type": "author_consistency", "author": author, "old": self.cosigned(a), "new": self.cosigned(b),
                "old_leaf": leaf_a, "new_leaf": leaf_b, "proof": [h.hex() for h in path]}
