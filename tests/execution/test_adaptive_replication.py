"""Adaptive replication in the owner policy (issue 12 item 3), without asyncio or a ledger: a
``verification: quorum`` task of one replica is judged by ``compute.verdicts.judge``; a worker the
trust policy verifies gets a second replica, whose assignment carries the decision and the revealed
secret, and every verdict of that chunk carries it too, so the standings (and an auditor) re-derive
who was verified and why. Memory changes only when the replica's assignment commits."""

from __future__ import annotations

import hashlib
from typing import Any

from ledger_net.compute import checks, trust, verdicts
from ledger_net.compute.trust import Standing
from ledger_net.execution import owner_policy
from ledger_net.execution.decisions import Emit
from ledger_net.execution.owner import Attempt, Bid, ChunkWork, OwnedTask
from tests.execution.test_engine_policies import BOB, CAROL, ME, Ev, View, commit

DAVE, ERIN = "d0" * 32, "e0" * 32
CONFIG = {"verification": "quorum"}


class JudgingView(View):
    """The fake window with the owner's secret and the real judge (map_reduce has no check)."""

    def check_secret(self, label: str) -> bytes:
        return hashlib.sha256(b"owner key " + label.encode()).digest()

    def judge(self, task: OwnedTask, chunk: ChunkWork, attempt: Attempt, standing: Standing) -> verdicts.Judgement:
        secret = self.check_secret(attempt.check_label or "")
        return verdicts.judge(task.task_type, CONFIG, {}, None, attempt.result_hash or "", secret, standing,
                              own=attempt.worker == self.me)


def adaptive_task(chunks: int = 1) -> OwnedTask:
    task = OwnedTask("t", "map_reduce", CONFIG, {}, 2, 1, 1, 10, 5.0,
                     [ChunkWork(i, {"i": i}, None) for i in range(chunks)], submitted="sub")
    task.verification = checks.verification_spec("map_reduce", CONFIG)
    return task


def start(view: JudgingView, task: OwnedTask, *bidders: str) -> owner_policy.OwnerState:
    state = owner_policy.OwnerState(ME)
    state.owned[task.task_id] = task
    view.escrows[task.task_id] = 1000
    for n, worker in enumerate(bidders):
        task.bids[worker] = Bid(worker, 5 + n, f"q-{worker[:2]}", {})
    task.seen, task.quote_deadline = True, 0.0
    return state


def step(state: owner_policy.OwnerState, view: JudgingView, now: float) -> list[Ev]:
    """One look; every decision committed, and its event observed, as the engine would."""
    events = commit(owner_policy.look(state, view, now))
    for event in events:
        owner_policy.observe(state, view, event)  # type: ignore[arg-type]
    return events


def of(events: list[Ev], type_: str) -> list[Ev]:
    return [e for e in events if e.type == type_]


def report(state: owner_policy.OwnerState, view: JudgingView, assignment: Ev, result_hash: str) -> None:
    b = assignment.body
    view.local.add(result_hash)  # the result is here: judged at once, not fetched first
    owner_policy.observe(state, view, Ev("task.chunk_result", {"task_id": b["task_id"], "chunk": b["chunk"],  # type: ignore[arg-type]
                                                              "ok": True, "result_hash": result_hash},
                                         b["worker"], f"r-{b['worker'][:2]}-{b['chunk']}", (assignment.hash,)))


def emitted(out: list[Any], type_: str) -> list[Emit]:
    return [d for d in out if isinstance(d, Emit) and d.type == type_]


def test_adaptive_quorum_is_asked_by_name_and_a_default_quorum_stays_one_replica() -> None:
    assert checks.verification_spec("map_reduce", CONFIG) == {"mode": "quorum", "adaptive": True}
    assert checks.verification_spec("map_reduce", {}) == {"mode": "quorum"}
    task = adaptive_task()
    assert task.single_verified()
    task.verification = checks.verification_spec("map_reduce", {})
    assert not task.single_verified()


def _assign_first(view: JudgingView, state: owner_policy.OwnerState) -> Ev:
    out = owner_policy.look(state, view, 1.0)
    [first] = emitted(out, "task.assigned")
    assert first.body["worker"] == BOB and "check_commit" in first.body and "verification" not in first.body
    [event] = commit(out)
    owner_policy.observe(state, view, event)  # type: ignore[arg-type]
    return event


def test_a_new_worker_is_replicated_and_both_verdicts_say_why() -> None:
    view = JudgingView(bidders={BOB, CAROL})
    task = adaptive_task()
    state = start(view, task, BOB, CAROL)
    first = _assign_first(view, state)
    report(state, view, first, "aa" * 32)
    out = owner_policy.look(state, view, 2.0)
    assert not emitted(out, "task.chunk_accepted")  # on probation: not trusted alone
    [replica] = emitted(out, "task.assigned")
    record = replica.body["verification"]
    assert replica.body["worker"] == CAROL and replica.body["replica"] == 1
    assert record["decision"] == {"action": trust.REPLICATE, "rate_ppm": trust.PPM, "streak": 0, "lies": 0}
    assert checks.verify_reveal(first.body["check_commit"], record["secret"])  # the secret BOB's assignment hid
    assert task.chunks[0].replication is None  # not before the assignment commits
    [replica_event] = commit(out)
    owner_policy.observe(state, view, replica_event)  # type: ignore[arg-type]
    assert task.chunks[0].replication == record and task.quorum_of(task.chunks[0]) == 2
    report(state, view, replica_event, "aa" * 32)
    events = step(state, view, 3.0)
    accepted = of(events, "task.chunk_accepted")
    assert {e.body["worker"] for e in accepted} == {BOB, CAROL}
    assert all(e.body["verification"] == record for e in accepted)
    assert of(events, "task.completed")
    assert state.standings[BOB] == Standing(1, 0, 1) and state.standings[CAROL] == Standing(1, 0, 1)


def test_a_replica_that_disagrees_is_caught_and_then_passed_over() -> None:
    view = JudgingView(bidders={BOB, CAROL, DAVE, ERIN})
    task = adaptive_task()
    state = start(view, task, BOB, CAROL, DAVE, ERIN)
    first = _assign_first(view, state)
    report(state, view, first, "aa" * 32)
    [replica] = of(step(state, view, 2.0), "task.assigned")
    report(state, view, replica, "bb" * 32)  # disagrees: a third worker breaks the tie
    events = step(state, view, 3.0)
    assert not of(events, "task.chunk_accepted") and not of(events, "task.chunk_rejected")
    [tie_break] = of(events, "task.assigned")
    assert tie_break.body["worker"] not in (BOB, replica.body["worker"])
    assert "verification" not in tie_break.body and "check_commit" not in tie_break.body  # judged with the others
    report(state, view, tie_break, "aa" * 32)
    events = step(state, view, 4.0)
    liar = replica.body["worker"]
    [rejected] = of(events, "task.chunk_rejected")
    assert rejected.body["worker"] == liar and rejected.body["verification"] == replica.body["verification"]
    assert {e.body["worker"] for e in of(events, "task.chunk_accepted")} == {BOB, tie_break.body["worker"]}
    assert [e.body["subject"] for e in of(events, "reputation.feedback") if not e.body["positive"]] == [liar]
    assert state.standings[liar] == Standing(0, 1, 0)
    bids = [Bid(w, 5, "q", {}) for w in (BOB, CAROL, DAVE, ERIN)]
    assert liar not in {b.worker for b in owner_policy.prefer_trusted(bids, state.standings)}
    only = [b for b in bids if b.worker == liar]
    assert owner_policy.prefer_trusted(only, state.standings) == only  # nobody else bids: it may still work


def test_trusted_workers_are_replicated_exactly_when_the_coin_says_so() -> None:
    """At the floor rate, the chunks replicated are those whose committed secret's coin falls under
    it: the decision is a function of the standing and the secret alone."""
    view = JudgingView(bidders={BOB, CAROL})
    task = adaptive_task(chunks=60)
    state = start(view, task, BOB, CAROL)
    veteran = Standing(streak=500, lies=0, passes=500)
    state.standings[BOB] = state.standings[CAROL] = veteran
    assignments = of(step(state, view, 1.0), "task.assigned")
    for event in assignments:
        report(state, view, event, "aa" * 32)
    replicated = {e.body["chunk"] for e in of(step(state, view, 2.0), "task.assigned")}
    expected = set()
    for event in assignments:
        b = event.body
        secret = view.check_secret(owner_policy.check_label("t", b["chunk"], b["attempt"], b["worker"]))
        if trust.decide(veteran, secret, False).action == trust.REPLICATE:
            expected.add(b["chunk"])
    assert replicated == expected and 0 < len(expected) < 15  # about 5% of 60


def test_the_owners_own_result_is_not_replicated() -> None:
    view = JudgingView(bidders={CAROL})
    task = adaptive_task()
    state = start(view, task, ME, CAROL)  # the owner bids lowest and runs it itself
    [mine] = of(step(state, view, 1.0), "task.assigned")
    assert mine.body["worker"] == ME
    report(state, view, mine, "aa" * 32)
    events = step(state, view, 2.0)
    [accepted] = of(events, "task.chunk_accepted")
    assert accepted.body["verification"]["decision"]["action"] == trust.TRUST and not of(events, "task.assigned")


def test_a_replay_of_the_replica_assignment_restores_the_decision() -> None:
    view = JudgingView(bidders={BOB, CAROL})
    task = adaptive_task()
    state = start(view, task, BOB, CAROL)
    first = _assign_first(view, state)
    report(state, view, first, "aa" * 32)
    [replica] = [e for e in commit(owner_policy.look(state, view, 2.0)) if e.type == "task.assigned"]
    fresh = adaptive_task()
    again = start(view, fresh, BOB, CAROL)
    for event in (first, replica):
        owner_policy.observe(again, view, event, replay=True)  # type: ignore[arg-type]
    assert fresh.chunks[0].replication == replica.body["verification"] and fresh.quorum_of(fresh.chunks[0]) == 2


class Loop:
    """The engine's part the view asks for a thread: the work it was handed, run when the test says."""

    def __init__(self, ledger: Any, blobs: Any) -> None:
        self.me, self.ledger, self.blobs = ledger.node_id, ledger, blobs
        self.jobs: list[tuple[Any, Any, str]] = []

    def off_loop(self, work: Any, then: Any, task_id: str) -> None:
        self.jobs.append((work, then, task_id))


def test_a_check_runs_off_the_engines_loop_and_its_judgement_is_kept(tmp_path: Any) -> None:
    """Issue 12 item 6: the view hands a check to a thread (the engine's ``off_loop``) and says
    "not judged yet" (None) until it is done; a decision without a check is made at once."""
    from ledger_net.execution.blobs import BlobStore
    from ledger_net.execution.view import LedgerView
    from ledger_net.ledger.chain import Ledger
    from ledger_net.ledger.identity import Identity

    ledger = Ledger.open("sqlite://", Identity.from_seed(bytes([9]) * 32))
    try:
        loop = Loop(ledger, BlobStore(ledger.store))
        view = LedgerView(loop)  # type: ignore[arg-type]
        config = {"operation": "multiply", "verification": "check"}
        task = OwnedTask("t", "matrix_ops", config, {}, 2, 1, 1, 10, 5.0,
                         [ChunkWork(0, {"operation": "multiply", "a": [[1.0, 2.0]], "b": [[3.0], [4.0]]}, None)],
                         submitted="sub")
        task.verification = checks.verification_spec("matrix_ops", config)
        attempt = Attempt(BOB, "asg", 5, 0.0, result_hash="aa" * 32, ok=True, result={"rows": [[11.0]]},
                          check_label="t/0/0/b")
        chunk = task.chunks[0]
        assert view.judge(task, chunk, attempt, Standing()) is None  # a new worker: checked, in a thread
        assert view.judge(task, chunk, attempt, Standing()) is None and len(loop.jobs) == 1  # started once
        work, then, task_id = loop.jobs[0]
        assert task_id == "t"
        then(work())  # the thread's value, handed back on the loop
        judged = view.judge(task, chunk, attempt, Standing())
        assert judged is not None and judged.action == trust.CHECK and judged.passed is True
        moved = view.judge(task, chunk, attempt, Standing(streak=1, passes=1))  # another verdict came first
        assert moved is not None and moved.passed is True and len(loop.jobs) == 1  # the check is not run again
        assert moved.record["decision"]["streak"] == 1 and moved.record["check"] == judged.record["check"]
        task.config = {**config, "verification": "none"}
        task.verification = checks.verification_spec("matrix_ops", task.config)
        trusted = view.judge(task, chunk, attempt, Standing(streak=1))
        assert trusted is not None and trusted.action == trust.TRUST and len(loop.jobs) == 1  # no thread
    finally:
        ledger.close()
