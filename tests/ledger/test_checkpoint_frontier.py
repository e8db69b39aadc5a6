"""Checkpoints of a large network (issue 14): the frontier of 1,000 authors would exceed the
64 KiB event limit inline, so it is detached (a blob the event names); a witness waits for
the blob, checks it against the note, cosigns, and proves events through it."""

from __future__ import annotations

import pytest

from ledger_net import light
from ledger_net.core.checkpoints import FETCH_BACKOFF, FETCH_BACKOFF_MAX, CheckpointService
from ledger_net.ledger import checkpoint as cp
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import MAX_EVENT_BYTES, Event
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.proof_codec import compact
from ledger_net.projections.runner import ProjectionRunner

ALICE = Identity.from_seed(bytes([21]) * 32)
BOB = Identity.from_seed(bytes([22]) * 32)
AUTHORS = [Identity.from_seed(i.to_bytes(4, "big") * 8) for i in range(1, 1001)]


class Books:
    def __init__(self, identity: Identity) -> None:
        self.ledger = Ledger.open("sqlite://", identity)
        self.runner = ProjectionRunner(self.ledger)
        self.cps = CheckpointService(self.ledger, self.runner)

    def take(self, other: Books) -> None:
        self.ledger.ingest([Event.from_wire(r.raw, r.sig) for r in other.ledger.stored()])


@pytest.fixture(scope="module")
def network():
    """alice founds the network; 1,000 authors join it; bob holds everything."""
    a, b = Books(ALICE), Books(BOB)
    a.ledger.create_network("big", issuers=[ALICE.node_id])
    net = a.ledger.net
    a.ledger.ingest([Event.create(who, net=net, seq=1, prev=None, type="node.joined", body={"name": f"n{i}"}, ts=1)
                     for i, who in enumerate(AUTHORS)])
    b.take(a)
    yield a, b
    a.ledger.close()
    b.ledger.close()


def test_a_thousand_authors_are_detached_and_cosigned_once_the_witness_holds_them(network):
    a, b = network
    made = a.cps.make()
    body = made.body
    assert body["authors"] == 1001 and body["frontier"] == [] and "frontier_blob" in body
    assert len(made.raw) < MAX_EVENT_BYTES // 8  # inline, the frontier alone would be ~145 KB
    blob = body["frontier_blob"]
    b.take(a)
    assert b.cps.consider(made.hash).startswith("waiting: fetching its detached frontier")
    assert b.cps.wanted_frontiers() == [blob]
    assert not b.cps.put_frontier(blob, b"[]")  # bytes that are not the named blob are not kept
    assert b.cps.put_frontier(blob, a.ledger.store.get_blob(blob))
    assert b.cps.wanted_frontiers() == []
    assert b.cps.consider(made.hash) == "cosigned"
    # an event of the 700th author, proven through the detached frontier, on the witness's side
    target = next(e for e in b.ledger.stored() if e.author == AUTHORS[700].node_id)
    proof = compact(b.cps.event_proof(target.hash, made.hash))
    assert len(b.cps.held_frontier(made)) == 1001
    verdict = light.verify_event(proof, net=a.ledger.net, witnesses=[ALICE.node_id, BOB.node_id], threshold=2)
    assert verdict.ok, verdict


def test_a_blob_that_is_not_the_notes_frontier_is_refused(network):
    a, b = network
    frontier, state = a.cps.applied_frontier()
    body = cp.make_body(net=a.ledger.net, signer=ALICE.node_id, sign=ALICE.sign, frontier=frontier, state=state, ts=9)
    other, data = cp.detached_frontier(frontier[1:])  # a frontier without one author, named instead
    body["frontier_blob"] = other  # the note (and so its signature) does not cover the blob's name
    a.ledger.store.put_blob(other, data)
    made = a.ledger.append(cp.CHECKPOINT_SIGNED, body)
    b.take(a)
    b.cps.put_frontier(other, data)
    assert b.cps.consider(made.hash) == "refused: its detached frontier does not match its note"


def test_detached_frontier_rules():
    entries = [[f"{i:064x}", 1, "ab" * 32] for i in range(300)]
    tree = cp.frontier_tree(entries)
    base = {"frontier_root": tree.root.hex(), "authors": 300, "events": 300, "state_root": "cd" * 32,
            "state_size": 1, "ts": 1}
    blob, data = cp.detached_frontier(entries)
    assert cp.check_frontier(base, entries) is None
    assert "does not hash" in cp.check_frontier(base, entries[:1] + [[entries[1][0], 1, "ef" * 32]] + entries[2:])
    assert "not a list" in cp.check_frontier(base, [["x", 0, "ab" * 32]])
    signed = {**base, "frontier": [], "frontier_blob": blob, "sig": "00" * 64}
    assert "inline entries" in cp.check_body("ee" * 32, ALICE.node_id, {**signed, "frontier": entries[:1]})
    assert "is inline" in cp.check_body("ee" * 32, ALICE.node_id, {**signed, "authors": cp.FRONTIER_INLINE})
    # a detached frontier is not in the event, so no conflict can be proven from two events' bodies
    inline = {**base, "frontier": entries}
    assert "detached" in cp.check_conflict(inline, signed, entries[0][0], [])


def test_a_split_view_between_detached_frontiers_is_proven_and_freezes_the_signer():
    """The signer's second detached checkpoint drops an author the first named: the witness
    publishes a conflict whose evidence is the author's leaf in one frontier and its two
    neighbours in the other; a third node that holds only the events judges it the same."""
    carol, dave, erin = (Identity.from_seed(bytes([b]) * 32) for b in (23, 24, 25))
    s, w, third = Books(carol), Books(dave), Books(erin)
    s.ledger.create_network("split", issuers=[carol.node_id])
    s.ledger.ingest([Event.create(who, net=s.ledger.net, seq=1, prev=None, type="node.joined",
                                  body={"name": f"n{i}"}, ts=1) for i, who in enumerate(AUTHORS[:400])])
    first = s.cps.make()
    frontier, state = s.cps.applied_frontier()
    dropped = [e for e in frontier if e[0] != AUTHORS[123].node_id]
    blob, data = cp.detached_frontier(cp.sorted_frontier(dropped))
    s.ledger.store.put_blob(blob, data)
    body = cp.make_body(net=s.ledger.net, signer=carol.node_id, sign=carol.sign, frontier=dropped, state=state,
                        ts=first.body["ts"] + 1)
    later = s.ledger.append(cp.CHECKPOINT_SIGNED, body)
    w.take(s)
    for made in (first, later):
        w.cps.put_frontier(made.body["frontier_blob"], s.ledger.store.get_blob(made.body["frontier_blob"]))
    assert w.cps.consider(first.hash) == "cosigned"
    assert w.cps.consider(later.hash) == "conflict"
    conflict = next(Event.from_wire(e.raw, e.sig) for e in w.ledger.stored() if e.type == cp.CHECKPOINT_CONFLICT)
    assert set(conflict.body["leaves"]["b"]) == {"left", "right"} and "entry" in conflict.body["leaves"]["a"]
    assert carol.node_id in w.ledger.state.frozen
    third.take(w)  # the events only: no frontier blob
    assert carol.node_id in third.ledger.state.frozen
    for x in (s, w, third):
        x.ledger.close()


def test_frontier_evidence_is_checked_against_the_root():
    entries = cp.sorted_frontier([[f"{i:064x}", 2, f"{i:064x}"] for i in range(300)])
    moved = [list(e) for e in entries]
    moved[7][2] = "ab" * 32  # the same size, another root: a conflict at author 7
    tree_a, tree_b = cp.frontier_tree(entries), cp.frontier_tree(moved)
    common = {"authors": 300, "events": 600, "state_root": "cd" * 32, "state_size": 1, "ts": 1, "frontier": [],
              "frontier_blob": "ef" * 32, "sig": "00" * 64}
    a = {**common, "frontier_root": tree_a.root.hex()}
    b = {**common, "frontier_root": tree_b.root.hex()}
    author = entries[7][0]
    leaves = {"a": cp.frontier_evidence(entries, author), "b": cp.frontier_evidence(moved, author)}
    assert cp.check_conflict(a, b, author, [], leaves) is None
    assert "agree" in cp.check_conflict(a, a, author, [], {"a": leaves["a"], "b": leaves["a"]})
    assert "needs the author's leaf" in cp.check_conflict(a, b, author, [], None)
    wrong = {**leaves, "b": {**leaves["b"], "index": 8}}
    assert "does not lead to the root" in cp.check_conflict(a, b, author, [], wrong)
    fake_absence = {"a": leaves["a"], "b": cp.frontier_evidence(moved[:7] + moved[8:], author)}
    assert cp.check_conflict(a, b, author, [], fake_absence).startswith("frontier evidence")


def test_a_frontier_blob_no_peer_serves_is_backed_off_not_asked_for_every_round(network):
    """Issue 14: a missing detached frontier costs the witness loop one bounded fetch per
    backoff (doubling to FETCH_BACKOFF_MAX), and judging resumes once the blob arrives."""
    a, b = network
    made = a.cps.make()
    blob = made.body["frontier_blob"]
    b.take(a)
    assert f"cosigned {made.hash}" not in b.cps.tick()  # it waits for the blob
    t0 = 1_000_000.0
    assert b.cps.wanted_frontiers(now=t0) == [blob]
    delays = [b.cps.frontier_missed(blob, now=t0) for _ in range(12)]
    assert delays[:4] == [FETCH_BACKOFF, 2 * FETCH_BACKOFF, 4 * FETCH_BACKOFF, 8 * FETCH_BACKOFF]
    assert delays[-1] == FETCH_BACKOFF_MAX and max(delays) == FETCH_BACKOFF_MAX
    assert b.cps.wanted_frontiers(now=t0 + FETCH_BACKOFF_MAX - 1) == []  # not due: the loop skips it
    b.cps.tick()  # still waiting: the backoff is kept, not reset
    assert b.cps.wanted_frontiers(now=t0 + 1) == []
    assert b.cps.wanted_frontiers(now=t0 + FETCH_BACKOFF_MAX) == [blob]
    assert b.cps.put_frontier(blob, a.ledger.store.get_blob(blob))
    assert b.cps.wanted_frontiers(now=t0 + 10 * FETCH_BACKOFF_MAX) == []
    assert f"cosigned {made.hash}" in b.cps.tick()
