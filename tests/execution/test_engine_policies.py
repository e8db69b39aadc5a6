"""The engine's pure policies (execution/*_policy.py, results.py, submission.py), without asyncio,
a ledger or a database: events in, decisions out, and memory that changes only when a decision's
event is committed (its ``on_commit``), never when it is refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger_net.core.task import Task
from ledger_net.errors import CreditError, TaskError
from ledger_net.execution import owner_policy, results, submission, worker_policy
from ledger_net.execution.decisions import Decisions, Emit, Fetch, Notify, Run
from ledger_net.execution.owner import Attempt, Bid, ChunkWork, OwnedTask
from ledger_net.market.routing import Bid as RouterBid

ME, BOB, CAROL = "me" * 32, "b0" * 32, "c0" * 32


@dataclass
class Ev:
    """What a policy reads of a committed event."""

    type: str
    body: dict[str, Any]
    author: str = ME
    hash: str = "h"
    deps: tuple[str, ...] = ()


_count = iter(range(10**6))


def signed(emit: Emit) -> Ev:
    """The event the ledger would commit for ``emit`` (by this node), with a fresh hash."""
    return Ev(emit.type, emit.body, ME, f"ev{next(_count)}", emit.deps)


def commit(emits: list[Any]) -> list[Ev]:
    """Commit every Emit among ``emits`` as the loop would: on_commit with the signed event."""
    events = []
    for d in emits:
        if isinstance(d, Emit):
            event = signed(d)
            if d.on_commit is not None:
                d.on_commit(event)  # type: ignore[arg-type]
            events.append(event)
    return events


@dataclass
class View:
    """A fake of the owner's window on the world: escrow, who is frozen, a router that gives every
    chunk the cheapest bidders, and an answer that lists the accepted result hashes."""

    me: str = ME
    quote_window: float = 0.25
    escrows: dict[str, int] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    bidders: set[str] = field(default_factory=set)
    local: set[str] = field(default_factory=set)
    good_quotes: bool = True

    def is_open(self, task_id: str) -> bool:
        return task_id in self.escrows

    def escrow(self, task_id: str) -> int | None:
        return self.escrows.get(task_id)

    def rated(self, task_id: str, worker: str) -> bool:
        return False

    def expected_bidders(self) -> set[str]:
        return self.bidders | {self.me}

    def verify_quote(self, body: dict[str, Any]) -> bool:
        return self.good_quotes

    def router_bids(self, bids: list[Bid]) -> list[RouterBid]:
        return [RouterBid(b.worker, b.price, 500_000, 0, {"max_concurrent_tasks": 1}, b.quote_hash) for b in bids]

    def route(self, indexes: list[int], bids: list[RouterBid], requirements: dict[str, Any], *, replicas: int,
              current_load: dict[str, int], max_price: int) -> Mapping[int, list[str]]:
        ranked = [b.worker for b in sorted(bids, key=lambda b: (b.price, b.worker))]
        return {i: ranked[:replicas] for i in indexes}

    def no_offer_hint(self, task: OwnedTask) -> str:
        return ""

    def restore(self, event: Any) -> OwnedTask | None:
        return None

    def has_result(self, result_hash: str) -> bool:
        return result_hash in self.local

    def agree(self, task: OwnedTask, chunk: Any, a: Attempt, b: Attempt) -> bool:
        return a.result_hash == b.result_hash  # exact results: by hash (compute.compare has the float kinds)

    def answer(self, task: OwnedTask, accepted: dict[int, Attempt]) -> dict[str, Any]:
        return {"result": [accepted[c.index].result_hash for c in task.chunks], "result_hash": "ab" * 32}


def owned_task(chunks: int = 1, replicas: int = 1, quorum: int = 1, price_cap: int = 10) -> OwnedTask:
    task = OwnedTask("t", "map", {}, {}, 2, replicas, quorum, price_cap, 5.0,
                     [ChunkWork(i, {"i": i}, None) for i in range(chunks)], submitted="sub")
    return task


def running(view: View, task: OwnedTask, *bidders: str) -> owner_policy.OwnerState:
    """An owner state driving ``task``, with bids from ``bidders``, past its quote window."""
    state = owner_policy.OwnerState(ME)
    state.owned[task.task_id] = task
    view.escrows[task.task_id] = 100
    for n, worker in enumerate(bidders):
        task.bids[worker] = Bid(worker, 5 + n, f"q-{worker[:2]}", {})
    task.seen, task.quote_deadline = True, 0.0
    return state


def of_type(decisions: list[Any], type_: str) -> list[Emit]:
    return [d for d in decisions if isinstance(d, Emit) and d.type == type_]


# ---------------------------------------------------------------- owner: routing and memory
def test_assignments_exist_in_memory_only_once_committed() -> None:
    view, task = View(), owned_task(chunks=2)
    state = running(view, task, BOB)
    decided = owner_policy.look(state, view, now=1.0)
    assigned = of_type(decided, "task.assigned")
    assert [(e.body["chunk"], e.body["worker"], e.body["price"]) for e in assigned] == [(0, BOB, 5), (1, BOB, 5)]
    assert all(e.deps == ("sub", "q-b0") for e in assigned)
    assert task.state == "running" and all(not c.attempts for c in task.chunks)  # nothing signed yet
    events = commit(decided)
    assert [c.attempts[0].assignment for c in task.chunks] == [e.hash for e in events]
    assert task.chunks[0].attempts[0].deadline == 1.0 + 5.0 + owner_policy.REPORT_GRACE


def test_replicas_of_one_chunk_number_their_attempts_within_one_step() -> None:
    view, task = View(), owned_task(replicas=2, quorum=2)
    state = running(view, task, BOB, CAROL)
    assigned = of_type(owner_policy.look(state, view, now=1.0), "task.assigned")
    assert [(e.body["worker"], e.body["attempt"]) for e in assigned] == [(BOB, 0), (CAROL, 1)]


def test_a_refused_assignment_leaves_no_trace_and_is_decided_again() -> None:
    view, task = View(), owned_task()
    state = running(view, task, BOB)
    first = of_type(owner_policy.look(state, view, now=1.0), "task.assigned")  # the ledger refuses it
    assert len(first) == 1 and task.chunks[0].attempts == []
    state.next_scan = 0.0
    again = of_type(owner_policy.look(state, view, now=1.1), "task.assigned")
    assert [e.body["worker"] for e in again] == [BOB] and again[0].body["attempt"] == 0


def test_quote_window_waits_for_expected_bidders() -> None:
    view, task = View(bidders={BOB}), owned_task()
    state = owner_policy.OwnerState(ME)
    state.owned["t"] = task
    view.escrows["t"] = 100
    owner_policy.observe(state, view, Ev("task.quote", {"task_id": "t", "price": 3, "inputs": {}}, ME, "q1", ("sub",)))
    assert owner_policy.look(state, view, now=1.0) == []  # the window runs from the first look
    owner_policy.observe(state, view, Ev("task.quote", {"task_id": "t", "price": 2, "inputs": {}}, BOB, "q2", ("sub",)))
    state.dirty.add("t")
    decided = owner_policy.look(state, view, now=1.01)  # everyone expected has bid: no need to wait
    assert [e.body["worker"] for e in of_type(decided, "task.assigned")] == [BOB]


def test_a_quote_for_another_submission_or_with_a_wrong_price_is_no_bid() -> None:
    view, task = View(good_quotes=False), owned_task()
    state = owner_policy.OwnerState(ME)
    state.owned["t"] = task
    owner_policy.observe(state, view, Ev("task.quote", {"task_id": "t", "price": 1, "inputs": {}}, BOB, "q", ("sub",)))
    view.good_quotes = True
    owner_policy.observe(state, view, Ev("task.quote", {"task_id": "t", "price": 1, "inputs": {}}, CAROL, "q",
                                         ("other-owner's-sub",)))
    assert task.bids == {}


def test_no_offer_fails_the_task_after_the_grace_and_closes_it_only_once_signed() -> None:
    view, task = View(), owned_task()
    state = running(view, task)
    assert owner_policy.look(state, view, now=1.0) == []  # a little longer for slow peers
    state.next_scan = 0.0
    failed = of_type(owner_policy.look(state, view, now=10.0), "task.failed")
    assert failed[0].body == {"task_id": "t", "refund": 100, "reason": "no node able to run this task made an offer"}
    assert task.state == "quoting"
    commit(failed)
    assert task.state == "closed"


# ---------------------------------------------------------------- owner: results and completion
def reported(task: OwnedTask, worker: str, result_hash: str | None, ok: bool = True, chunk: int = 0) -> Attempt:
    a = Attempt(worker, f"asg-{worker[:2]}-{chunk}", 5, 100.0)
    task.chunks[chunk].attempts.append(a)
    task.state = "running"
    if ok or result_hash is None:
        owner_policy.record_result(task, Ev("task.chunk_result", {"task_id": "t", "chunk": chunk, "ok": ok,
                                                                 "result_hash": result_hash, "error": None if ok
                                                                 else "boom"}, worker, f"r-{worker[:2]}",
                                            (a.assignment,)))
    return a


def test_accepting_the_last_chunk_pays_praises_and_completes_in_one_step() -> None:
    view, task = View(), owned_task()
    state = running(view, task, BOB)
    reported(task, BOB, "aa" * 32)
    decided = owner_policy.look(state, view, now=1.0)
    assert [d.type for d in decided if isinstance(d, Emit)] == ["task.chunk_accepted", "reputation.feedback",
                                                               "task.completed"]
    accepted, praise, completed = decided
    assert accepted.body == {"task_id": "t", "chunk": 0, "worker": BOB, "payment": 5, "result_hash": "aa" * 32}
    assert accepted.deps == ("r-b0",) and praise.body["positive"] and praise.body["subject"] == BOB
    assert completed.body == {"task_id": "t", "refund": 95, "result": ["aa" * 32], "result_hash": "ab" * 32}
    assert not task.chunks[0].settled and task.chunks[0].accepted == [] and task.state == "running"
    commit(decided)
    assert task.chunks[0].settled and task.chunks[0].accepted[0].worker == BOB and task.state == "closed"


def test_a_refused_payment_leaves_the_chunk_unsettled() -> None:
    view, task = View(), owned_task()
    state = running(view, task, BOB)
    reported(task, BOB, "aa" * 32)
    decided = owner_policy.look(state, view, now=1.0)
    commit([d for d in decided if isinstance(d, Emit) and d.type == "reputation.feedback"])  # the rest refused
    assert not task.chunks[0].settled and task.chunks[0].accepted == [] and task.state == "running"
    state.next_scan = 0.0
    again = owner_policy.look(state, view, now=1.1)
    assert [d.type for d in of_type(again, "task.chunk_accepted")] == ["task.chunk_accepted"]


def test_a_late_replica_is_judged_failed_now_and_in_memory_once_rejected() -> None:
    view, task = View(), owned_task()
    state = running(view, task, BOB, CAROL)
    late = Attempt(BOB, "asg-b", 5, deadline=2.0)
    task.chunks[0].attempts.append(late)
    task.state = "running"
    assert owner_policy.look(state, view, now=1.0) == []  # not late yet
    state.next_scan = 0.0
    decided = owner_policy.look(state, view, now=3.0)
    rejected = of_type(decided, "task.chunk_rejected")
    assert rejected[0].body == {"task_id": "t", "chunk": 0, "worker": BOB, "reason": "timed out"}
    assert [e.body["subject"] for e in of_type(decided, "reputation.feedback")] == [BOB]
    assert [e.body["worker"] for e in of_type(decided, "task.assigned")] == [CAROL]  # the retry
    assert late.ok is None and BOB not in task.chunks[0].rejected_workers  # nothing signed yet
    commit(decided)
    assert (late.ok, late.error) == (False, "timed out") and BOB in task.chunks[0].rejected_workers
    assert [a.worker for a in task.chunks[0].attempts] == [BOB, CAROL]


def test_a_disagreeing_replica_loses_the_quorum_and_the_winners_are_paid() -> None:
    view, task = View(), owned_task(replicas=3, quorum=2)
    state = running(view, task, BOB, CAROL, "d0" * 32)
    reported(task, BOB, "aa" * 32)
    reported(task, CAROL, "aa" * 32)
    reported(task, "d0" * 32, "ff" * 32)
    decided = owner_policy.look(state, view, now=1.0)
    assert [(e.body["worker"], e.body["reason"]) for e in of_type(decided, "task.chunk_rejected")] == \
        [("d0" * 32, "result lost the quorum")]
    assert sorted(e.body["worker"] for e in of_type(decided, "task.chunk_accepted")) == [BOB, CAROL]
    assert of_type(decided, "task.completed")[0].body["refund"] == 100 - 5 - 5


def test_a_chunk_that_used_up_its_attempts_fails_the_task() -> None:
    view, task = View(), owned_task()
    task.max_attempts = 2
    state = running(view, task, BOB, CAROL)
    reported(task, BOB, None, ok=False)
    reported(task, CAROL, None, ok=False)
    failed = of_type(owner_policy.look(state, view, now=1.0), "task.failed")
    assert failed[0].body["reason"] == "chunk 0 failed after 2 attempts: boom"


def test_a_result_not_here_is_fetched_before_it_is_judged() -> None:
    view, task = View(), owned_task()
    state = running(view, task, BOB)
    task.chunks[0].attempts.append(Attempt(BOB, "asg", 5, 100.0))
    result = Ev("task.chunk_result", {"task_id": "t", "chunk": 0, "ok": True, "result_hash": "aa" * 32}, BOB, "r",
                ("asg",))
    assert owner_policy.observe(state, view, result) == [Fetch("t", result)]  # type: ignore[arg-type]
    assert task.chunks[0].attempts[0].ok is None
    view.local.add("aa" * 32)
    assert owner_policy.observe(state, view, result) == []
    assert task.chunks[0].attempts[0].ok is True and "t" in state.dirty and state.capacity_freed


def test_every_task_event_type_has_its_handler_and_a_close_notifies() -> None:
    assert set(owner_policy.HANDLERS) == {"task.submitted", "task.quote", "task.assigned", "task.chunk_result",
                                          "task.chunk_accepted", "task.chunk_rejected", "task.completed",
                                          "task.failed", "task.cancelled"}
    view, task = View(), owned_task()
    state = running(view, task)
    done = owner_policy.observe(state, view, Ev("task.cancelled", {"task_id": "t", "refund": 1, "reason": "x"}))
    assert done == [Notify("t", "cancelled")] and task.state == "closed"


def test_a_refund_leaves_the_payments_decided_in_the_same_step() -> None:
    view, out = View(escrows={"t": 50}), Decisions()
    out.add(Emit("task.chunk_accepted", {"task_id": "t", "chunk": 0, "worker": BOB, "payment": 7}))
    owner_policy.close(view, "t", "task.cancelled", {"reason": "x"}, out)
    owner_policy.close(view, "t", "task.failed", {"reason": "twice"}, out)  # a task closes once
    emits = out.emits()
    assert [e.type for e in emits] == ["task.chunk_accepted", "task.cancelled"]
    assert emits[1].body == {"task_id": "t", "refund": 43, "reason": "x"}


# ---------------------------------------------------------------- results
def test_verdicts_do_not_depend_on_report_order() -> None:
    for order in ([BOB, CAROL, "d0" * 32], ["d0" * 32, CAROL, BOB]):
        task = owned_task(replicas=3, quorum=2)
        hashes = {BOB: "aa" * 32, CAROL: "aa" * 32, "d0" * 32: "ff" * 32}
        for worker in order:
            reported(task, worker, hashes[worker])
        outcome, winners, losers = results.verdict(task.chunks[0], 2)
        assert outcome == "accept"
        assert sorted(r.worker for r in winners) == [BOB, CAROL] and [r.worker for r in losers] == ["d0" * 32]


def test_a_frozen_worker_is_judged_failed_while_out() -> None:
    task = owned_task()
    task.chunks[0].attempts.append(Attempt(BOB, "asg", 5, 100.0))
    assert results.verdict(task.chunks[0], 1, now=1.0, frozen={BOB})[0] == "retry"
    assert results.missing_attempts(task.chunks[0], 1, now=1.0, frozen={BOB}) == 1
    assert results.missing_attempts(task.chunks[0], 1, now=1.0) == 0


# ---------------------------------------------------------------- worker
def submitted(hash_: str = "s1", author: str = BOB) -> Ev:
    return Ev("task.submitted", {"task_id": "t", "task_type": "map", "max_price": 9, "spec": {}}, author, hash_)


def test_a_quote_is_remembered_only_once_committed() -> None:
    state = worker_policy.WorkerState(ME)
    worker_policy.observe(state, submitted())  # type: ignore[arg-type]
    worker_policy.observe(state, submitted())  # type: ignore[arg-type]  # seen twice: offered once
    quotes = worker_policy.quotes(state, is_open=lambda e: True, can_run=lambda e: True, price=lambda b: (4, {"x": 1}))
    assert [(e.type, e.body, e.deps) for e in quotes] == [("task.quote", {"task_id": "t", "price": 4,
                                                                          "inputs": {"x": 1}}, ("s1",))]
    assert state.quoted == set()  # refused: no trace
    commit(quotes)
    assert state.quoted == {"s1"}


def test_tasks_it_cannot_run_or_closed_ones_get_no_quote() -> None:
    state = worker_policy.WorkerState(ME)
    for h in ("s1", "s2", "s3"):
        worker_policy.observe(state, submitted(h))  # type: ignore[arg-type]
    quotes = worker_policy.quotes(state, is_open=lambda e: e.hash != "s1", can_run=lambda e: e.hash != "s2",
                                  price=lambda b: None)
    assert quotes == [] and state.quoted == {"s2", "s3"} and state.to_quote == []


def test_an_assignment_to_me_runs_once_and_is_done_once_its_report_commits() -> None:
    state = worker_policy.WorkerState(ME)
    asg = Ev("task.assigned", {"task_id": "t", "chunk": 0, "worker": ME, "price": 1, "attempt": 2}, BOB, "a1")
    assert worker_policy.observe(state, asg) == [Run(asg)]  # type: ignore[arg-type]
    assert worker_policy.observe(state, Ev("task.assigned", {"task_id": "t", "chunk": 0, "worker": CAROL,
                                                              "price": 1}, BOB, "a2")) == []  # type: ignore[arg-type]
    body = worker_policy.report_body(asg, True, {"cpu": 1}, {"result_hash": "aa", "result": 1}, None)  # type: ignore[arg-type]
    assert body == {"task_id": "t", "chunk": 0, "ok": True, "usage": {"cpu": 1}, "attempt": 2, "result_hash": "aa",
                    "result": 1}
    emit = worker_policy.report(state, asg, body)  # type: ignore[arg-type]
    assert emit.deps == ("a1",) and state.done == set()
    commit([emit])
    assert state.done == {"a1"} and worker_policy.observe(state, asg) == []  # type: ignore[arg-type]
    failed = worker_policy.report_body(asg, False, None, None, "x" * 5000)  # type: ignore[arg-type]
    assert failed["ok"] is False and failed["result_hash"] is None and len(failed["error"]) == 4000


def test_replayed_assignments_wait_for_the_loop_and_credits_are_collected() -> None:
    state = worker_policy.WorkerState(ME)
    asg = Ev("task.assigned", {"task_id": "t", "chunk": 0, "worker": ME, "price": 1}, BOB, "a1")
    assert worker_policy.observe(state, asg, replay=True) == [] and state.replayed_runs == [asg]  # type: ignore[arg-type]
    worker_policy.observe(state, Ev("task.chunk_accepted", {"task_id": "t", "chunk": 0, "worker": ME, "payment": 3},
                                    BOB, "p1"))  # type: ignore[arg-type]
    worker_policy.observe(state, Ev("credit.transfer", {"to": ME, "amount": 3}, BOB, "c1"))  # type: ignore[arg-type]
    worker_policy.observe(state, Ev("credit.transfer", {"to": ME, "amount": 3}, ME, "c2"))  # type: ignore[arg-type]
    got = worker_policy.receipts(state, open_to_me={"p1"})
    assert [(e.body, e.deps) for e in got] == [({"source": "p1"}, ("p1",))] and state.to_receive == []


# ---------------------------------------------------------------- submission
class Blobs:
    """Enough of a blob store for planning small tasks (nothing big enough to be stored)."""

    def __init__(self) -> None:
        self.kept: dict[str, Any] = {}
        self.store = self

    def put_new_blob(self, data: Any) -> str:
        raise AssertionError("small tasks store no arrays")

    def put_many(self, blobs: Mapping[str, Any], *, trusted: bool = False) -> None:
        self.kept.update(blobs)

    def put(self, data: Any) -> str:
        raise AssertionError("small chunks travel inline")


def test_a_submission_is_planned_and_remembered_only_once_committed() -> None:
    task = Task(None, "me", "map", {"timeout_seconds": 7}, {"data": list(range(10)), "operation": "square",
                                                             "chunk_size": 4, "max_price": 0.5})
    funds = submission.Funds(decimals=6, spendable=10**6, task_ids=frozenset())
    planned = submission.prepare(task, funds, Blobs())  # type: ignore[arg-type]
    b = planned.body
    assert (b["task_type"], b["chunks"], b["escrow"], b["max_price"], b["timeout_ms"]) == ("map", 3, 500_000,
                                                                                           166_666, 7000)
    assert (b["replicas"], b["quorum"]) == (1, 1) and planned.refusal is None
    owned: dict[str, OwnedTask] = {}
    planned.on_commit(Ev("task.submitted", b, ME, "sub1"), owned, 0.25)  # type: ignore[arg-type]
    assert owned[task.task_id].submitted == "sub1" and len(owned[task.task_id].chunks) == 3


def test_a_submission_beyond_the_funds_or_twice_is_refused() -> None:
    task = Task(None, "me", "map", {}, {"data": [1, 2], "operation": "square", "max_price": 2.0})
    with pytest.raises(CreditError, match="insufficient credits"):
        submission.prepare(task, submission.Funds(6, 10**6, frozenset()), Blobs())  # type: ignore[arg-type]
    with pytest.raises(TaskError, match="already submitted"):
        submission.prepare(task, submission.Funds(6, 10**7, frozenset({task.task_id})), Blobs())  # type: ignore[arg-type]
    bad = Task(None, "me", "map", {}, {"data": [1], "operation": "square", "replicas": 2, "quorum": 3})
    with pytest.raises(TaskError, match="quorum must be between 1 and replicas"):
        submission.prepare(bad, submission.Funds(6, 10**7, frozenset()), Blobs())  # type: ignore[arg-type]
