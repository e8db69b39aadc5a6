"""The owner's open-task index (owner_policy.OwnerState): which tasks a look takes up is kept as
events arrive, so a look costs what changed, not the number of tasks owned (issue 13)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from ledger_net.execution import owner_policy
from ledger_net.execution.owner import Bid, ChunkWork, OwnedTask
from ledger_net.market.routing import Bid as RouterBid
from tests.execution.test_engine_policies import BOB, ME, Ev, View, commit, of_type


@dataclass
class OneSlotView(View):
    """A router that gives a chunk to a worker only while it runs nothing (one slot each), and
    counts the questions it is asked and the ledger lookups of open tasks."""

    routed: int = 0
    open_asked: int = 0
    escrows: dict[str, int] = field(default_factory=dict)

    def is_open(self, task_id: str) -> bool:
        self.open_asked += 1
        return task_id in self.escrows

    def router_bids(self, bids: list[Bid]) -> list[RouterBid]:
        return [RouterBid(b.worker, b.price, 500_000, 0, {"max_concurrent_tasks": 1}, b.quote_hash) for b in bids]

    def route(self, indexes: list[int], bids: list[RouterBid], requirements: dict[str, Any], *, replicas: int,
              current_load: dict[str, int], max_price: int) -> Mapping[int, list[str]]:
        self.routed += 1
        free = [b.worker for b in bids if current_load.get(b.worker, 0) < 1]
        return {i: free[:1] for i in indexes[:1]} if free else {}


def task_named(task_id: str, created: float) -> OwnedTask:
    task = OwnedTask(task_id, "map", {}, {}, 2, 1, 1, 10, 5.0, [ChunkWork(0, {"i": 0}, None)], submitted="sub",
                     created=created)
    task.bids[BOB] = Bid(BOB, 5, "q-b", {})
    task.seen, task.quote_deadline = True, 0.0
    return task


def owner_of(view: OneSlotView, n: int) -> owner_policy.OwnerState:
    state = owner_policy.OwnerState(ME)
    for i in range(n):
        task = task_named(f"t{i}", float(i))
        state.owned[task.task_id] = task
        view.escrows[task.task_id] = 100
    return state


def report(state: owner_policy.OwnerState, view: OneSlotView, task_id: str) -> None:
    attempt = state.owned[task_id].chunks[0].attempts[0]
    view.local.add("aa" * 32)  # the result is here: judged at once, not fetched
    result = Ev("task.chunk_result", {"task_id": task_id, "chunk": 0, "ok": True, "result_hash": "aa" * 32}, BOB,
                f"r-{task_id}", (attempt.assignment,))
    assert owner_policy.observe(state, view, result) == []


def indexed(state: owner_policy.OwnerState, task_id: str) -> list[str]:
    """The indexes that still name ``task_id``."""
    places = {"owned": state.owned, "out": state.out, "quoting": state.quoting, "dirty": state.dirty,
              "blocked": state.blocked_on, "expired": state.expired}
    return [name for name, index in places.items() if task_id in index]


@pytest.mark.parametrize("closing", ["task.completed", "task.failed", "task.cancelled"])
def test_a_task_leaves_the_index_when_it_completes_fails_or_is_cancelled(closing: str) -> None:
    view = OneSlotView()
    state = owner_of(view, 2)
    commit(owner_policy.look(state, view, now=1.0))  # t0 runs on BOB; t1 waits for his slot
    assert indexed(state, "t0") == ["owned", "out"] and indexed(state, "t1") == ["owned", "blocked"]
    for task_id in ("t0", "t1"):
        owner_policy.observe(state, view, Ev(closing, {"task_id": task_id, "refund": 100, "reason": "x"}))
        assert indexed(state, task_id) == []
    assert state.blocked == {} and owner_policy.look(state, view, now=1.01) == []


def test_a_completed_task_leaves_the_index_through_the_whole_flow() -> None:
    view = OneSlotView()
    state = owner_of(view, 1)
    commit(owner_policy.look(state, view, now=1.0))
    report(state, view, "t0")
    decided = owner_policy.look(state, view, now=1.01)
    assert [e.type for e in of_type(decided, "task.completed")] == ["task.completed"]
    events = commit(decided)
    assert "out" not in indexed(state, "t0")  # its one attempt reported: no load of it is walked
    for event in events:
        owner_policy.observe(state, view, event)  # type: ignore[arg-type]
    assert indexed(state, "t0") == []


def test_a_freed_slot_wakes_the_oldest_blocked_task_only_and_a_look_asks_the_ledger_nothing() -> None:
    view = OneSlotView()
    state = owner_of(view, 200)
    decided = owner_policy.look(state, view, now=1.0)  # the first look is a sweep: every task, in order
    assert [e.body["task_id"] for e in of_type(decided, "task.assigned")] == ["t0"]
    assert view.open_asked == 200 and view.routed == 2  # t0 routed, t1 found BOB full, the rest queued
    commit(decided)
    assert list(state.blocked[state.blocked_on["t1"]])[:3] == ["t1", "t2", "t3"]
    for n in range(1, 4):  # each result frees BOB's slot: the next task in submission order gets it
        view.routed, view.open_asked = 0, 0
        report(state, view, f"t{n - 1}")
        decided = owner_policy.look(state, view, now=1.0 + n / 1000)
        assert [e.body["task_id"] for e in of_type(decided, "task.assigned")] == [f"t{n}"]
        assert [e.body["task_id"] for e in of_type(decided, "task.completed")] == [f"t{n - 1}"]
        assert view.routed <= 2 and view.open_asked == 0  # not one question per waiting task
        commit(decided)


def test_a_new_task_queues_behind_the_blocked_ones() -> None:
    view = OneSlotView()
    state = owner_of(view, 3)
    commit(owner_policy.look(state, view, now=1.0))
    late = task_named("late", 99.0)
    state.owned["late"], view.escrows["late"] = late, 100
    state.dirty.add("late")
    view.routed = 0
    assert of_type(owner_policy.look(state, view, now=1.01), "task.assigned") == []
    assert view.routed == 0 and list(state.blocked[state.blocked_on["late"]]) == ["t1", "t2", "late"]


def test_a_blocked_task_an_event_touched_is_looked_at_once_when_capacity_frees() -> None:
    """Its decisions are in memory only once committed: a second look in the same step would assign
    its chunk twice (seen as 11 results for 10 chunks in test_network_tasks)."""
    view = OneSlotView()
    state = owner_of(view, 2)
    commit(owner_policy.look(state, view, now=1.0))
    report(state, view, "t0")  # frees BOB's slot
    state.dirty.add("t1")  # and an event touched the blocked task too
    decided = owner_policy.look(state, view, now=1.01)
    assert [e.body["task_id"] for e in of_type(decided, "task.assigned")] == ["t1"]
    assert indexed(state, "t1") == ["owned"]  # assigned: no longer waiting (in "out" once committed)
