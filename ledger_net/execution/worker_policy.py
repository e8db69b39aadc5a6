"""The worker's policy: which tasks to quote on, which assignments to run, what to report,
and which credits to collect. ``(state, event) → decisions``, by a dispatch table on the
event's type (like ``ledger/rules.py``); no I/O: the loop prices, runs and signs.

Memory that only records what the log says (a submission to consider, an assignment already
answered) is noted when the event is observed; memory of the worker's own decisions (a quote
made, a chunk reported) changes only in the ``on_commit`` of the decision's event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..ledger.events import Event
from .decisions import Decision, Emit, Run


@dataclass
class WorkerState:
    me: str
    quoted: set[str] = field(default_factory=set)  # task.submitted hashes quoted on (or passed over)
    done: set[str] = field(default_factory=set)  # assignments to me already reported
    to_quote: list[Event] = field(default_factory=list)
    to_receive: list[str] = field(default_factory=list)  # events whose credits are mine to collect
    replayed_runs: list[Event] = field(default_factory=list)  # unreported assignments found by the replay


Handler = Callable[[WorkerState, Event, bool], list[Decision]]


def _submitted(state: WorkerState, event: Event, replay: bool) -> list[Decision]:
    if event.hash not in state.quoted:
        state.to_quote.append(event)
    return []


def _quote(state: WorkerState, event: Event, replay: bool) -> list[Decision]:
    if event.author == state.me:
        state.quoted.update(event.deps)
    return []


def _assigned(state: WorkerState, event: Event, replay: bool) -> list[Decision]:
    if event.body["worker"] != state.me or event.hash in state.done:
        return []
    if replay:
        state.replayed_runs.append(event)  # rerun once the loop runs
        return []
    return [Run(event)]


def _result(state: WorkerState, event: Event, replay: bool) -> list[Decision]:
    if event.author == state.me:
        state.done.update(event.deps)
    return []


def _accepted(state: WorkerState, event: Event, replay: bool) -> list[Decision]:
    b = event.body
    if b["worker"] == state.me and event.author != state.me and b["payment"]:
        state.to_receive.append(event.hash)
    return []


def _credit(state: WorkerState, event: Event, replay: bool) -> list[Decision]:
    """Credits sent to this node by another: collect them (``credit.received``)."""
    if event.body.get("to") == state.me and event.author != state.me:
        state.to_receive.append(event.hash)
    return []


HANDLERS: dict[str, Handler] = {
    "task.submitted": _submitted, "task.quote": _quote, "task.assigned": _assigned, "task.chunk_result": _result,
    "task.chunk_accepted": _accepted, "credit.transfer": _credit, "credit.minted": _credit,
    "credit.voucher_settled": _credit}


def observe(state: WorkerState, event: Event, replay: bool = False) -> list[Decision]:
    handler = HANDLERS.get(event.type)
    return handler(state, event, replay) if handler is not None else []


def quotes(state: WorkerState, *, is_open: Callable[[Event], bool], can_run: Callable[[Event], bool],
           price: Callable[[dict[str, Any]], tuple[int, dict[str, int]] | None]) -> list[Emit]:
    """Offers on the submissions waiting: on open tasks this node can run, at the price the
    pricing gives (None: not worth it). A submission passed over is not considered again."""
    events, state.to_quote = state.to_quote, []
    out: list[Emit] = []
    offered: set[str] = set()
    for event in events:
        if event.hash in state.quoted or event.hash in offered or not is_open(event):
            continue
        quote = price(event.body) if can_run(event) else None
        if quote is None:
            state.quoted.add(event.hash)  # passed over: an observation, not a decision
            continue
        offered.add(event.hash)
        out.append(Emit("task.quote", {"task_id": event.body["task_id"], "price": quote[0], "inputs": quote[1]},
                        (event.hash,), _quoted(state, event.hash)))
    return out


def _quoted(state: WorkerState, submitted: str) -> Callable[[Event], None]:
    def commit(_: Event) -> None:
        state.quoted.add(submitted)
    return commit


def receipts(state: WorkerState, open_to_me: set[str]) -> list[Emit]:
    """Collect the credits waiting for this node that are still open (``credit.received``)."""
    wanted, state.to_receive = state.to_receive, []
    return [Emit("credit.received", {"source": h}, (h,)) for h in dict.fromkeys(wanted) if h in open_to_me]


def report(state: WorkerState, assignment: Event, body: dict[str, Any]) -> Emit:
    """The worker's signed answer to an assignment; the assignment counts as answered once it
    is committed (a refused report leaves it unanswered)."""
    def commit(_: Event) -> None:
        state.done.add(assignment.hash)
    return Emit("task.chunk_result", body, (assignment.hash,), commit)


def report_body(assignment: Event, ok: bool, usage: Any, answer: dict[str, Any] | None,
                error: str | None) -> dict[str, Any]:
    """A `task.chunk_result` body: the result's body (``answer``) when it ran, else the error."""
    b = assignment.body
    body: dict[str, Any] = {"task_id": b["task_id"], "chunk": b["chunk"], "ok": ok, "usage": usage,
                            "attempt": b.get("attempt", 0)}
    if ok and answer is not None:
        body.update(answer)
    else:
        body.update(ok=False, result_hash=None, error=(error or "failed")[:4000])
    return body
