"""The owner's policy: collect bids, route chunks, judge results (results.py), pay, reassign,
and close the task. ``(state, event) → decisions`` by a dispatch table on the event's type
(like ``ledger/rules.py``), and ``look(state, view, now) → decisions`` for the clock's part
(quote windows, deadlines). No I/O: what it must know of the ledger, the projections and the
blob store it asks an `OwnerView`; the loop signs what it decides.

Memory of the owner's own decisions changes only in an ``Emit``'s ``on_commit``: an attempt
exists once its assignment is signed, a chunk is settled once its payment is, a task is
closed once its closing event is. Within one step the policy counts what it has just decided
(load per worker, replicas per chunk, payments before a refund) itself.

Which tasks a look takes up is kept in indexes maintained as events arrive (``OwnerState``: tasks
with assignments out, tasks in their quote window, blocked tasks queued per routing question), so a
look costs what changed, not the number of tasks owned (issue 13: a burst of n tasks was O(n²)).

Over 400 lines on purpose: the observing table, those indexes and the acting steps (route,
advance, reassign, assign) share one ``OwnerState`` and are read together; the verdicts live in
results.py and the trust arithmetic in compute/trust.py already.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ..compute.checks import commitment
from ..compute.trust import CHECK, REPLICATE, Standing, caught, least_sure
from ..compute.verdicts import Judgement
from ..core.node import Capabilities
from ..errors import LedgerError, TaskError
from ..ledger.events import Event
from ..market.routing import Bid as RouterBid
from . import results
from .decisions import Decision, Decisions, Emit, Fetch, Notify
from .owner import Attempt, Bid, ChunkWork, OwnedTask

log = logging.getLogger(__name__)

TICK = 0.05
# Every SWEEP the owner looks at every task it owns (and asks the ledger whether each is still
# open): a safety net for what no event announces. Between sweeps it looks only at the tasks an
# event touched, those whose quote window or deadline may have passed (per TICK), and the blocked
# ones once capacity frees up, so a burst of n tasks costs O(n), not O(n) per look.
SWEEP = 1.0
# The owner waits this long beyond a chunk's timeout before it gives up on the worker: the
# worker's sandbox enforces the timeout itself and its report (with the precise reason, e.g.
# "cpu time limit exceeded") still has to travel; giving up at the same instant races it.
REPORT_GRACE = 2.0


class OwnerView(Protocol):
    """What the owner policy reads beyond its own memory (the ledger's state, projections, blobs)."""

    me: str

    @property
    def quote_window(self) -> float: ...
    @property
    def frozen(self) -> Container[str]: ...
    def is_open(self, task_id: str) -> bool: ...
    def escrow(self, task_id: str) -> int | None: ...
    def rated(self, task_id: str, worker: str) -> bool: ...
    def expected_bidders(self) -> set[str]: ...
    def verify_quote(self, body: dict[str, Any]) -> bool: ...
    def router_bids(self, bids: list[Bid]) -> list[RouterBid]: ...
    def route(self, indexes: list[int], bids: list[RouterBid], requirements: dict[str, Any], *, replicas: int,
              current_load: dict[str, int], max_price: int) -> Mapping[int, list[str]]: ...
    def no_offer_hint(self, task: OwnedTask) -> str: ...
    def restore(self, event: Event) -> OwnedTask | None: ...
    def has_result(self, result_hash: str) -> bool: ...
    def answer(self, task: OwnedTask, accepted: dict[int, Attempt]) -> dict[str, Any]: ...
    def agree(self, task: OwnedTask, chunk: ChunkWork, a: Attempt, b: Attempt) -> bool: ...
    def check_secret(self, label: str) -> bytes: ...
    def judge(self, task: OwnedTask, chunk: ChunkWork, attempt: Attempt,
              standing: Standing) -> Judgement | None: ...


@dataclass
class OwnerState:
    me: str
    owned: dict[str, OwnedTask] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # owned tasks an event touched since the last look
    # Owned tasks that found every usable worker full, by the routing question that found them so
    # (oldest first): when capacity frees up, each question's oldest task is looked at, and the next
    # only if that one got its workers, so a wake-up costs what it assigns, not the queue's length.
    blocked: dict[Any, OrderedDict[str, None]] = field(default_factory=dict)
    blocked_on: dict[str, Any] = field(default_factory=dict)
    waking: str | None = None  # the blocked task whose turn it is (it may route past the queue)
    looked: set[str] = field(default_factory=set)  # this look's tasks: none is looked at twice in one
    just_blocked: str | None = None
    capacity_freed: bool = False
    next_scan: float = 0.0  # the next sweep over every owned task
    next_tick: float = 0.0  # the next look at the quoting tasks and deadlines
    # The open-task index, kept as events arrive: tasks with assignments out (their load and deadlines
    # are all a look must walk), and tasks still in their quote window. A task leaves every index
    # when it completes, fails or is cancelled (``forget``).
    out: dict[str, None] = field(default_factory=dict)
    quoting: dict[str, None] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)  # tasks with an attempt past its deadline (this look)
    # Per look: open load per worker, and routing questions that found every worker full.
    tick_load: dict[str, int] | None = None
    tick_full: set[tuple[Any, ...]] = field(default_factory=set)
    # Each worker's standing from this owner's verdicts that verified it (compute.trust): derived from
    # events, live and on replay alike, so the adaptive policy's decisions can be audited.
    standings: dict[str, Standing] = field(default_factory=dict)
    # Standings this look's verdicts moved, not yet committed (results.settle): cleared every look.
    look_standings: dict[str, Standing] = field(default_factory=dict)

    def touch(self, task_id: str, frees_capacity: bool = False) -> None:
        if task_id in self.owned:
            self.dirty.add(task_id)
        if frees_capacity:
            self.capacity_freed = True

    def forget(self, task_id: str) -> None:
        """A closed task leaves the owner's memory and every index: the ledger keeps its story."""
        self.owned.pop(task_id, None)
        for index in (self.out, self.quoting):
            index.pop(task_id, None)
        self.dirty.discard(task_id)
        self.expired.discard(task_id)
        self.unblock(task_id)

    def block(self, task_id: str, question: Any) -> None:
        """``task_id`` waits for capacity on ``question``; a task blocked again keeps its turn."""
        old = self.blocked_on.get(task_id)
        if old is not None and old != question:
            self.unblock(task_id)
        group = self.blocked.setdefault(question, OrderedDict())
        if task_id not in group:
            group[task_id] = None
        self.blocked_on[task_id] = question
        self.just_blocked = task_id

    def unblock(self, task_id: str) -> None:
        question = self.blocked_on.pop(task_id, None)
        group = self.blocked.get(question)
        if group is not None:
            group.pop(task_id, None)
            if not group:
                del self.blocked[question]


# ---------------------------------------------------------------- observing
Handler = Callable[[OwnerState, OwnerView, Event, bool], list[Decision]]
FREES_CAPACITY = frozenset({"task.chunk_result", "task.completed", "task.failed", "task.cancelled"})
# The owner's own events whose change to its memory their ``on_commit`` made, and whose consequences
# the look that decided them decided too (the replica's wait; the completion after the last payment):
# seeing them again changes nothing, so they do not make their task looked at again.
DECIDED_AT_COMMIT = frozenset({"task.assigned", "task.chunk_accepted"})


def observe(state: OwnerState, view: OwnerView, event: Event, replay: bool = False) -> list[Decision]:
    """Take in one committed event: touch its task, then hand it to the handler for its type."""
    if event.type.startswith("task.") and "task_id" in event.body \
            and (replay or event.author != state.me or event.type not in DECIDED_AT_COMMIT):
        task_id = event.body["task_id"]
        # A close frees capacity only if it ends assignments still out (a cancel, a failure mid-run).
        state.touch(task_id, frees_capacity=event.type in FREES_CAPACITY
                    and (event.type == "task.chunk_result" or task_id in state.out))
    handler = HANDLERS.get(event.type)
    return handler(state, view, event, replay) if handler is not None else []


def _mine(state: OwnerState, event: Event) -> OwnedTask | None:
    return state.owned.get(event.body["task_id"]) if event.author == state.me else None


def _submitted(state: OwnerState, view: OwnerView, event: Event, replay: bool) -> list[Decision]:
    if replay and event.author == state.me and event.body["task_id"] not in state.owned:
        task = view.restore(event)
        if task is not None:
            state.owned[task.task_id] = task
    return []


def _quote(state: OwnerState, view: OwnerView, event: Event, replay: bool) -> list[Decision]:
    b = event.body
    task = state.owned.get(b["task_id"])
    # A bid is for the submission it names: another owner may use the same task id.
    if task is not None and task.state == "quoting" and task.submitted in event.deps:
        if view.verify_quote(b):  # the price must follow from the inputs it names
            task.bids[event.author] = Bid(event.author, b["price"], event.hash, b["inputs"])
        else:
            log.warning("task %s: ignoring %s's quote: its price does not follow from its inputs",
                        b["task_id"], event.author[:16])
    return []


def _assigned(state: OwnerState, view: OwnerView, event: Event, replay: bool) -> list[Decision]:
    # Live, the assignment's on_commit made the attempt (with its deadline); the replay makes it here.
    b = event.body
    task = _mine(state, event)
    if task is not None and replay and b["chunk"] < len(task.chunks):
        if task.attempt_by_assignment(event.hash) is None:
            label = check_label(task.task_id, b["chunk"], b.get("attempt", 0), b["worker"]) \
                if "check_commit" in b else None
            task.chunks[b["chunk"]].attempts.append(Attempt(b["worker"], event.hash, b["price"], 0.0,
                                                            check_label=label))
        if isinstance(b.get("verification"), dict):  # a replica the adaptive policy decided on
            task.chunks[b["chunk"]].replication = b["verification"]
        task.state = "running"
        state.out[task.task_id] = None
    return []


def _result(state: OwnerState, view: OwnerView, event: Event, replay: bool) -> list[Decision]:
    b = event.body
    task = state.owned.get(b["task_id"])
    if task is None:
        return []
    if b["ok"] and b.get("result") is None and b.get("result_hash") and not view.has_result(b["result_hash"]):
        return [Fetch(task.task_id, event)]  # judge a result only once it is here: its worker serves it
    record_result(task, event)
    return []


def record_result(task: OwnedTask, event: Event, body: dict[str, Any] | None = None) -> None:
    """Note a worker's report on the attempt it answers (``body`` overrides the event's)."""
    b = body if body is not None else event.body
    for dep in event.deps:
        found = task.attempt_by_assignment(dep)
        if found and found[1].worker == event.author and found[1].ok is None:
            attempt = found[1]
            attempt.ok, attempt.error = b["ok"], b.get("error")
            attempt.result_hash, attempt.result, attempt.event = b.get("result_hash"), b.get("result"), event.hash


def _verified(state: OwnerState, event: Event) -> None:
    """A verdict of this owner that verified its worker moves the worker's standing: a check's
    outcome, or a replicated chunk's (accepted: the result agreed with another; rejected with the
    record: its result lost to the agreeing ones)."""
    record = event.body.get("verification")
    if event.author != state.me or not isinstance(record, dict):
        return
    check, action = record.get("check"), (record.get("decision") or {}).get("action")
    if isinstance(check, dict) and action == CHECK:
        passed = check.get("passed") is True
    elif action == REPLICATE:
        passed = event.type == "task.chunk_accepted"
    else:
        return
    worker = event.body["worker"]
    state.standings[worker] = state.standings.get(worker, Standing()).after(passed)


def _accepted(state: OwnerState, view: OwnerView, event: Event, replay: bool) -> list[Decision]:
    _verified(state, event)
    b = event.body
    task = _mine(state, event)
    if task is not None and b["chunk"] < len(task.chunks):
        chunk = task.chunks[b["chunk"]]
        for attempt in chunk.attempts:
            if attempt.worker == b["worker"] and attempt.ok and attempt not in chunk.accepted:
                chunk.accepted.append(attempt)
                break
        if len(chunk.accepted) >= task.quorum_of(chunk):
            chunk.settled = True
    return []


def _rejected(state: OwnerState, view: OwnerView, event: Event, replay: bool) -> list[Decision]:
    _verified(state, event)
    b = event.body
    task = _mine(state, event)
    if task is not None and b["chunk"] < len(task.chunks):
        task.chunks[b["chunk"]].rejected_workers.add(b["worker"])
    return []


def _closed(state: OwnerState, view: OwnerView, event: Event, replay: bool) -> list[Decision]:
    task = _mine(state, event)
    if task is not None:
        task.state = "closed"
        state.forget(task.task_id)
    return [Notify(event.body["task_id"], event.type.split(".")[1])]


HANDLERS: dict[str, Handler] = {
    "task.submitted": _submitted, "task.quote": _quote, "task.assigned": _assigned, "task.chunk_result": _result,
    "task.chunk_accepted": _accepted, "task.chunk_rejected": _rejected, "task.completed": _closed,
    "task.failed": _closed, "task.cancelled": _closed}


# ---------------------------------------------------------------- acting
def look(state: OwnerState, view: OwnerView, now: float) -> list[Decision]:
    """The owner's step: route tasks whose quoting is over, judge and pay running ones, close
    what is done. Only the tasks an event touched, those past a deadline or in their quote
    window (per TICK), those waiting for capacity when some freed up, and every task once per
    SWEEP are looked at."""
    state.tick_load = open_load(state, view, now)  # once per look, not per assignment
    state.tick_full = set()
    state.look_standings = {}
    out = Decisions()
    wake = state.capacity_freed
    state.looked = set()
    for task, sweep in _tasks_to_look_at(state, now):
        _look_at(state, view, task, sweep, now, out)
    if wake:
        _wake_blocked(state, view, now, out)
    state.tick_load, state.looked = None, set()
    return out.items


def _look_at(state: OwnerState, view: OwnerView, task: OwnedTask, sweep: bool, now: float, out: Decisions) -> None:
    """One task's part of a look (once per look: what it decides is not in memory before it commits)."""
    state.looked.add(task.task_id)
    state.just_blocked = None
    if task.state == "closed" or (sweep and not view.is_open(task.task_id)):
        state.forget(task.task_id)  # nothing left to do for it; the ledger keeps its story
        return
    if task.waiting in state.tick_full:
        state.block(task.task_id, task.waiting)
        return  # nothing out, and the workers it may use are full: nothing can change for it
    if task.state == "quoting":
        route(state, view, task, now, out)  # routed or not, nothing out yet: nothing to judge
        if task.state == "quoting":
            state.quoting[task.task_id] = None  # its window is looked at again next TICK
    elif task.state == "running":
        advance(state, view, task, now, out)
    if state.just_blocked != task.task_id:
        state.unblock(task.task_id)  # it found its workers (or needs none): no longer waiting


def _wake_blocked(state: OwnerState, view: OwnerView, now: float, out: Decisions) -> None:
    """Capacity freed up: per routing question, the oldest blocked tasks in turn until one finds
    its workers full again (it keeps its turn; the rest are not looked at)."""
    for question in list(state.blocked):
        while question not in state.tick_full and (group := state.blocked.get(question)):
            task_id = next(iter(group))
            state.unblock(task_id)
            task = state.owned.get(task_id)
            if task is None:
                continue
            if task_id in state.looked:  # blocked again this look: its turn comes at the next one
                state.block(task_id, question)
                state.blocked[question].move_to_end(task_id, last=False)
                state.capacity_freed = True
                break
            state.waking = task_id
            _look_at(state, view, task, False, now, out)
            state.waking = None
            if state.blocked_on.get(task_id) == question:
                state.blocked[question].move_to_end(task_id, last=False)  # its turn is still first
                break


def _tasks_to_look_at(state: OwnerState, now: float) -> list[tuple[OwnedTask, bool]]:
    """The tasks this look is for, in submission order; True with each when this look is a sweep."""
    if now >= state.next_scan:
        state.next_scan, state.next_tick = now + SWEEP, now + TICK
        state.dirty, state.capacity_freed, state.quoting = set(), False, {}
        state.blocked, state.blocked_on = {}, {}
        return [(task, True) for task in list(state.owned.values())]
    chosen = state.dirty | state.expired
    if now >= state.next_tick:
        state.next_tick = now + TICK
        chosen.update(state.quoting)
        state.quoting = {}
    state.dirty, state.capacity_freed = set(), False
    tasks = [task for task_id in chosen if (task := state.owned.get(task_id)) is not None]
    tasks.sort(key=lambda t: t.created)
    return [(task, False) for task in tasks]


def open_load(state: OwnerState, view: OwnerView, now: float) -> dict[str, int]:
    """Chunks this node has assigned and not yet seen reported (nor given up on), per worker.
    Walks only the tasks with assignments out (``state.out``), dropping those with none left;
    notes in ``state.expired`` the tasks with an attempt past its deadline (its load just freed)."""
    load: dict[str, int] = {}
    frozen = view.frozen
    state.expired = set()
    for task_id in list(state.out):
        task = state.owned.get(task_id)
        if task is None or task.state != "running":
            del state.out[task_id]
            continue
        still_out = False
        for chunk in task.chunks:
            for a in chunk.attempts:  # results.open_replicas, without building replicas: this runs every look
                if a.ok is None and a.worker not in chunk.rejected_workers:
                    still_out = True
                    if now > a.deadline:
                        state.expired.add(task_id)
                    elif a.worker not in frozen:
                        load[a.worker] = load.get(a.worker, 0) + 1
        if not still_out:
            del state.out[task_id]
    if state.expired:
        state.capacity_freed = True
    return load


def close(view: OwnerView, task_id: str, kind: str, body: dict[str, Any], out: Decisions,
          task: OwnedTask | None = None) -> None:
    """End a task, refunding what its escrow keeps after the payments already decided; the task
    (``task``, when this node drives it) is closed in memory once the event is signed."""
    escrow = view.escrow(task_id)
    if escrow is None or out.closes(task_id):
        return

    def commit(_: Event) -> None:
        if task is not None:
            task.state = "closed"
    out.add(Emit(kind, {"task_id": task_id, "refund": escrow - out.payments(task_id), **body}, (), commit))
    log.info("task %s %s%s", task_id, kind.split(".")[1],
             f": {str(body['reason'])[:200]}" if body.get("reason") else "")


def usable_bids(view: OwnerView, task: OwnedTask) -> list[Bid]:
    return [b for b in task.bids.values() if b.price <= task.per_chunk_cap and b.worker not in view.frozen]


def route(state: OwnerState, view: OwnerView, task: OwnedTask, now: float, out: Decisions) -> bool:
    """Once the quote window is over (or every expected bidder has bid), give every chunk its
    replicas; fail the task when nobody offers. True when it decided anything."""
    if not task.seen:
        # The quoting window runs from when the engine first sees the task: a busy
        # submitter must not starve its own bidders of their chance.
        task.seen = True
        task.quote_deadline = max(task.quote_deadline, now + view.quote_window)
    if now < task.quote_deadline and not view.expected_bidders() <= set(task.bids):
        return False
    bids = usable_bids(view, task)
    if not bids:
        if now < task.quote_deadline + max(2.0, 4 * view.quote_window):
            return False  # give slow peers a little longer
        reason = (f"no node will run it at max_price: {len(task.bids)} bid(s), none at or below "
                  f"{task.per_chunk_cap} base units per chunk") if task.bids else \
            "no node able to run this task made an offer" + view.no_offer_hint(task)
        close(view, task.task_id, "task.failed", {"reason": reason}, out, task)
        return True
    task.state = "running"  # the routing decision itself: no event of its own
    return assign(state, view, task, [c.index for c in task.chunks], prefer_trusted(bids, state.standings),
                  task.replicas, now, out) > 0


def advance(state: OwnerState, view: OwnerView, task: OwnedTask, now: float, out: Decisions) -> None:
    """Judge a running task's chunks, reassign what needs it, and complete it once every chunk
    is settled (this step's payments included)."""
    settled = results.settle(task, now, me=state.me, frozen=view.frozen, rated=view.rated, agree=view.agree,
                             judge=view.judge if task.single_verified() else None, standings=state.standings,
                             pending=state.look_standings)
    out.extend(settled.emits)
    if settled.failure is not None:
        close(view, task.task_id, "task.failed", {"reason": settled.failure}, out, task)
        return
    if settled.retry:
        reassign(state, view, task, settled.retry, now, out, settled.replicate)
        return
    if not all(c.settled or c.index in settled.accepted for c in task.chunks):
        return
    praise = [results.feedback(task.task_id, w, True) for w in sorted(results.paid_workers(task, settled.emits))
              if w != state.me and w not in view.frozen and not view.rated(task.task_id, w)]
    out.extend(praise)
    try:
        body = view.answer(task, settled.accepted)
    except (TaskError, LedgerError, KeyError, ValueError, TypeError) as exc:  # missing or malformed results
        reason = f"results could not be aggregated: {exc}"[:4000]
        close(view, task.task_id, "task.failed", {"reason": reason}, out, task)
        return
    close(view, task.task_id, "task.completed", body, out, task)


def reassign(state: OwnerState, view: OwnerView, task: OwnedTask, retry: dict[int, int], now: float,
             out: Decisions, replicate: Mapping[int, dict[str, Any]] | None = None) -> None:
    """Give each chunk of ``retry`` that many more workers; a chunk of ``replicate`` gets its replica
    with the record of the decision (chunk -> record), which its assignment carries."""
    bids = usable_bids(view, task)
    for index, count in retry.items():
        chunk = task.chunks[index]
        candidates = prefer_trusted([b for b in bids if b.worker not in chunk.tried_workers()], state.standings)
        if not candidates and chunk.attempts:
            last = next((r.error for r in reversed(results.replicas(chunk, now, view.frozen)) if r.error),
                        "no valid result")
            close(view, task.task_id, "task.failed",
                  {"reason": f"chunk {index} failed and no other node can take it: {last}"[:4000]}, out, task)
            return
        record = replicate.get(index) if replicate else None
        if record is not None:
            candidates = least_verified(candidates, state.standings)
        assign(state, view, task, [index], candidates, count, now, out, {index: record} if record else None)


def prefer_trusted(bids: list[Bid], standings: Mapping[str, Standing]) -> list[Bid]:
    """The bids without the workers this owner caught lying (``trust.caught``), unless nobody else bids."""
    kept = [b for b in bids if not caught(standings.get(b.worker))]
    return kept or bids


def least_verified(bids: list[Bid], standings: Mapping[str, Standing]) -> list[Bid]:
    """The bids whose workers a replica should go to (``trust.least_verified``)."""
    chosen = least_sure([b.worker for b in bids], standings)
    return [b for b in bids if b.worker in chosen]


def eligibility(requirements: dict[str, Any]) -> dict[str, Any]:
    """The requirements that decide who may run a chunk. ledger_net's ML runtimes are numpy
    on the CPU, so `gpu_percent` is a preference (GPU nodes rank first by price and
    capability), not a hard filter; `max_price` is the owner's budget, not a capability."""
    return {k: v for k, v in requirements.items() if k in ("cpu_percent", "ram_gb", "disk_gb", "timeout_seconds",
                                                           "sandbox_type", "task_type")}


def slots_of(caps: Capabilities | Mapping[str, Any]) -> int:
    """How many chunks a worker runs at once, as it signed it into the ledger (at least 1)."""
    value = caps.max_concurrent_tasks if isinstance(caps, Capabilities) else caps.get("max_concurrent_tasks", 1)
    return max(1, int(value or 1))


def assign(state: OwnerState, view: OwnerView, task: OwnedTask, indexes: list[int], bids: list[Bid],
           replicas: int, now: float, out: Decisions, replication: Mapping[int, dict[str, Any]] | None = None) -> int:
    """Route ``replicas`` workers to each chunk of ``indexes``; how many assignments it decided.
    ``replication``: chunks given a replica by the adaptive policy, with the decision's record."""
    load = state.tick_load if state.tick_load is not None else open_load(state, view, now)
    question: tuple[Any, ...] = (frozenset(b.worker for b in bids), frozenset(), task.per_chunk_cap,
                orjson.dumps(eligibility(task.requirements), option=orjson.OPT_SORT_KEYS))
    queue = state.blocked.get(question)
    if question in state.tick_full or (queue and state.waking != task.task_id and next(iter(queue)) != task.task_id):
        _mark_waiting(task, question)
        state.block(task.task_id, question)
        return 0  # the same workers were already full this look (loads only grow within it), or
        # tasks routed to them wait for capacity already: this one waits its turn behind them
    router_bids = view.router_bids(bids)
    plan = view.route(indexes, router_bids, eligibility(task.requirements), replicas=replicas,
                      current_load=load, max_price=task.per_chunk_cap)
    slots = {b.worker: slots_of(b.capabilities) for b in router_bids}
    submitted = task.submitted
    assert submitted is not None, "a task is routed only after its submission is committed"
    assigned = 0
    for index in indexes:
        chunk = task.chunks[index]
        for n, worker in enumerate(plan.get(index, [])):
            bid = task.bids[worker]
            body: dict[str, Any] = {"task_id": task.task_id, "chunk": index, "worker": worker, "price": bid.price,
                                    "attempt": len(chunk.attempts) + n}
            if chunk.payload_hash:
                body["payload_hash"] = chunk.payload_hash
            else:
                body["payload"] = chunk.payload
            label = None
            record = replication.get(index) if replication else None
            if record is not None:
                body["replica"], body["verification"] = 1, record
            elif task.single_verified() and chunk.replication is None:  # the check's and the coin's secret
                label = check_label(task.task_id, index, body["attempt"], worker)
                body["check_commit"] = commitment(view.check_secret(label))
            # A chunk queued behind others at its worker may wait their turns before its own timeout.
            turns = 1 + load.get(worker, 0) // slots.get(worker, 1)
            attempt = Attempt(worker, "", bid.price, now + task.timeout * turns + REPORT_GRACE, check_label=label)
            out.add(Emit("task.assigned", body, (submitted, bid.quote_hash),
                         _bind(state, task, chunk, attempt, record)))
            load[worker] = load.get(worker, 0) + 1
            assigned += 1
    if not assigned:
        state.tick_full.add(question)
        _mark_waiting(task, question)
        state.block(task.task_id, question)
        return 0
    task.waiting = None
    return assigned


def check_label(task_id: str, chunk: int, attempt: int, worker: str) -> str:
    """What names the owner's secret of one assignment (the secret is derived from the owner's key)."""
    return f"{task_id}/{chunk}/{attempt}/{worker}"


def _bind(state: OwnerState, task: OwnedTask, chunk: ChunkWork, attempt: Attempt,
          replication: dict[str, Any] | None = None) -> Callable[[Event], None]:
    def commit(event: Event) -> None:
        attempt.assignment = event.hash
        chunk.attempts.append(attempt)  # the attempt exists once its assignment is signed
        state.out[task.task_id] = None  # its load and deadline are walked from now on
        if replication is not None:
            chunk.replication = replication
    return commit


def _mark_waiting(task: OwnedTask, question: tuple[Any, ...]) -> None:
    """A task with nothing out that found its workers full waits, unlooked at, while they stay full."""
    if not any(chunk.open_attempts() for chunk in task.chunks):
        task.waiting = question
