"""Projections on both backends: incremental == rebuild, reopen == before,
replay(until) == the state at that point, flush and checkpoints, convergence."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.projections import ProjectionRunner
from ledger_net.projections.tables import checkpoints

ALICE = Identity.from_seed(bytes([11]) * 32)  # issuer and task owner
BOB = Identity.from_seed(bytes([12]) * 32)  # worker
CAROL = Identity.from_seed(bytes([13]) * 32)


def events_of(ledger: Ledger) -> list[Event]:
    return [Event.from_wire(r.raw, r.sig) for r in ledger.stored()]


class World:
    """alice's ledger lives at the test's database; bob's in memory; events flow both ways."""

    def __init__(self, url: str, flush_every: int = 2000) -> None:
        self.url = url
        self.alice = Ledger.open(url, ALICE)
        self.runner = ProjectionRunner(self.alice, flush_every=flush_every)
        self.bob = Ledger.open("sqlite://", BOB)
        self.hashes: list[tuple[int, str]] = []  # (offset, state hash) after each step

    def record(self) -> None:
        self.hashes.append((self.alice.store.last_offset(), self.runner.state_hash()))

    def a(self, type_, body, deps=()):
        ev = self.alice.append(type_, body, deps)
        self.record()
        return ev

    def b(self, type_, body, deps=()):
        self.bob.ingest(events_of(self.alice))
        ev = self.bob.append(type_, body, deps)
        self.alice.ingest(events_of(self.bob))
        self.record()
        return ev

    def close(self) -> None:
        self.bob.close()
        self.alice.close()


def build(world: World) -> dict:
    w, bob_id = world, BOB.node_id
    w.alice.create_network("proj", issuers=[ALICE.node_id])
    w.record()
    w.a("node.joined", {"name": "alice", "url": "http://a", "capabilities": {"cpu": 2}})
    w.a("credit.minted", {"to": ALICE.node_id, "amount": 1000, "reason": "seed"})
    t = w.a("credit.transfer", {"to": bob_id, "amount": 100})
    w.b("node.joined", {"name": "bob", "node_type": "worker"})
    w.b("credit.received", {"source": t.hash}, [t.hash])
    w.a("task.submitted", {"task_id": "job", "task_type": "map", "escrow": 300, "max_price": 200,
                           "chunks": 2, "spec": {"f": "sq"}})
    asg = w.a("task.assigned", {"task_id": "job", "chunk": 0, "worker": bob_id, "price": 150})
    res = w.b("task.chunk_result", {"task_id": "job", "chunk": 0, "ok": True, "result_hash": "aa" * 32},
              [asg.hash])
    pay = w.a("task.chunk_accepted", {"task_id": "job", "chunk": 0, "worker": bob_id, "payment": 150},
              [res.hash])
    w.a("reputation.feedback", {"subject": bob_id, "positive": True, "quality_ppm": 900_000,
                                "weight_ppm": 1_000_000, "task_id": "job"})
    w.a("task.completed", {"task_id": "job", "refund": 150, "result": [1, 4]})
    v = w.a("credit.voucher_issued", {"name": "gift", "amount": 50})
    w.a("credit.burned", {"amount": 10, "reason": "fee"})
    return {"transfer": t, "payment": pay, "voucher": v}


@pytest.fixture
def world(db_url):
    w = World(db_url)
    yield w
    w.close()


def _conserved(runner: ProjectionRunner) -> None:
    tot = runner.balances.totals()
    assert tot["minted"] == tot["balance"] + tot["escrow"] + tot["incoming"] + tot["vouchers"] + tot["burnt"]


def test_projection_values(world):
    build(world)
    bal, tasks, rep, nodes = world.runner.balances, world.runner.tasks, world.runner.reputation, world.runner.nodes
    assert bal.balance(ALICE.node_id) == 1000 - 100 - 300 + 150 - 50 - 10
    assert bal.balance(BOB.node_id) == 100  # the 150 payment is incoming until bob receives it
    assert bal.accounts[BOB.node_id]["incoming"] == 150
    assert tasks.tasks["job"]["status"] == "completed" and tasks.result("job") == [1, 4]
    assert tasks.chunks[("job", 0)]["status"] == "accepted"
    assert rep.score(BOB.node_id) > 500_000
    assert nodes.describe(ALICE.node_id)["capabilities"] == {"cpu": 2}
    _conserved(world.runner)
    assert world.alice.state.conserved()


def test_incremental_equals_rebuild(world):
    build(world)
    before = world.runner.state_hash()
    per_projection = {p.name: p.state_hash() for p in world.runner.projections}
    world.runner.rebuild()
    assert world.runner.state_hash() == before
    assert {p.name: p.state_hash() for p in world.runner.projections} == per_projection
    # and a runner built from nothing on the same log agrees
    assert ProjectionRunner(world.alice, subscribe=False).state_hash() == before


def test_reopen_equals_before_and_keeps_folding(db_url):
    w = World(db_url)
    refs = build(w)
    w.runner.flush()
    before = w.runner.state_hash()
    bob_events = events_of(w.bob)
    w.close()
    again = Ledger.open(db_url, ALICE)
    try:
        runner = ProjectionRunner(again)
        assert runner.state_hash() == before
        assert runner.offset == again.store.last_offset()
        # continue after the reopen: bob receives the task payment (an open credit
        # that the reopened balances projection must still know about)
        bob = Ledger.open("sqlite://", BOB)
        bob.ingest(bob_events + events_of(again))
        rcv = bob.append("credit.received", {"source": refs["payment"].hash}, [refs["payment"].hash])
        again.ingest([rcv])
        assert runner.balances.balance(BOB.node_id) == 250
        assert runner.balances.accounts[BOB.node_id]["incoming"] == 0
        _conserved(runner)
        settled = again.append("credit.voucher_settled", {"voucher": refs["voucher"].hash, "to": None})
        assert settled.seq > 1 and runner.balances.accounts[ALICE.node_id]["vouchers"] == 0
        incremental = runner.state_hash()
        runner.rebuild()
        assert runner.state_hash() == incremental
        bob.close()
    finally:
        again.close()


def test_reopen_without_flush_catches_up_from_checkpoint(db_url):
    w = World(db_url, flush_every=10**9)
    w.alice.create_network("proj", issuers=[ALICE.node_id])
    w.a("credit.minted", {"to": ALICE.node_id, "amount": 10, "reason": "x"})
    w.runner.flush()
    flushed_at = w.alice.store.last_offset()
    w.a("credit.transfer", {"to": BOB.node_id, "amount": 3})
    w.a("credit.burned", {"amount": 2, "reason": "x"})
    before = w.runner.state_hash()
    with w.alice.store.engine.connect() as conn:
        saved = dict(conn.execute(select(checkpoints.c.name, checkpoints.c.offset)).all())
    assert set(saved.values()) == {flushed_at}  # nothing flushed since
    w.close()  # a "crash": the last two events never reached the tables
    again = Ledger.open(db_url, ALICE)
    try:
        runner = ProjectionRunner(again)
        assert runner.state_hash() == before
        assert runner.balances.balance(ALICE.node_id) == 5
    finally:
        again.close()


def test_flush_writes_checkpoints(world):
    build(world)
    world.runner.flush()
    last = world.alice.store.last_offset()
    with world.alice.store.engine.connect() as conn:
        rows = conn.execute(select(checkpoints)).mappings().all()
    assert {r["name"] for r in rows} == {"balances", "reputation", "tasks", "nodes"}
    assert all(r["offset"] == last for r in rows)
    hashes = {p.name: p.state_hash() for p in world.runner.projections}
    assert {r["name"]: r["state_hash"] for r in rows} == hashes


def test_replay_until_offset_and_hash_equals_state_then(world):
    build(world)
    runner = world.runner
    assert len({h for _, h in world.hashes}) > 5  # the state really moved
    for offset, expected in world.hashes:
        assert runner.state_hash(runner.replay(until=offset)) == expected, f"replay until {offset}"
    rows = {r.offset: r.hash for r in world.alice.stored()}
    offset, expected = world.hashes[len(world.hashes) // 2]
    assert runner.state_hash(runner.replay(until=rows[offset])) == expected
    assert runner.state_hash(runner.replay()) == runner.state_hash()
    # replay writes nothing: the live state is untouched
    assert runner.state_hash() == world.hashes[-1][1]


def test_replay_until_unknown_hash_is_an_error(world):
    build(world)
    from ledger_net.errors import LedgerError

    with pytest.raises(LedgerError):
        world.runner.replay(until="ee" * 32)


# ----------------------------------------------------------------- convergence
def _genesis_ledger(identity: Identity) -> Ledger:
    led = Ledger.open("sqlite://", identity)
    led.create_network("conv", issuers=[ALICE.node_id, BOB.node_id])
    return led


def _state_hash_after(events: list[Event]) -> str:
    led = Ledger.open("sqlite://")
    try:
        runner = ProjectionRunner(led)
        led.ingest(events)
        incremental = runner.state_hash()
        runner.rebuild()
        assert runner.state_hash() == incremental
        return incremental
    finally:
        led.close()


def test_same_task_id_by_two_owners_converges():
    """task ids are per owner in the rules; the tasks projection must not let the
    arrival order decide which owner's task survives under a shared id."""
    alice = _genesis_ledger(ALICE)
    bob = Ledger.open("sqlite://", BOB)
    bob.ingest(events_of(alice))
    spec = {"task_id": "same", "task_type": "map", "escrow": 0, "max_price": 0, "chunks": 1, "spec": {}}
    a = alice.append("task.submitted", spec)
    b = bob.append("task.submitted", dict(spec, task_type="range_reduce"))
    g = events_of(alice)[0]
    assert _state_hash_after([g, a, b]) == _state_hash_after([g, b, a])
    alice.close()
    bob.close()


def _causal_shuffle(events: list[Event], rnd: random.Random) -> list[Event]:
    """A random order of `events` in which every event comes after its prev and deps."""
    present = {e.hash for e in events}
    left, done, order = list(events), set(), []
    while left:
        ready = [e for e in left if all(d in done or d not in present for d in (*e.deps, e.prev) if d)]
        pick = ready[rnd.randrange(len(ready))]
        left.remove(pick)
        done.add(pick.hash)
        order.append(pick)
    return order


def _shared_id_world() -> dict:
    """alice and bob (both issuers) each submit task "same" and assign its chunk 0 to carol;
    carol reports both; alice pays and completes, bob rejects and cancels."""
    alice, bob, carol = _genesis_ledger(ALICE), Ledger.open("sqlite://", BOB), Ledger.open("sqlite://", CAROL)
    bob.ingest(events_of(alice))
    alice.append("credit.minted", {"to": ALICE.node_id, "amount": 500, "reason": "x"})
    bob.append("credit.minted", {"to": BOB.node_id, "amount": 500, "reason": "x"})
    spec = {"task_id": "same", "task_type": "map", "escrow": 100, "max_price": 50, "chunks": 2, "spec": {}}
    sa = alice.append("task.submitted", spec)
    sb = bob.append("task.submitted", dict(spec, task_type="range_reduce", escrow=60, max_price=30, chunks=3))
    aa = alice.append("task.assigned", {"task_id": "same", "chunk": 0, "worker": CAROL.node_id, "price": 40},
                      [sa.hash])
    ab = bob.append("task.assigned", {"task_id": "same", "chunk": 0, "worker": CAROL.node_id, "price": 20},
                    [sb.hash])
    carol.ingest(events_of(alice) + events_of(bob))
    quote = carol.append("task.quote", {"task_id": "same", "price": 10, "inputs": {}}, [sb.hash])
    ra = carol.append("task.chunk_result", {"task_id": "same", "chunk": 0, "ok": True, "result_hash": "aa" * 32},
                      [aa.hash])
    rb = carol.append("task.chunk_result", {"task_id": "same", "chunk": 0, "ok": False, "result_hash": None,
                                            "error": "boom"}, [ab.hash])
    alice.ingest(events_of(carol))
    bob.ingest(events_of(carol))
    alice.append("task.chunk_accepted", {"task_id": "same", "chunk": 0, "worker": CAROL.node_id, "payment": 40},
                 [ra.hash])
    alice.append("task.completed", {"task_id": "same", "refund": 60, "result": [1]})
    bob.append("task.chunk_rejected", {"task_id": "same", "chunk": 0, "worker": CAROL.node_id, "reason": "boom"},
               [rb.hash])
    bob.append("task.cancelled", {"task_id": "same", "reason": "enough", "refund": 60})
    everything = list({e.hash: e for e in events_of(alice) + events_of(bob) + events_of(carol)}.values())
    out = {"events": everything, "sa": sa, "sb": sb, "quote": quote, "ra": ra, "rb": rb}
    for led in (alice, bob, carol):
        led.close()
    return out


def test_shared_task_id_keeps_each_owners_task_apart_in_any_order():
    world = _shared_id_world()
    events, _g = world["events"], world["events"][0]
    rnd = random.Random(7)
    orders = [events] + [_causal_shuffle(events, rnd) for _ in range(6)]
    assert len({tuple(e.hash for e in o) for o in orders}) > 3  # really different orders
    assert len({_state_hash_after(o) for o in orders}) == 1
    led = Ledger.open("sqlite://")
    try:
        runner = ProjectionRunner(led)
        report = led.ingest(_causal_shuffle(events, rnd))
        assert report.invalid == {} and led.state.conserved()
        tasks = runner.tasks
        mine, his = tasks.task_of("same", ALICE.node_id), tasks.task_of("same", BOB.node_id)
        assert (mine["task_type"], mine["status"], mine["paid"], mine["chunks_done"]) == ("map", "completed", 40, 1)
        assert (his["task_type"], his["status"], his["paid"], his["chunks_failed"]) == (
            "range_reduce", "cancelled", 0, 1)
        assert tasks.chunks_of("same", ALICE.node_id)[0]["status"] == "accepted"
        assert tasks.chunks_of("same", ALICE.node_id)[0]["result_hash"] == "aa" * 32
        assert tasks.chunks_of("same", BOB.node_id)[0]["status"] == "rejected"
        assert len(tasks.chunks_of("same", BOB.node_id)) == 3
        # readers by id alone see one deterministic winner: the smallest submission hash
        winner = min((world["sa"], world["sb"]), key=lambda e: e.hash)
        assert tasks.tasks["same"] is tasks.task_of("same", winner.author)
        assert tasks.owners_of("same")[0] == winner.author
        assert {i for (tid, i) in tasks.chunks if tid == "same"} == set(range(tasks.tasks["same"]["chunks_total"]))
        assert tasks.chunks[("same", 0)] is tasks.chunks_of("same", winner.author)[0]
        assert tasks.progress("same", ALICE.node_id) == 1.0 and tasks.result("same", ALICE.node_id) == [1]
    finally:
        led.close()


def test_result_and_quote_count_only_for_the_task_they_name():
    """carol quotes on bob's submission and reports on bob's assignment only: alice's task
    of the same id (with chunk 0 assigned to carol too) stays as it was."""
    alice, bob, carol = _genesis_ledger(ALICE), Ledger.open("sqlite://", BOB), Ledger.open("sqlite://", CAROL)
    led = Ledger.open("sqlite://")
    try:
        runner = ProjectionRunner(led)
        tasks = runner.tasks
        bob.ingest(events_of(alice))
        spec = {"task_id": "same", "task_type": "map", "escrow": 0, "max_price": 0, "chunks": 1, "spec": {}}
        sa, sb = alice.append("task.submitted", spec), bob.append("task.submitted", spec)
        carol.ingest(events_of(alice) + events_of(bob))
        carol.append("task.quote", {"task_id": "same", "price": 0, "inputs": {}})  # names no submission
        carol.append("task.quote", {"task_id": "same", "price": 0, "inputs": {}}, [sb.hash])
        led.ingest(events_of(carol))
        assert tasks.task_of("same", ALICE.node_id)["status"] == "pending"
        assert tasks.task_of("same", BOB.node_id)["status"] == "quoted"
        alice.append("task.assigned", {"task_id": "same", "chunk": 0, "worker": CAROL.node_id, "price": 0}, [sa.hash])
        ab = bob.append("task.assigned", {"task_id": "same", "chunk": 0, "worker": CAROL.node_id, "price": 0})
        carol.ingest(events_of(alice) + events_of(bob))
        carol.append("task.chunk_result", {"task_id": "same", "chunk": 0, "ok": True, "result_hash": "bb" * 32},
                     [ab.hash])
        report = led.ingest(events_of(alice) + events_of(bob) + events_of(carol))
        assert report.invalid == {}
        assert tasks.chunks_of("same", ALICE.node_id)[0]["status"] == "assigned"
        assert tasks.chunks_of("same", BOB.node_id)[0]["status"] == "reported"
        assert tasks.chunks_of("same", BOB.node_id)[0]["result_hash"] == "bb" * 32
    finally:
        for ledger in (led, alice, bob, carol):
            ledger.close()


def test_shared_task_id_survives_flush_and_reopen(db_url):
    """Candidates, their chunks and the assignments are stored: after a reopen a result that
    names an assignment made before it still reaches the right owner's task."""
    world = _shared_id_world()
    events = world["events"]
    cut = events.index(world["ra"])
    led = Ledger.open(db_url)
    runner = ProjectionRunner(led)
    led.ingest(events[:cut])
    runner.flush()
    led.close()
    again = Ledger.open(db_url)
    try:
        runner = ProjectionRunner(again)
        tasks = runner.tasks
        assert set(tasks.owners_of("same")) == {ALICE.node_id, BOB.node_id}
        again.ingest(events[cut:])
        assert tasks.chunks_of("same", ALICE.node_id)[0]["status"] == "accepted"
        assert tasks.chunks_of("same", BOB.node_id)[0]["status"] == "rejected"
        assert runner.state_hash() == _state_hash_after(events)
        incremental = runner.state_hash()
        runner.rebuild()
        assert runner.state_hash() == incremental
    finally:
        again.close()


def test_zero_payment_praise_leaves_reputation_alone():
    """Reputation moves only through paid work: carol (not an issuer) pays dave 0 for a
    0-escrow task and praises him anyway; the praise is stored invalid, his score stays."""
    alice = _genesis_ledger(ALICE)
    carol = Ledger.open("sqlite://", CAROL)
    carol.ingest(events_of(alice))
    carol.append("task.submitted", {"task_id": "free", "task_type": "map", "escrow": 0, "max_price": 0,
                                    "chunks": 1, "spec": {}})
    carol.append("task.assigned", {"task_id": "free", "chunk": 0, "worker": BOB.node_id, "price": 0})
    carol.append("task.chunk_accepted", {"task_id": "free", "chunk": 0, "worker": BOB.node_id, "payment": 0})
    seq, head = carol.head()
    praise = Event.create(CAROL, net=carol.net, seq=seq + 1, prev=head, type="reputation.feedback",
                          body={"subject": BOB.node_id, "positive": True, "quality_ppm": 1_000_000,
                                "weight_ppm": 1_000_000, "task_id": "free"})
    led = Ledger.open("sqlite://")
    try:
        runner = ProjectionRunner(led)
        report = led.ingest(events_of(carol) + [praise])
        assert "paid the subject" in report.invalid[praise.hash]
        rep = runner.reputation
        assert rep.score(BOB.node_id) == 500_000 and BOB.node_id not in rep.subjects
    finally:
        led.close()
        carol.close()
        alice.close()


def test_fork_converges_whatever_the_arrival_order():
    """Peer 1 sees branch X (and the forker's next event) before branch Y; peer 2 sees Y
    first. Same set of events, so the same projected state."""
    alice = _genesis_ledger(ALICE)
    g = events_of(alice)[0]
    m = alice.append("credit.minted", {"to": ALICE.node_id, "amount": 100, "reason": "x"})
    x = alice.append("credit.transfer", {"to": BOB.node_id, "amount": 60})
    x2 = alice.append("node.updated", {"status": "after x"})
    y = Event.create(ALICE, net=g.hash, seq=3, prev=m.hash, type="credit.transfer",
                     body={"to": CAROL.node_id, "amount": 60}, ts=x.ts)
    bob = Ledger.open("sqlite://", BOB)
    bob.ingest([g, m, x])
    r = bob.append("credit.received", {"source": x.hash}, [x.hash])
    first = _state_hash_after([g, m, x, x2, r, y])
    second = _state_hash_after([g, m, y, x, x2, r])
    assert first == second
    alice.close()
    bob.close()


def test_rejection_concurrent_with_the_result_converges():
    """The owner rejects and then accepts bob's chunk without naming his result; the result
    may reach a peer before or after those verdicts."""
    alice = _genesis_ledger(ALICE)
    bob = Ledger.open("sqlite://", BOB)
    try:
        sub = alice.append("task.submitted", {"task_id": "t", "task_type": "map", "escrow": 0, "max_price": 0,
                                              "chunks": 1, "spec": {}})
        asg = alice.append("task.assigned", {"task_id": "t", "chunk": 0, "worker": BOB.node_id, "price": 0},
                           [sub.hash])
        bob.ingest(events_of(alice))
        res = bob.append("task.chunk_result", {"task_id": "t", "chunk": 0, "ok": True, "result_hash": "ab" * 32},
                         [asg.hash])
        rej = alice.append("task.chunk_rejected", {"task_id": "t", "chunk": 0, "worker": BOB.node_id,
                                                   "reason": "timed out"})
        acc = alice.append("task.chunk_accepted", {"task_id": "t", "chunk": 0, "worker": BOB.node_id, "payment": 0})
        head = events_of(alice)[:3]
        assert _state_hash_after(head + [rej, acc, res]) == _state_hash_after(head + [res, rej, acc])
    finally:
        alice.close()
        bob.close()


def test_a_rejection_and_a_concurrent_result_show_one_chunk_everywhere():
    """Bob's result and the owner's rejection of his (late) chunk, in either order: the chunk is
    rejected with the owner's reason, and still names the result bob reported."""
    alice = _genesis_ledger(ALICE)
    bob = Ledger.open("sqlite://", BOB)
    try:
        sub = alice.append("task.submitted", {"task_id": "t", "task_type": "map", "escrow": 0, "max_price": 0,
                                              "chunks": 1, "spec": {}})
        asg = alice.append("task.assigned", {"task_id": "t", "chunk": 0, "worker": BOB.node_id, "price": 0},
                           [sub.hash])
        bob.ingest(events_of(alice))
        res = bob.append("task.chunk_result", {"task_id": "t", "chunk": 0, "ok": True, "result_hash": "ab" * 32},
                         [asg.hash])
        rej = alice.append("task.chunk_rejected", {"task_id": "t", "chunk": 0, "worker": BOB.node_id,
                                                   "reason": "timed out"})
        head = events_of(alice)[:3]
        seen = []
        for order in ([rej, res], [res, rej]):
            led = Ledger.open("sqlite://")
            try:
                runner = ProjectionRunner(led)
                led.ingest(head + order)
                chunk = runner.tasks.chunks_of("t", ALICE.node_id)[0]
                seen.append((chunk["status"], chunk["error"], chunk["result_hash"], runner.state_hash()))
            finally:
                led.close()
        assert seen[0] == seen[1]
        assert seen[0][:3] == ("rejected", "timed out", "ab" * 32)
    finally:
        alice.close()
        bob.close()


def test_every_worker_of_every_chunk_is_listed():
    """With replicas a chunk has several workers; its row names only the latest, the task's
    workers name them all (get_task_status()["workers"] reads this)."""
    alice = _genesis_ledger(ALICE)
    try:
        runner = ProjectionRunner(alice)
        sub = alice.append("task.submitted", {"task_id": "t", "task_type": "map", "escrow": 0, "max_price": 0,
                                              "chunks": 2, "spec": {}, "replicas": 2, "quorum": 2})
        for chunk, worker in ((0, BOB), (0, CAROL), (1, ALICE)):
            alice.append("task.assigned", {"task_id": "t", "chunk": chunk, "worker": worker.node_id, "price": 0},
                         [sub.hash])
        tasks = runner.tasks
        assert tasks.chunks_of("t")[0]["worker"] == CAROL.node_id
        assert tasks.workers_of("t") == sorted([ALICE.node_id, BOB.node_id, CAROL.node_id])
        assert tasks.workers_of("t", BOB.node_id) == [] and tasks.workers_of("nope") == []
    finally:
        alice.close()
