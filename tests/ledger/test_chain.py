"""The chain: local appends, verified ingestion, causal delivery, forks, crash safety."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledger_net.errors import ChainError, EncodingError, LedgerError, PendingLimitError, SignatureError
from ledger_net.ledger import encoding
from ledger_net.ledger.chain import Ledger, RuleViolation
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity

ROOT = Path(__file__).resolve().parents[2]
ALICE = Identity.from_seed(bytes([1]) * 32)  # the issuer
BOB = Identity.from_seed(bytes([2]) * 32)
CAROL = Identity.from_seed(bytes([3]) * 32)
DAVE = Identity.from_seed(bytes([4]) * 32)


def events_of(ledger: Ledger) -> list[Event]:
    return [Event.from_wire(r.raw, r.sig) for r in ledger.stored()]


def sync(dst: Ledger, *srcs: Ledger):
    batch = []
    for src in srcs:
        batch.extend(events_of(src))
    return dst.ingest(batch)


@pytest.fixture
def ledgers():
    opened: list[Ledger] = []

    def make(identity: Identity | None = None, url: str = "sqlite://", **kw) -> Ledger:
        led = Ledger.open(url, identity, **kw)
        opened.append(led)
        return led

    yield make
    for led in opened:
        led.close()


@pytest.fixture
def alice(ledgers):
    led = ledgers(ALICE)
    led.create_network("test", issuers=[ALICE.node_id])
    led.append("credit.minted", {"to": ALICE.node_id, "amount": 100, "reason": "seed"})
    return led


def joined(ledgers, identity, *sources):
    led = ledgers(identity)
    sync(led, *sources)
    return led


# ----------------------------------------------------------------- appending
def test_create_network_and_append(alice):
    genesis = events_of(alice)[0]
    assert genesis.is_genesis and alice.net == genesis.hash
    assert alice.head() == (2, events_of(alice)[1].hash)
    assert alice.state.spendable(ALICE.node_id) == 100
    assert alice.state.conserved()
    rows = list(alice.stored())
    assert [r.offset for r in rows] == [1, 2] and all(r.valid for r in rows)


def test_overdraft_refused_and_nothing_stored(alice):
    count, head = alice.store.count(), alice.head()
    with pytest.raises(RuleViolation, match="insufficient balance"):
        alice.append("credit.transfer", {"to": BOB.node_id, "amount": 101})
    assert alice.store.count() == count and alice.head() == head
    assert alice.state.spendable(ALICE.node_id) == 100
    ev = alice.append("credit.transfer", {"to": BOB.node_id, "amount": 100})
    assert ev.seq == 3 and ev.prev == head[1]  # the refused seq was not burnt


def test_append_batch_is_all_or_nothing(alice):
    count, head = alice.store.count(), alice.head()
    with pytest.raises(RuleViolation):
        alice.append_batch([
            ("credit.transfer", {"to": BOB.node_id, "amount": 60}, ()),
            ("credit.transfer", {"to": CAROL.node_id, "amount": 60}, ()),  # 120 > 100
        ])
    assert alice.store.count() == count and alice.head() == head
    assert alice.state.in_transit == {} and alice.state.spendable(ALICE.node_id) == 100
    made = alice.append_batch([("credit.transfer", {"to": BOB.node_id, "amount": 60}, ()),
                               ("credit.burned", {"amount": 40, "reason": "fee"}, ())])
    assert [e.seq for e in made] == [3, 4] and made[1].prev == made[0].hash
    assert alice.state.supply()["burnt"] == 40 and alice.state.conserved()


def test_only_issuers_mint(alice, ledgers):
    bob = joined(ledgers, BOB, alice)
    with pytest.raises(RuleViolation, match="issuer"):
        bob.append("credit.minted", {"to": BOB.node_id, "amount": 5, "reason": "free money"})
    assert bob.store.count() == 2


def test_schema_error_on_append_stores_nothing(alice):
    with pytest.raises(LedgerError, match="amount"):
        alice.append("credit.transfer", {"to": BOB.node_id, "amount": 1.5})
    with pytest.raises(LedgerError):
        alice.append("credit.transfer", {"to": BOB.node_id})
    assert alice.store.count() == 2 and alice.head()[0] == 2


def test_append_with_unknown_dep_refused(alice):
    with pytest.raises(LedgerError, match="not in this ledger"):
        alice.append("credit.received", {"source": "ab" * 32}, deps=["ab" * 32])
    assert alice.store.count() == 2


def test_transfer_receive_cycle(alice, ledgers):
    t = alice.append("credit.transfer", {"to": BOB.node_id, "amount": 30})
    bob = joined(ledgers, BOB, alice)
    assert bob.state.spendable(BOB.node_id) == 0  # in transit until received
    assert bob.state.open_credits_to(BOB.node_id) == [(t.hash, 30)]
    with pytest.raises(RuleViolation, match="deps"):
        bob.append("credit.received", {"source": t.hash})  # source must be in deps
    bob.append("credit.received", {"source": t.hash}, deps=[t.hash])
    assert bob.state.spendable(BOB.node_id) == 30
    with pytest.raises(RuleViolation, match="open credit"):
        bob.append("credit.received", {"source": t.hash}, deps=[t.hash])  # no double receipt
    assert bob.state.conserved()


# ----------------------------------------------------------------- ingesting
def test_ingest_out_of_order_via_pending(alice, ledgers):
    t = alice.append("credit.transfer", {"to": BOB.node_id, "amount": 30})
    bob = joined(ledgers, BOB, alice)
    bob.append("credit.received", {"source": t.hash}, deps=[t.hash])
    everything = events_of(bob)  # bob holds alice's events and his own
    assert len(everything) == 4
    observer = ledgers()
    late = observer.ingest(list(reversed(everything[1:])))  # no genesis yet: all wait
    assert late.stored == [] and len(late.pending) == len(everything) - 1
    assert observer.store.count() == 0 and len(observer.pending) == len(everything) - 1
    report = observer.ingest([everything[0]])
    assert sorted(report.stored) == sorted(e.hash for e in everything)
    assert len(observer.pending) == 0 and report.invalid == {}
    assert observer.state.spendable(BOB.node_id) == 30
    # the local ingestion order is causal: every prev/dep has a smaller offset
    offset = {r.hash: r.offset for r in observer.stored()}
    for ev in everything:
        for needed in ((ev.prev,) if ev.prev else ()) + ev.deps:
            assert offset[needed] < offset[ev.hash]


def test_first_event_of_another_author_before_genesis_waits(alice, ledgers):
    """Delivery order must not matter: a seq-1 event with no deps that arrives (in the
    same batch) before the genesis it belongs to should wait, not refuse the batch."""
    bob = joined(ledgers, BOB, alice)
    j = bob.append("node.joined", {"name": "bob"})
    observer = ledgers()
    report = observer.ingest([j] + events_of(alice))
    assert j.hash in report.stored
    assert observer.store.count() == 3


def test_pending_limit(alice, ledgers):
    for i in range(4):
        alice.append("node.updated", {"status": f"s{i}"})
    evs = events_of(alice)
    small = ledgers(pending_limit=2)
    small.ingest(evs[:1])
    with pytest.raises(PendingLimitError, match="pending buffer is full"):
        small.ingest(list(reversed(evs[2:])))  # 4 events waiting for evs[1]
    assert small.store.count() == 1
    report = small.ingest(evs[1:])  # the causal past first: everything lands
    assert len(report.stored) == len(evs) - 1 and small.store.count() == len(evs)


def test_pending_limit_error_loses_no_waiting_event(alice, ledgers):
    """An event already waiting in the buffer must survive a batch that is refused with
    PendingLimitError, even if that batch contained (and so released) its missing past."""
    bob = joined(ledgers, BOB, alice)
    orphans = [bob.append("node.updated", {"status": f"b{i}"}) for i in range(4)][1:]  # bob's seq 1 is missing
    missing = alice.append("node.updated", {"status": "missing"})
    waiting = alice.append("node.updated", {"status": "waits"})
    node = ledgers(pending_limit=2)
    # bob has no stake on `node`: let strangers use the whole (tiny) buffer, so his orphans
    # overflow it instead of being dropped one by one by the strangers' quota
    node.pending.max_strangers = node.pending.stranger_per_author = 10**6
    node.ingest(events_of(alice)[:2])  # genesis and mint
    node.ingest([waiting])
    assert waiting.hash in node.pending
    with pytest.raises(PendingLimitError):
        node.ingest([missing] + orphans)  # releases `waiting`, then overflows on bob's orphans
    assert node.store.count() == 2  # the refused batch stored nothing
    report = node.ingest([missing])
    assert waiting.hash in report.stored or waiting.hash in node.pending, \
        "the waiting event vanished from the buffer without being stored"


def test_duplicates_are_a_no_op(alice, ledgers):
    observer = ledgers()
    first = sync(observer, alice)
    assert len(first.stored) == 2
    count, offset = observer.store.count(), observer.store.last_offset()
    again = sync(observer, alice)
    assert again.stored == [] and again.duplicates == 2 and again.pending == []
    assert observer.store.count() == count and observer.store.last_offset() == offset


def _flip_amount(ev: Event) -> Event:
    env = encoding.decode(ev.raw)
    env["body"]["amount"] += 1
    return Event.from_wire(encoding.canonical_bytes(env), ev.sig)


def test_tampered_batch_refused_whole(alice, ledgers):
    t1 = alice.append("credit.transfer", {"to": BOB.node_id, "amount": 10})
    t2 = alice.append("credit.transfer", {"to": BOB.node_id, "amount": 20})
    observer = ledgers()
    observer.ingest(events_of(alice)[:2])
    count, hash_before = observer.store.count(), observer.head(ALICE.node_id)
    with pytest.raises(SignatureError):
        observer.ingest([t1, _flip_amount(t2)])
    assert observer.store.count() == count and observer.head(ALICE.node_id) == hash_before
    assert t1.hash not in observer.known and len(observer.pending) == 0
    bad_sig = Event.from_wire(t2.raw, bytes([t2.sig[0] ^ 1]) + t2.sig[1:])
    with pytest.raises(SignatureError):
        observer.ingest([t1, bad_sig])
    assert observer.store.count() == count
    assert len(observer.ingest([t1, t2]).stored) == 2  # the honest batch still goes through


def test_non_canonical_bytes_never_reach_ingest(alice):
    ev = events_of(alice)[1]
    with pytest.raises(EncodingError):
        Event.from_wire(ev.raw.replace(b":", b": ", 1), ev.sig)


def test_wrong_network_refused(alice, ledgers):
    other = ledgers(ALICE)
    other.create_network("other")
    foreign = other.append("credit.minted", {"to": ALICE.node_id, "amount": 5, "reason": "x"})
    observer = ledgers()
    sync(observer, alice)
    count = observer.store.count()
    with pytest.raises(ChainError, match="network"):
        observer.ingest([foreign])
    with pytest.raises(ChainError, match="another network"):
        observer.ingest([events_of(other)[0]])  # a second genesis
    good = alice.append("node.updated", {"status": "x"})
    with pytest.raises(ChainError):
        observer.ingest([good, foreign])  # one foreign event refuses the whole batch
    assert observer.store.count() == count and good.hash not in observer.known


def test_ingest_skipping_a_seq_is_refused(alice, ledgers):
    evs = [alice.append("node.updated", {"status": str(i)}) for i in range(2)]
    # a forged link: seq 5 whose prev names seq 3's hash (known)
    forged = Event.create(ALICE, net=alice.net, seq=5, prev=evs[0].hash, type="node.updated",
                          body={"status": "x"}, ts=1)
    observer = ledgers()
    sync(observer, alice)
    with pytest.raises(ChainError):
        observer.ingest([forged])


# ----------------------------------------------------------------- task rules
# The owner is bob (not an issuer: an issuer's feedback always counts), funded by alice.
def _forge(ledger: Ledger, identity: Identity, type_: str, body: dict, deps=()) -> Event:
    """The next event of `identity`'s chain, signed without the local rule check: what a
    dishonest author can always publish. Peers must judge it themselves."""
    seq, head = ledger.head(identity.node_id)
    return Event.create(identity, net=ledger.net, seq=seq + 1, prev=head, type=type_, body=body, deps=deps)


@pytest.fixture
def bob(alice, ledgers):
    t = alice.append("credit.minted", {"to": BOB.node_id, "amount": 100, "reason": "owner"})
    led = joined(ledgers, BOB, alice)
    led.append("credit.received", {"source": t.hash}, deps=[t.hash])
    return led


def _task(owner: Ledger, task_id: str = "job", escrow: int = 60, max_price: int = 30, chunks: int = 2) -> Event:
    return owner.append("task.submitted", {"task_id": task_id, "task_type": "map", "escrow": escrow,
                                           "max_price": max_price, "chunks": chunks, "spec": {}})


def test_zero_payment_does_not_make_praise_count(bob, ledgers):
    """A 0-escrow task pays 0: that must not buy the owner a praise of a colluding worker."""
    _task(bob, "free", escrow=0, max_price=0, chunks=1)
    bob.append("task.assigned", {"task_id": "free", "chunk": 0, "worker": CAROL.node_id, "price": 0})
    bob.append("task.chunk_accepted", {"task_id": "free", "chunk": 0, "worker": CAROL.node_id, "payment": 0})
    assert ("free", CAROL.node_id) not in bob.state.account(BOB.node_id).paid
    praise = {"subject": CAROL.node_id, "positive": True, "quality_ppm": 1_000_000, "weight_ppm": 1_000_000,
              "task_id": "free"}
    with pytest.raises(RuleViolation, match="paid the subject"):
        bob.append("reputation.feedback", praise)
    # the same praise signed anyway is stored without effect on a peer
    forged = _forge(bob, BOB, "reputation.feedback", praise)
    peer = joined(ledgers, None, bob)
    report = peer.ingest([forged])
    assert "paid the subject" in report.invalid[forged.hash]
    assert ("free", CAROL.node_id) not in peer.state.account(BOB.node_id).rated
    # a complaint still counts: it needs an assignment, not a payment
    bob.append("reputation.feedback", dict(praise, positive=False, quality_ppm=0))


def test_nonzero_payment_makes_praise_count(bob):
    _task(bob)
    bob.append("task.assigned", {"task_id": "job", "chunk": 0, "worker": CAROL.node_id, "price": 1})
    bob.append("task.chunk_accepted", {"task_id": "job", "chunk": 0, "worker": CAROL.node_id, "payment": 1})
    bob.append("reputation.feedback", {"subject": CAROL.node_id, "positive": True, "quality_ppm": 1_000_000,
                                       "weight_ppm": 1_000_000, "task_id": "job"})
    assert ("job", CAROL.node_id) in bob.state.account(BOB.node_id).rated


def test_accept_and_reject_only_for_the_assigned_worker_of_that_chunk(bob, ledgers):
    _task(bob)
    bob.append("task.assigned", {"task_id": "job", "chunk": 0, "worker": CAROL.node_id, "price": 20})
    before = bob.state.supply()
    for body in ({"chunk": 0, "worker": DAVE.node_id},  # never assigned anything
                 {"chunk": 1, "worker": CAROL.node_id}):  # assigned another chunk of the task
        with pytest.raises(RuleViolation, match="was not assigned"):
            bob.append("task.chunk_accepted", {"task_id": "job", "payment": 20, **body})
        with pytest.raises(RuleViolation, match="was not assigned"):
            bob.append("task.chunk_rejected", {"task_id": "job", "reason": "x", **body})
    assert bob.state.supply() == before and bob.state.account(BOB.node_id).escrow == {"job": 60}
    # signed anyway: a peer stores it as invalid, moves no money and counts no payment
    forged = _forge(bob, BOB, "task.chunk_accepted",
                    {"task_id": "job", "chunk": 0, "worker": DAVE.node_id, "payment": 20})
    peer = joined(ledgers, None, bob)
    report = peer.ingest([forged])
    assert "was not assigned chunk 0" in report.invalid[forged.hash]
    assert peer.state.account(BOB.node_id).escrow == {"job": 60}
    assert peer.state.open_credits_to(DAVE.node_id) == [] and peer.state.conserved()
    assert ("job", DAVE.node_id) not in peer.state.account(BOB.node_id).paid
    # the assigned worker of that chunk is paid
    pay = bob.append("task.chunk_accepted", {"task_id": "job", "chunk": 0, "worker": CAROL.node_id, "payment": 20})
    assert bob.state.open_credits_to(CAROL.node_id) == [(pay.hash, 20)]


def test_assignment_of_another_owner_does_not_authorize_acceptance(alice, bob):
    """Two owners use the same task id: bob's assignment of his "job" to carol does not
    let alice pay carol from her own "job"."""
    _task(bob, escrow=40)
    bob.append("task.assigned", {"task_id": "job", "chunk": 0, "worker": CAROL.node_id, "price": 20})
    sync(alice, bob)
    _task(alice, escrow=40)
    with pytest.raises(RuleViolation, match="was not assigned"):
        alice.append("task.chunk_accepted", {"task_id": "job", "chunk": 0, "worker": CAROL.node_id, "payment": 20})


def test_result_only_from_the_assigned_worker(bob, ledgers):
    _task(bob)
    asg = bob.append("task.assigned", {"task_id": "job", "chunk": 0, "worker": CAROL.node_id, "price": 20})
    dave = joined(ledgers, DAVE, bob)
    result = {"task_id": "job", "chunk": 0, "ok": True, "result_hash": "cc" * 32}
    with pytest.raises(RuleViolation, match="no assignment"):
        dave.append("task.chunk_result", result, deps=[asg.hash])  # carol's assignment, not his
    carol = joined(ledgers, CAROL, bob)
    with pytest.raises(RuleViolation, match="no assignment"):
        carol.append("task.chunk_result", dict(result, chunk=1), deps=[asg.hash])  # another chunk
    with pytest.raises(RuleViolation, match="no assignment"):
        carol.append("task.chunk_result", result)  # the assignment is not named
    carol.append("task.chunk_result", result, deps=[asg.hash])


# ----------------------------------------------------------------- forks
def _fork_scenario(ledgers):
    """alice (issuer) mints 100, then equivocates at seq 3: T pays bob 60, T' pays carol 60.
    bob receives T and passes 60 on to dave before anyone sees the fork."""
    alice = ledgers(ALICE)
    genesis = alice.create_network("forks", issuers=[ALICE.node_id])
    mint = alice.append("credit.minted", {"to": ALICE.node_id, "amount": 100, "reason": "seed"})
    t = alice.append("credit.transfer", {"to": BOB.node_id, "amount": 60})
    t_prime = Event.create(ALICE, net=genesis.hash, seq=3, prev=mint.hash, type="credit.transfer",
                           body={"to": CAROL.node_id, "amount": 60}, ts=t.ts + 1)
    after = Event.create(ALICE, net=genesis.hash, seq=4, prev=t.hash, type="node.updated",
                         body={"status": "post-fork"}, ts=t.ts + 2)
    bob = joined(ledgers, BOB, alice)
    r = bob.append("credit.received", {"source": t.hash}, deps=[t.hash])
    onward = bob.append("credit.transfer", {"to": DAVE.node_id, "amount": 60})
    return alice, bob, t, t_prime, after, r, onward


def test_fork_proof_frozen_author_and_void_cascade(ledgers):
    alice, bob, t, t_prime, after, r, onward = _fork_scenario(ledgers)
    carol = ledgers(CAROL)
    sync(carol, alice, bob)
    assert carol.state.spendable(BOB.node_id) == 0 and carol.state.in_transit[onward.hash] == (DAVE.node_id, 60)
    resets = []
    carol.subscribe(lambda applied: None, lambda: resets.append(1))
    report = carol.ingest([t_prime, after])
    assert report.forks == [(ALICE.node_id, 3)]
    assert carol.state.frozen == {ALICE.node_id: 3}
    assert resets, "verdicts changed: reset listeners must hear it"
    proofs = carol.store.fork_proofs()
    assert len(proofs) == 1 and {proofs[0].hash_a, proofs[0].hash_b} == {t.hash, t_prime.hash}
    verdict = {row.hash: (row.valid, row.reason) for row in carol.stored()}
    assert verdict[t.hash][0] is False and "equivocated" in verdict[t.hash][1]
    assert verdict[r.hash][0] is False  # bob's receipt of the void transfer
    assert verdict[onward.hash][0] is False  # and what he paid on with it
    st = carol.state
    assert st.spendable(ALICE.node_id) == 100  # pre-fork history stands
    assert st.spendable(BOB.node_id) == 0 and st.open_credits_to(DAVE.node_id) == []
    assert st.open_credits_to(CAROL.node_id) == []  # the other branch does not count either
    assert st.conserved() and st.supply()["minted"] == 100
    # carol gossips the proof as an event of her own chain
    gossip = [e for e in events_of(carol) if e.type == "fork.proof"]
    assert len(gossip) == 1 and gossip[0].author == CAROL.node_id
    assert gossip[0].body["author"] == ALICE.node_id and gossip[0].body["seq"] == 3
    # the forker's later events are refused as void, whatever order they come in
    again = carol.ingest([after])
    assert again.stored == [] and carol.store.count() == len(verdict)


def test_fork_proof_event_freezes_author_on_a_second_node(ledgers):
    alice, bob, t, t_prime, after, r, onward = _fork_scenario(ledgers)
    carol = ledgers(CAROL)
    sync(carol, alice, bob)
    carol.ingest([t_prime])
    proof_event = [e for e in events_of(carol) if e.type == "fork.proof"][0]
    dave = ledgers(DAVE)
    sync(dave, alice, bob)  # dave only ever sees branch T
    assert dave.state.frozen == {} and dave.state.open_credits_to(DAVE.node_id) == [(onward.hash, 60)]
    report = dave.ingest([proof_event])
    assert report.forks == [(ALICE.node_id, 3)]
    assert dave.state.frozen == {ALICE.node_id: 3}
    assert dave.state.open_credits_to(DAVE.node_id) == []  # dave loses the forker's money
    assert dave.state.spendable(BOB.node_id) == 0 and dave.state.conserved()
    assert len(dave.store.fork_proofs()) == 1
    assert any(e.type == "fork.proof" and e.author == DAVE.node_id for e in events_of(dave))
    # a receipt dave might now try is refused locally
    with pytest.raises(RuleViolation):
        dave.append("credit.received", {"source": onward.hash}, deps=[onward.hash])


def test_bogus_fork_proof_changes_nothing(ledgers):
    alice, bob, t, *_ = _fork_scenario(ledgers)
    same = {"raw": t.raw.decode(), "sig": t.sig.hex()}
    # a proof naming the same event twice is not an equivocation
    ev = Event.create(CAROL, net=alice.net, seq=1, prev=None, type="fork.proof",
                      body={"author": ALICE.node_id, "seq": 3, "a": same, "b": same}, ts=1)
    observer = ledgers()
    sync(observer, alice, bob)
    report = observer.ingest([ev])
    assert report.forks == [] and ev.hash in report.invalid
    assert observer.state.frozen == {} and observer.store.fork_proofs() == []


def test_own_fork_proof_is_not_published_twice(ledgers):
    alice, bob, t, t_prime, *_ = _fork_scenario(ledgers)
    carol = ledgers(CAROL)
    sync(carol, alice, bob)
    carol.ingest([t_prime])
    carol.ingest([t_prime])  # a duplicate now
    assert len([e for e in events_of(carol) if e.type == "fork.proof"]) == 1


# ----------------------------------------------------------------- crash safety
def test_reopened_ledger_continues_its_chain(tmp_path, ledgers):
    url = f"sqlite:///{tmp_path}/alice.db"
    first = Ledger.open(url, ALICE)
    first.create_network("crash")
    m = first.append("credit.minted", {"to": ALICE.node_id, "amount": 10, "reason": "x"})
    first.close()
    again = ledgers(ALICE, url)
    assert again.head() == (2, m.hash) and again.state.spendable(ALICE.node_id) == 10
    nxt = again.append("credit.burned", {"amount": 1, "reason": "x"})
    assert nxt.seq == 3 and nxt.prev == m.hash
    peer = ledgers()
    report = sync(peer, again)
    assert report.forks == [] and peer.state.frozen == {} and peer.head(ALICE.node_id) == (3, nxt.hash)


def test_failed_commit_is_not_a_fork(tmp_path, ledgers, monkeypatch):
    """Crash between signing and storing: the signed event never left the node, so
    re-signing the same seq with other content must not produce two stored events."""
    url = f"sqlite:///{tmp_path}/alice.db"
    led = ledgers(ALICE, url)
    led.create_network("crash")
    led.append("credit.minted", {"to": ALICE.node_id, "amount": 10, "reason": "x"})
    seen: list = []
    led.subscribe(lambda applied: seen.extend(a.event for a in applied))

    def boom(*a, **k):
        raise OSError("disk gone")

    monkeypatch.setattr(led.store, "write", boom)
    with pytest.raises(OSError):
        led.append("credit.transfer", {"to": BOB.node_id, "amount": 5})
    monkeypatch.undo()
    assert seen == [] and led.head()[0] == 2 and led.store.count() == 2
    assert led.state.spendable(ALICE.node_id) == 10 and led.state.in_transit == {}
    other = led.append("credit.transfer", {"to": CAROL.node_id, "amount": 7})
    assert other.seq == 3 and seen == [other]
    reopened = ledgers(ALICE, url)
    assert reopened.head() == (3, other.hash)
    peer = ledgers()
    assert sync(peer, reopened).forks == []


def test_process_killed_after_commit_resumes_without_fork(tmp_path, ledgers):
    url = f"sqlite:///{tmp_path}/alice.db"
    script = textwrap.dedent(f"""
        import os
        from ledger_net.ledger import Ledger, Identity
        led = Ledger.open({url!r}, Identity.from_seed(bytes([1]) * 32))
        led.create_network("killed")
        for i in range(5):
            led.append("credit.minted", {{"to": led.node_id, "amount": 1, "reason": str(i)}})
        os._exit(0)  # no close(), no clean shutdown
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
    led = ledgers(ALICE, url)
    assert led.head()[0] == 6 and led.state.spendable(ALICE.node_id) == 5
    nxt = led.append("credit.burned", {"amount": 5, "reason": "x"})
    assert nxt.seq == 7
    peer = ledgers()
    report = sync(peer, led)
    assert report.forks == [] and len(report.stored) == 7 and peer.state.conserved()


def test_reopening_re_judges_stored_verdicts_under_the_current_rules(tmp_path):
    """A verdict stored by an older version of the rules is corrected on open, and the
    projections fold anew, so the node agrees with a fresh peer folding the same log."""
    from sqlalchemy import update

    from ledger_net.ledger.store import Store
    from ledger_net.ledger.tables import judge_snapshots
    from ledger_net.projections.runner import ProjectionRunner

    url = f"sqlite:///{tmp_path}/ledger.db"
    me, other = Identity.from_seed(bytes([3]) * 32), Identity.from_seed(bytes([4]) * 32)
    ledger = Ledger.open(url, me)
    runner = ProjectionRunner(ledger)
    ledger.create_network("rejudge")
    ledger.append("credit.minted", {"to": me.node_id, "amount": 100, "reason": "test"})
    transfer = ledger.append("credit.transfer", {"to": other.node_id, "amount": 10})
    runner.flush()
    good = runner.state_hash()
    ledger.close()

    store = Store.open(url)
    store.set_validity([(transfer.hash, False, "judged by an older version of the rules")])
    with store.engine.begin() as conn:  # that version's judge snapshot names its rules
        conn.execute(update(judge_snapshots).values(rules="an older version of the rules"))
    store.close()
    assert Store.open(url).get_event(transfer.hash).valid is False

    ledger = Ledger.open(url, me)
    assert ledger.verdicts_changed
    assert ledger.store.get_event(transfer.hash).valid and ledger.store.get_event(transfer.hash).reason is None
    assert ProjectionRunner(ledger).state_hash() == good
    ledger.close()
    again = Ledger.open(url, me)
    assert not again.verdicts_changed
    again.close()


def test_a_bogus_fork_proof_stays_without_effect_after_reopening(tmp_path, alice, ledgers):
    """Opening judges stored events exactly as ingesting did (the fork-proof check included):
    a proof that proves nothing must not turn valid, or freeze its subject, on restart."""
    url = f"sqlite:///{tmp_path}/peer.db"
    peer = ledgers(None, url)
    sync(peer, alice)
    mint = events_of(alice)[1]
    bob = joined(ledgers, BOB, alice)
    bogus = _forge(bob, BOB, "fork.proof", {"author": ALICE.node_id, "seq": mint.seq,
                                            "a": mint.to_json(), "b": mint.to_json()})
    sync(peer, bob)
    report = peer.ingest([bogus])
    assert "fork proof does not show" in report.invalid[bogus.hash]
    peer.close()
    reopened = ledgers(None, url)
    assert not reopened.verdicts_changed
    row = reopened.store.get_event(bogus.hash)
    assert not row.valid and "fork proof does not show" in row.reason
    assert ALICE.node_id not in reopened.state.frozen
