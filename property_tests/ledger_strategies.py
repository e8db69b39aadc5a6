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

# `reject` is played by `step` but left out of the random mix: a rejection concurrent with the
# worker's result is still projected order-dependently (known, open: see the tasks projection).
KINDS = ("mint", "transfer", "receive", "burn", "voucher", "settle", "submit", "submit_same", "quote", "assign",
         "result", "accept", "close", "feedback", "join", "overdraft")
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


def step(world: World, op: tuple) -> None:
    kind, actor, target, amount, pick = op
    world.sync(actor)
    led = world.ledgers[actor]
    me, other = IDENTITIES[actor].node_id, IDENTITIES[target].node_id
    st_ = led.state
    bal = st_.spendable(me)
    try:
        if kind == "mint":
            world.act(actor, "credit.minted", {"to": other, "amount": amount, "reason": "p"})
        elif kind == "transfer" and other != me and bal:
            world.act(actor, "credit.transfer", {"to": other, "amount": min(amount, bal)})
        elif kind == "overdraft" and other != me:
            world.act(actor, "credit.transfer", {"to": other, "amount": bal + amount})
        elif kind == "receive":
            credit = _pick(sorted(st_.open_credits_to(me)), pick)
            if credit:
                world.act(actor, "credit.received", {"source": credit[0]}, [credit[0]])
        elif kind == "burn" and bal:
            world.act(actor, "credit.burned", {"amount": min(amount, bal), "reason": "p"})
        elif kind == "voucher" and bal:
            world.act(actor, "credit.voucher_issued", {"name": f"v{pick}", "amount": min(amount, bal)})
        elif kind == "settle":
            mine = sorted(h for h, (issuer, _, _) in st_.vouchers.items() if issuer == me)
            voucher = _pick(mine, pick)
            if voucher:
                world.act(actor, "credit.voucher_settled", {"voucher": voucher, "to": None if pick % 2 else other})
        elif kind == "submit":
            world.task_counter += 1
            world.act(actor, "task.submitted", {"task_id": f"t{world.task_counter}", "task_type": "map",
                                                 "escrow": min(amount, bal), "max_price": amount // 2 + pick,
                                                 "chunks": 2, "spec": {}})
        elif kind == "submit_same":  # task ids are per owner: several owners may share one
            world.act(actor, "task.submitted", {"task_id": SHARED_TASK_ID, "task_type": f"type{actor}",
                                                 "escrow": min(amount, bal), "max_price": amount // 2 + pick,
                                                 "chunks": 1 + pick % 3, "spec": {}})
        elif kind == "quote":
            sub = _pick([e for e in world.events if e.type == "task.submitted"], pick)
            if sub:
                world.act(actor, "task.quote", {"task_id": sub.body["task_id"], "price": amount, "inputs": {}},
                          [sub.hash])
        elif kind == "assign":
            task = _pick(_open_tasks(st_, me), pick)
            if task:
                price = min(amount, st_.accounts[me].max_price[task])
                world.act(actor, "task.assigned", {"task_id": task, "chunk": pick % 2, "worker": other,
                                                   "price": price})
        elif kind == "result":
            mine = sorted((h, a) for h, a in st_.assignments.items() if a.worker == me)
            item = _pick(mine, pick)
            if item:
                h, a = item
                world.act(actor, "task.chunk_result", {"task_id": a.task_id, "chunk": a.chunk, "ok": True,
                                                       "result_hash": None}, [h])
        elif kind == "accept":
            mine = sorted((h, a) for h, a in st_.assignments.items()
                          if a.owner == me and a.task_id in st_.accounts[me].escrow)
            item = _pick(mine, pick)
            if item:
                h, a = item
                acct = st_.accounts[me]
                pay = min(amount, acct.max_price[a.task_id], acct.escrow[a.task_id])
                world.act(actor, "task.chunk_accepted", {"task_id": a.task_id, "chunk": a.chunk,
                                                         "worker": a.worker, "payment": pay}, [h])
        elif kind == "reject":
            mine = sorted((h, a) for h, a in st_.assignments.items()
                          if a.owner == me and a.task_id in st_.accounts[me].escrow)
            item = _pick(mine, pick)
            if item:
                h, a = item
                world.act(actor, "task.chunk_rejected", {"task_id": a.task_id, "chunk": a.chunk,
                                                         "worker": a.worker, "reason": "p"}, [h])
        elif kind == "close":
            task = _pick(_open_tasks(st_, me), pick)
            if task:
                type_ = ("task.completed", "task.failed", "task.cancelled")[pick % 3]
                body = {"task_id": task, "refund": st_.accounts[me].escrow[task]}
                if type_ != "task.completed":
                    body["reason"] = "p"
                world.act(actor, type_, body)
        elif kind == "feedback" and other != me:
            paid = sorted(t for t, w in (st_.accounts[me].paid if me in st_.accounts else ()) if w == other)
            task = _pick(paid, pick)
            body = {"subject": other, "positive": pick % 2 == 0, "quality_ppm": amount * 8000,
                    "weight_ppm": 1_000_000}
            if task:
                body["task_id"] = task
            world.act(actor, "reputation.feedback", body)
        elif kind == "join":
            world.act(actor, "node.joined", {"name": f"n{actor}"})
        else:
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
