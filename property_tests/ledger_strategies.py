"""Hypothesis strategies and a small simulator for ledger property tests.

`operations()` draws a list of abstract operations (mint, transfer, receive, burn,
voucher, task lifecycle, feedback, join) by several identities; `build_world`
plays them through one real `Ledger` per identity, syncing each actor before it
acts, and returns every event in creation order (a causal order). Operations the
rules refuse (overdrafts, …) raise RuleViolation and are recorded as refused.
"""

from __future__ import annotations

import random
import time as _time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from hypothesis import strategies as st

from ledger_net.ledger import chain as _chain
from ledger_net.ledger.chain import Ledger, RuleViolation
from ledger_net.ledger.encoding import INT_MAX, INT_MIN
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity

IDENTITIES = [Identity.from_seed(bytes([40 + i]) * 32) for i in range(4)]
ISSUER = IDENTITIES[0]
ISSUERS = [IDENTITIES[0].node_id, IDENTITIES[1].node_id]  # two issuers, two plain nodes

# `reject` is in the mix: a rejection concurrent with the worker's result converges (the tasks
# projection derives a chunk from each assignment's verdict and report).
KINDS = ("mint", "transfer", "receive", "burn", "voucher", "settle", "submit", "submit_same", "quote", "assign",
         "result", "accept", "reject", "close", "feedback", "join", "overdraft")
SHARED_TASK_ID = "same"  # `submit_same`: every owner may submit a task under this one id

# (kind, actor, target, amount, pick)
operation = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, len(IDENTITIES) - 1),
    st.integers(0, len(IDENTITIES) - 1),
    st.integers(1, 120),
    st.integers(0, 7),
)


def operations(min_size: int = 1, max_size: int = 25) -> st.SearchStrategy[list[tuple]]:
    # a couple of mints up front so money exists to move around
    prefix = st.lists(st.tuples(st.just("mint"), st.integers(0, 1), st.integers(0, 3), st.integers(50, 300),
                                st.just(0)), min_size=1, max_size=3)
    return st.tuples(prefix, st.lists(operation, min_size=min_size, max_size=max_size)).map(lambda p: p[0] + p[1])


@dataclass
class World:
    ledgers: list[Ledger]
    events: list[Event] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)  # per ledger: how many world events it was given
    refused: list[tuple] = field(default_factory=list)
    applied: list[tuple] = field(default_factory=list)
    task_counter: int = 0

    def sync(self, i: int) -> None:
        new = self.events[self.seen[i]:]
        if new:
            self.ledgers[i].ingest(new)
            self.seen[i] = len(self.events)

    def act(self, i: int, type_: str, body: dict[str, Any], deps=()) -> Event:
        ev = self.ledgers[i].append(type_, body, deps)
        self.events.append(ev)
        self.seen[i] = len(self.events)
        return ev

    def close(self) -> None:
        for led in self.ledgers:
            led.close()

    @property
    def genesis(self) -> Event:
        return self.events[0]


def new_world() -> World:
    ledgers = [Ledger.open("sqlite://", ident) for ident in IDENTITIES]
    world = World(ledgers, seen=[0] * len(ledgers))
    world.act(0, "network.genesis", {"name": "props", "issuers": sorted(ISSUERS), "decimals": 6})
    return world


def _pick(items: list, pick: int):
    return items[pick % len(items)] if items else None


def _open_tasks(state, author: str) -> list[str]:
    return sorted(state.accounts[author].escrow) if author in state.accounts else []


@dataclass
class Turn:
    """One operation's actor and what it sees: its own ledger's state, before it acts."""

    world: World
    actor: int
    me: str
    other: str
    state: Any
    bal: int
    amount: int
    pick: int

    def act(self, type_: str, body: dict[str, Any], deps: list[str] | None = None) -> None:
        if deps is None:
            self.world.act(self.actor, type_, body)
        else:
            self.world.act(self.actor, type_, body, deps)

    def assignments(self, **match: Any) -> list[tuple[str, Any]]:
        """(hash, assignment) pairs whose fields equal ``match``, sorted."""
        return sorted((h, a) for h, a in self.state.assignments.items()
                      if all(getattr(a, k) == v for k, v in match.items()))

    def owned_open(self) -> list[tuple[str, Any]]:
        """This actor's assignments on tasks it still holds escrow for."""
        return [(h, a) for h, a in self.assignments(owner=self.me) if a.task_id in self.state.accounts[self.me].escrow]


# Each kind of operation: False when it does not apply to this actor now (the operation is then
# neither applied nor refused), True when it was tried (it may still find nothing to act on).
def _mint(t: Turn) -> bool:
    t.act("credit.minted", {"to": t.other, "amount": t.amount, "reason": "p"})
    return True


def _transfer(t: Turn) -> bool:
    if t.other == t.me or not t.bal:
        return False
    t.act("credit.transfer", {"to": t.other, "amount": min(t.amount, t.bal)})
    return True


def _overdraft(t: Turn) -> bool:
    if t.other == t.me:
        return False
    t.act("credit.transfer", {"to": t.other, "amount": t.bal + t.amount})
    return True


def _receive(t: Turn) -> bool:
    credit = _pick(sorted(t.state.open_credits_to(t.me)), t.pick)
    if credit:
        t.act("credit.received", {"source": credit[0]}, [credit[0]])
    return True


def _burn(t: Turn) -> bool:
    if not t.bal:
        return False
    t.act("credit.burned", {"amount": min(t.amount, t.bal), "reason": "p"})
    return True


def _voucher(t: Turn) -> bool:
    if not t.bal:
        return False
    t.act("credit.voucher_issued", {"name": f"v{t.pick}", "amount": min(t.amount, t.bal)})
    return True


def _settle(t: Turn) -> bool:
    mine = sorted(h for h, (issuer, _, _) in t.state.vouchers.items() if issuer == t.me)
    voucher = _pick(mine, t.pick)
    if voucher:
        t.act("credit.voucher_settled", {"voucher": voucher, "to": None if t.pick % 2 else t.other})
    return True


def _submit(t: Turn) -> bool:
    t.world.task_counter += 1
    t.act("task.submitted", {"task_id": f"t{t.world.task_counter}", "task_type": "map",
                             "escrow": min(t.amount, t.bal), "max_price": t.amount // 2 + t.pick,
                             "chunks": 2, "spec": {}})
    return True


def _submit_same(t: Turn) -> bool:  # task ids are per owner: several owners may share one
    t.act("task.submitted", {"task_id": SHARED_TASK_ID, "task_type": f"type{t.actor}",
                             "escrow": min(t.amount, t.bal), "max_price": t.amount // 2 + t.pick,
                             "chunks": 1 + t.pick % 3, "spec": {}})
    return True


def _quote(t: Turn) -> bool:
    sub = _pick([e for e in t.world.events if e.type == "task.submitted"], t.pick)
    if sub:
        t.act("task.quote", {"task_id": sub.body["task_id"], "price": t.amount, "inputs": {}}, [sub.hash])
    return True


def _assign(t: Turn) -> bool:
    task = _pick(_open_tasks(t.state, t.me), t.pick)
    if task:
        price = min(t.amount, t.state.accounts[t.me].max_price[task])
        t.act("task.assigned", {"task_id": task, "chunk": t.pick % 2, "worker": t.other, "price": price})
    return True


def _result(t: Turn) -> bool:
    item = _pick(t.assignments(worker=t.me), t.pick)
    if item:
        h, a = item
        t.act("task.chunk_result", {"task_id": a.task_id, "chunk": a.chunk, "ok": True, "result_hash": None}, [h])
    return True


def _accept(t: Turn) -> bool:
    item = _pick(t.owned_open(), t.pick)
    if item:
        h, a = item
        acct = t.state.accounts[t.me]
        pay = min(t.amount, acct.max_price[a.task_id], acct.escrow[a.task_id])
        t.act("task.chunk_accepted", {"task_id": a.task_id, "chunk": a.chunk, "worker": a.worker, "payment": pay},
              [h])
    return True


def _reject(t: Turn) -> bool:
    item = _pick(t.owned_open(), t.pick)
    if item:
        h, a = item
        t.act("task.chunk_rejected", {"task_id": a.task_id, "chunk": a.chunk, "worker": a.worker, "reason": "p"},
              [h])
    return True


def _close(t: Turn) -> bool:
    task = _pick(_open_tasks(t.state, t.me), t.pick)
    if task:
        type_ = ("task.completed", "task.failed", "task.cancelled")[t.pick % 3]
        body = {"task_id": task, "refund": t.state.accounts[t.me].escrow[task]}
        if type_ != "task.completed":
            body["reason"] = "p"
        t.act(type_, body)
    return True


def _feedback(t: Turn) -> bool:
    if t.other == t.me:
        return False
    paid = sorted(task for task, w in (t.state.accounts[t.me].paid if t.me in t.state.accounts else ())
                  if w == t.other)
    task = _pick(paid, t.pick)
    body = {"subject": t.other, "positive": t.pick % 2 == 0, "quality_ppm": t.amount * 8000, "weight_ppm": 1_000_000}
    if task:
        body["task_id"] = task
    t.act("reputation.feedback", body)
    return True


def _join(t: Turn) -> bool:
    t.act("node.joined", {"name": f"n{t.actor}"})
    return True


STEPS: dict[str, Callable[[Turn], bool]] = {
    "mint": _mint, "transfer": _transfer, "overdraft": _overdraft, "receive": _receive, "burn": _burn,
    "voucher": _voucher, "settle": _settle, "submit": _submit, "submit_same": _submit_same, "quote": _quote,
    "assign": _assign, "result": _result, "accept": _accept, "reject": _reject, "close": _close,
    "feedback": _feedback, "join": _join}


def step(world: World, op: tuple) -> None:
    """Apply one generated operation as its actor, on the actor's view after syncing; record it
    as applied, refused (a RuleViolation), or neither (it does not apply to the actor now)."""
    kind, actor, target, amount, pick = op
    world.sync(actor)
    me, other = IDENTITIES[actor].node_id, IDENTITIES[target].node_id
    state = world.ledgers[actor].state
    turn = Turn(world, actor, me, other, state, state.spendable(me), amount, pick)
    handler = STEPS.get(kind)
    try:
        if handler is None or not handler(turn):
            return
        world.applied.append(op)
    except RuleViolation:
        world.refused.append(op)


class FakeClock:
    """A deterministic stand-in for the `time` module the chain signs timestamps with,
    so the same operations give the same events (hashes) on every run: Hypothesis
    needs reproducible examples."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        self.now += 0.001
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(_time, name)


@contextmanager
def fixed_clock():
    with mock.patch.object(_chain, "time", FakeClock()):
        yield


def build_world(ops: list[tuple]) -> World:
    with fixed_clock():
        world = new_world()
        for op in ops:
            step(world, op)
    return world


# ----------------------------------------------------------------- orders
def dependencies(events: list[Event]) -> dict[str, set[str]]:
    """hash -> hashes it needs first: prev, deps and (for all but the genesis) the genesis."""
    genesis = events[0].hash
    out = {}
    for ev in events:
        need = set(ev.deps)
        if ev.prev:
            need.add(ev.prev)
        if not ev.is_genesis:
            need.add(genesis)
        out[ev.hash] = need
    return out


def topological_shuffle(events: list[Event], rnd: random.Random) -> list[Event]:
    """A uniformly-picked-at-each-step causal order of `events`."""
    needs = {h: set(n) for h, n in dependencies(events).items()}
    by_hash = {e.hash: e for e in events}
    waiters: dict[str, list[str]] = {}
    for h, n in needs.items():
        for d in n:
            waiters.setdefault(d, []).append(h)
    ready = sorted(h for h, n in needs.items() if not n)
    order = []
    while ready:
        h = ready.pop(rnd.randrange(len(ready)))
        order.append(by_hash[h])
        for w in waiters.get(h, ()):
            needs[w].discard(h)
            if not needs[w]:
                ready.append(w)
    assert len(order) == len(events)
    return order


def chunked(items: list, rnd: random.Random, max_chunk: int = 6) -> list[list]:
    out, i = [], 0
    while i < len(items):
        n = rnd.randint(1, max_chunk)
        out.append(items[i:i + n])
        i += n
    return out


# ----------------------------------------------------------------- JSON values
json_scalars = st.none() | st.booleans() | st.integers(INT_MIN, INT_MAX) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)
