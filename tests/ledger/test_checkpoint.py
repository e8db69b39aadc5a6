"""Checkpoints (issue 14 items 2-3): the state root is a pure function of the frontier
(across nodes and delivery orders), witnesses cosign only what they verified, and two
inconsistent checkpoints of one signer freeze it like a fork."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from ledger_net import light
from ledger_net.core.checkpoints import COSIGN_MARK, CheckpointService
from ledger_net.errors import NodeError, ProofError
from ledger_net.ledger import checkpoint as cp
from ledger_net.ledger.chain import Ledger, RuleViolation
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.merkle_verify import implied_old_root
from ledger_net.ledger.tables import cosignatures
from ledger_net.projections.runner import ProjectionRunner

ALICE = Identity.from_seed(bytes([11]) * 32)
BOB = Identity.from_seed(bytes([12]) * 32)
CAROL = Identity.from_seed(bytes([13]) * 32)


def events_of(led: Ledger) -> list[Event]:
    return [Event.from_wire(r.raw, r.sig) for r in led.stored()]


class Books:
    """A node in memory: ledger, projections, checkpoint service."""

    def __init__(self, identity: Identity | None) -> None:
        self.ledger = Ledger.open("sqlite://", identity)
        self.runner = ProjectionRunner(self.ledger)
        self.cps = CheckpointService(self.ledger, self.runner)

    def take(self, other: Books) -> None:
        self.ledger.ingest(events_of(other.ledger))

    def close(self) -> None:
        self.ledger.close()


def _receive_all(books: Books) -> None:
    led = books.ledger
    for source, _ in led.state.open_credits_to(led.node_id):
        led.append("credit.received", {"source": source}, deps=[source])


@pytest.fixture
def trio():
    """alice (issuer) pays bob and carol; bob pays carol; everyone holds everything."""
    a, b, c = Books(ALICE), Books(BOB), Books(CAROL)
    a.ledger.create_network("cp", issuers=[ALICE.node_id])
    a.ledger.append("credit.minted", {"to": ALICE.node_id, "amount": 1000, "reason": "seed"})
    a.ledger.append("credit.transfer", {"to": BOB.node_id, "amount": 300})
    a.ledger.append("credit.transfer", {"to": CAROL.node_id, "amount": 200})
    b.take(a)
    c.take(a)
    _receive_all(b)
    _receive_all(c)
    b.ledger.append("credit.transfer", {"to": CAROL.node_id, "amount": 50})
    for x in (a, b, c):
        for y in (a, b, c):
            if x is not y:
                x.take(y)
    yield a, b, c
    for x in (a, b, c):
        x.close()


def _sync(*nodes: Books) -> None:
    for x in nodes:
        for y in nodes:
            if x is not y:
                x.take(y)


def test_every_node_holding_a_frontier_computes_the_same_state_root(trio):
    a, b, c = trio
    roots = {x.cps.applied_frontier()[1].tree.root for x in trio}
    frontiers = {str(x.cps.applied_frontier()[0]) for x in trio}
    assert len(frontiers) == 1 and len(roots) == 1


def test_state_root_is_independent_of_delivery_order(trio):
    a, _, _ = trio
    events = events_of(a.ledger)
    want = a.cps.applied_frontier()
    rnd = random.Random(14)
    for _ in range(5):
        order = _causal_shuffle(events, rnd)
        fresh = Books(None)
        try:
            for e in order:
                fresh.ledger.ingest([e])
            got = fresh.cps.applied_frontier()
            assert got[0] == want[0] and got[1].tree.root == want[1].tree.root
        finally:
            fresh.close()


def _causal_shuffle(events: list[Event], rnd: random.Random) -> list[Event]:
    present = {e.hash for e in events}
    left, done, order = list(events), set(), []
    while left:
        ready = [e for e in left if all(d in done or d not in present for d in (*e.deps, e.prev) if d)
                 and (e.is_genesis or e.net in done)]
        pick = ready[rnd.randrange(len(ready))]
        left.remove(pick)
        done.add(pick.hash)
        order.append(pick)
    return order


def test_state_at_an_older_frontier_is_recomputed_by_folding_exactly_its_events(trio):
    a, b, c = trio
    checkpoint = a.cps.make()
    b.take(a)
    b.ledger.append("credit.transfer", {"to": ALICE.node_id, "amount": 1})  # b moves on
    old = b.cps.state_at(checkpoint.body["frontier"])
    assert old.tree.root.hex() == checkpoint.body["state_root"]
    assert b.cps.applied_frontier()[1].tree.root != old.tree.root


def test_witnesses_cosign_and_a_light_client_verifies_a_balance(trio):
    a, b, c = trio
    checkpoint = a.cps.make()
    _sync(a, b, c)
    assert b.cps.tick() == [f"cosigned {checkpoint.hash}"]
    assert c.cps.tick() == [f"cosigned {checkpoint.hash}"]
    _sync(a, b, c)
    for node in trio:  # any node serves the same proof
        proof = node.cps.balance_proof(CAROL.node_id, at=checkpoint.hash)
        assert proof["leaf"]["value"] == {"balance": 200, "escrow": 0, "incoming": 50, "vouchers": 0}
        verdict = light.verify_balance(proof, net=a.ledger.net, witnesses=[BOB.node_id, CAROL.node_id], threshold=2)
        assert verdict.ok, verdict
    assert not b.cps.tick()  # never twice


def test_a_witness_waits_for_a_frontier_it_does_not_hold_and_refuses_a_wrong_state_root(trio):
    a, b, c = trio
    news = c.ledger.append("credit.transfer", {"to": BOB.node_id, "amount": 5})
    a.take(c)
    checkpoint = a.cps.make()
    b.ledger.ingest([e for e in events_of(a.ledger) if e.author == ALICE.node_id])  # alice's chain, not carol's news
    assert b.ledger.event(checkpoint.hash) is not None and b.ledger.event(news.hash) is None
    assert b.cps.consider(checkpoint.hash).startswith("waiting: holds")
    assert b.cps.tick() == [] and not b.cps._cosigned(checkpoint.hash)
    b.take(c)
    assert b.cps.tick() == [f"cosigned {checkpoint.hash}"]
    # a checkpoint whose state root is not what the frontier folds to is refused
    frontier, state = a.cps.applied_frontier()
    wrong = cp.StateTree.build({"s/supply": {"minted": 1}})
    body = cp.make_body(net=a.ledger.net, signer=ALICE.node_id, sign=ALICE.sign, frontier=frontier, state=wrong,
                        ts=1)
    lie = a.ledger.append(cp.CHECKPOINT_SIGNED, body)
    c.take(a)
    assert c.cps.consider(lie.hash) == "refused: this node computes another state root"
    assert not c.cps._cosigned(lie.hash)


def test_cosignature_rules(trio):
    a, b, _ = trio
    checkpoint = a.cps.make()
    b.take(a)
    digest = cp.note_digest(cp.note_of(checkpoint.net, checkpoint.author, checkpoint.body))
    good = {"checkpoint": checkpoint.hash, "note": digest.hex(), "sig": BOB.sign(cp.cosign_message(digest)).hex()}
    with pytest.raises(RuleViolation, match="names its checkpoint in deps"):
        b.ledger.append(cp.CHECKPOINT_COSIGNED, good)
    with pytest.raises(RuleViolation, match="does not verify"):
        b.ledger.append(cp.CHECKPOINT_COSIGNED, dict(good, sig=ALICE.sign(cp.cosign_message(digest)).hex()),
                        deps=[checkpoint.hash])
    with pytest.raises(RuleViolation, match="note digest"):
        b.ledger.append(cp.CHECKPOINT_COSIGNED, dict(good, note="00" * 32), deps=[checkpoint.hash])
    with pytest.raises(RuleViolation, match="own checkpoint"):
        a.ledger.append(cp.CHECKPOINT_COSIGNED, dict(good, sig=ALICE.sign(cp.cosign_message(digest)).hex()),
                        deps=[checkpoint.hash])
    assert b.ledger.append(cp.CHECKPOINT_COSIGNED, good, deps=[checkpoint.hash])


def test_checkpoint_body_rules(trio):
    a, _, _ = trio
    frontier, state = a.cps.applied_frontier()
    body = cp.make_body(net=a.ledger.net, signer=ALICE.node_id, sign=ALICE.sign, frontier=frontier, state=state, ts=5)
    for bad, why in ((dict(body, events=body["events"] + 1), "add up"),
                     (dict(body, frontier=list(reversed(body["frontier"]))), "sorted"),
                     (dict(body, sig=BOB.sign(b"x").hex()), "note signature"),
                     (dict(body, frontier_root="ab" * 32), "frontier root")):
        with pytest.raises(RuleViolation, match=why):
            a.ledger.append(cp.CHECKPOINT_SIGNED, bad)


def _shrunk(books: Books, author: str, by: int) -> dict:
    """A checkpoint body of `books`' signer naming `author` `by` events shorter than it is."""
    frontier, state = books.cps.applied_frontier()
    out = []
    for a, s, r in frontier:
        if a == author:
            s -= by
            r = books.ledger.store.author_root(a, s).hex()
        out.append([a, s, r])
    identity = books.ledger.identity
    return cp.make_body(net=books.ledger.net, signer=identity.node_id, sign=identity.sign, frontier=out,
                        state=state, ts=7)


def test_a_frontier_that_shrank_is_caught_and_freezes_the_signer_everywhere(trio):
    a, b, c = trio
    first = a.cps.make()
    _sync(a, b, c)
    assert b.cps.tick() == [f"cosigned {first.hash}"]
    later = a.ledger.append(cp.CHECKPOINT_SIGNED, _shrunk(a, BOB.node_id, 1))
    c.take(a)
    assert c.cps.consider(later.hash) == "conflict"
    assert c.ledger.state.frozen[ALICE.node_id] == later.seq
    assert not c.cps._cosigned(later.hash)
    # the conflict travels like a fork proof: bob learns it from carol and freezes alice too
    b.take(a)
    b.take(c)
    assert b.ledger.state.frozen[ALICE.node_id] == later.seq
    assert b.cps.consider(later.hash).startswith("refused")


def test_a_root_that_is_not_an_extension_is_caught_with_a_consistency_path(trio):
    """alice's later checkpoint names bob's real chain, her earlier one a made-up root for
    bob at a smaller size: bob's real tree denies it, and the path is the evidence."""
    a, b, c = trio
    for _ in range(6):
        b.ledger.append("credit.transfer", {"to": ALICE.node_id, "amount": 1})
    a.take(b)
    c.take(b)
    frontier, state = a.cps.applied_frontier()
    size = dict((x, s) for x, s, _ in frontier)[BOB.node_id]
    fake = [[x, s - 3, "ee" * 32] if x == BOB.node_id else [x, s, r] for x, s, r in frontier]
    early = a.ledger.append(cp.CHECKPOINT_SIGNED, cp.make_body(net=a.ledger.net, signer=ALICE.node_id,
                                                                 sign=ALICE.sign, frontier=fake, state=state, ts=1))
    honest = a.cps.make()
    c.take(a)
    assert c.cps.consider(early.hash).startswith("refused")  # the fake root is not bob's
    assert c.cps.consider(honest.hash) == "conflict"
    conflict = [e for e in events_of(c.ledger) if e.type == cp.CHECKPOINT_CONFLICT][0]
    assert conflict.body["author"] == BOB.node_id and len(conflict.body["proof"]) > 0
    assert c.ledger.state.frozen[ALICE.node_id] == honest.seq
    assert size > 3
    # the path alone: it leads to bob's real root, and shows his root at size-3 is not "ee…"
    real = c.ledger.store.author_root(BOB.node_id, size)
    old = implied_old_root(size - 3, size, real, conflict.body["proof"])
    assert old == c.ledger.store.author_root(BOB.node_id, size - 3)
    with pytest.raises(ProofError):
        implied_old_root(size - 3, size, "ab" * 32, conflict.body["proof"])


def test_a_conflict_without_evidence_is_refused(trio):
    a, b, c = trio
    first = a.cps.make()
    second = a.cps.make()
    with pytest.raises(RuleViolation, match="checkpoint conflict"):
        c.take(a)
        c.ledger.report_conflict(first, second, BOB.node_id, [])


def test_split_view_two_checkpoints_at_one_seq_are_a_fork(trio):
    """alice signs two different checkpoints as the same event of her chain and shows one to
    bob, the other to carol: both witnesses may cosign what they saw, but as soon as bob and
    carol talk, the two signed events of one seq are a fork proof and alice is frozen."""
    a, b, c = trio
    twin = Books.__new__(Books)
    twin.ledger = Ledger.open("sqlite://", ALICE)
    twin.ledger.ingest(events_of(a.ledger))
    twin.runner = ProjectionRunner(twin.ledger)
    twin.cps = CheckpointService(twin.ledger, twin.runner)
    twin.ledger.append("credit.transfer", {"to": CAROL.node_id, "amount": 1})
    other = twin.cps.make()  # shown to carol
    one = a.cps.make()  # shown to bob
    b.take(a)
    c.take(twin)
    assert b.cps.consider(one.hash) == "cosigned"
    assert c.cps.consider(other.hash) == "cosigned"
    report = c.ledger.ingest(events_of(a.ledger))
    assert report.forks == [(ALICE.node_id, one.seq)]
    b.take(c)
    assert ALICE.node_id in b.ledger.state.frozen and ALICE.node_id in c.ledger.state.frozen
    assert b.ledger.state.frozen[ALICE.node_id] <= one.seq
    twin.close()


def test_pure_conflict_checks():
    body = {"frontier": [["aa" * 32, 4, "11" * 32], ["bb" * 32, 2, "22" * 32]]}
    assert cp.check_conflict(body, {"frontier": [["aa" * 32, 3, "11" * 32]]}, "aa" * 32, []) is None  # shrank
    assert cp.check_conflict(body, {"frontier": [["aa" * 32, 5, "33" * 32]]}, "bb" * 32, []) is None  # dropped
    assert cp.check_conflict(body, {"frontier": [["aa" * 32, 4, "33" * 32]]}, "aa" * 32, []) is None  # one size
    assert "agree" in cp.check_conflict(body, body, "aa" * 32, [])
    assert "does not name" in cp.check_conflict(body, body, "cc" * 32, [])
    assert "path" in cp.check_conflict(body, {"frontier": [["aa" * 32, 9, "33" * 32]]}, "aa" * 32, [])


def test_state_tree_leaves_are_the_canonical_bytes_light_clients_rebuild():
    """StateTree.build calls the encoder directly (fast path): its leaves must be exactly
    `state_leaf`'s canonical bytes, or no light client could check a node's proof."""
    rnd = random.Random(3)
    accounts = {f"{i:064x}": {"balance": rnd.randint(-2**63, 2**63 - 1), "escrow": rnd.randint(0, 10**12),
                              "incoming": 0, "vouchers": 1, "earned": 5} for i in range(50)}
    reputation = {f"{i:064x}": {"score_ppm": rnd.randint(0, 10**6), "positive": 1, "negative": 2,
                                "forked": rnd.random() < 0.5} for i in range(0, 50, 3)}
    entries = cp.state_entries(accounts, reputation, {"minted": 7})
    tree = cp.StateTree.build(entries)
    assert tree.tree.leaves == [cp.state_leaf(k, entries[k]) for k in sorted(entries)]
    assert all("earned" not in v for v in entries.values())
    with pytest.raises(ValueError, match="64 bits"):
        cp.state_entries({"ab" * 32: {"balance": 2**63}}, {}, {})


def test_cosignatures_come_from_the_stores_index_and_it_takes_in_only_the_new_ones(trio):
    """Issue 14: a checkpoint's cosigners are an indexed query (table cosignatures, filled up to
    the offset in meta), not a scan of every cosignature per process: a second service on the
    same books finds them without re-reading indexed events, and takes in later ones."""
    a, b, c = trio
    first = a.cps.make()
    _sync(a, b, c)
    assert b.cps.tick() == [f"cosigned {first.hash}"]
    a.take(b)
    assert {e.author for e in a.cps.cosignature_events(first.hash)} == {BOB.node_id}
    store = a.ledger.store
    mark = int(store.get_meta(COSIGN_MARK))
    assert mark == store.offset_of(next(e.hash for e in a.cps.checkpoints_cosigned_by(BOB.node_id)))
    with store.engine.begin() as conn:  # a row only the index holds: a rescan of the log would drop it
        conn.execute(cosignatures.update().values(witness="kept"))
    again = CheckpointService(a.ledger, a.runner)  # a restart: nothing in memory
    assert [e.author for e in again.cosignature_events(first.hash)] == [BOB.node_id]
    with store.engine.connect() as conn:
        assert conn.execute(select(cosignatures.c.witness)).scalars().all() == ["kept"]
    c.take(a)
    assert c.cps.tick() == [f"cosigned {first.hash}"]
    a.take(c)  # the listener marks the index stale; the next lookup takes in carol's cosignature
    assert {e.author for e in again.cosignature_events(first.hash)} == {BOB.node_id, CAROL.node_id}
    assert int(store.get_meta(COSIGN_MARK)) > mark
    assert again.cosigned(first)["cosignatures"] and not again.cosignature_events("00" * 32)


def test_a_witness_starting_takes_up_only_the_checkpoints_it_has_not_cosigned(trio):
    """What a service judges when it starts (one query over the cosignatures index), and the
    lookups that read one checkpoint, not all of them: latest, previous, a hash prefix."""
    a, b, _ = trio
    first = a.cps.make()
    b.take(a)
    assert b.cps.tick() == [f"cosigned {first.hash}"]
    a.ledger.append("credit.transfer", {"to": BOB.node_id, "amount": 1})
    second = a.cps.make()
    b.take(a)
    restarted = CheckpointService(b.ledger, b.runner)
    assert restarted._pending == [second.hash]
    assert restarted.latest(ALICE.node_id).hash == second.hash and restarted.latest().hash == second.hash
    assert restarted._previous(second).hash == first.hash and restarted._previous(first) is None
    assert restarted.resolve(second.hash[:10].upper()).hash == second.hash
    assert [e.hash for e in restarted.checkpoints(limit=1)] == [second.hash]
    for bad in ("zzzz", "ab%", first.hash[:3]):
        with pytest.raises(NodeError, match="names no checkpoint"):
            restarted.resolve(bad)
    assert restarted.tick() == [f"cosigned {second.hash}"]


def test_the_cosignatures_index_and_checkpoint_lookups_on_each_database(db_url):
    """The same queries on SQLite and PostgreSQL: a witness whose books are `db_url` cosigns,
    and a restarted service finds its cosignature, the checkpoint by a prefix, nothing pending."""
    a = Books(ALICE)
    b = Books.__new__(Books)
    b.ledger = Ledger.open(db_url, BOB)
    b.runner = ProjectionRunner(b.ledger)
    b.cps = CheckpointService(b.ledger, b.runner)
    try:
        a.ledger.create_network("pg", issuers=[ALICE.node_id])
        a.ledger.append("credit.minted", {"to": ALICE.node_id, "amount": 10, "reason": "seed"})
        made = a.cps.make()
        b.take(a)
        assert b.cps.tick() == [f"cosigned {made.hash}"]
        again = CheckpointService(b.ledger, b.runner)
        assert [e.author for e in again.cosignature_events(made.hash)] == [BOB.node_id]
        assert again.resolve(made.hash[:8]).hash == made.hash and again._pending == []
    finally:
        a.close()
        b.close()
