"""PricingEngine: market snapshots from real projections, quotes as re-derivable events, max_price."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ledger_net.core.node import Capabilities
from ledger_net.core.private_ledger import private_network
from ledger_net.core.task import Task, TaskPriority
from ledger_net.errors import TaskError
from ledger_net.ledger.chain import Ledger
from ledger_net.market import MarketSnapshot, PricingEngine, PricingParams, Quote
from ledger_net.market.pricing import FORMULA_VERSION

PPM = 1_000_000


def market(supply: int = 10, demand: int = 10, reputation: int = 500_000, load: int = 0) -> MarketSnapshot:
    return MarketSnapshot(supply=supply, demand=demand, capacity=supply, online_nodes=1, reputation_ppm=reputation,
                          load_ppm=load)


def price(engine: PricingEngine, **kw: Any) -> int:
    work = kw.pop("work_units", 10_000)
    prio = kw.pop("priority", TaskPriority.NORMAL)
    quote = engine.quote(work_units=work, priority=prio, market=market(**kw))
    assert quote is not None
    return quote.price


def network() -> tuple[Ledger, Any]:
    ledger, runner = private_network("pricing")
    ledger.append("credit.minted", {"to": ledger.node_id, "amount": 1_000 * PPM, "reason": "test"})
    ledger.append("node.joined", {"name": "me", "url": "http://127.0.0.1:1",
                                  "capabilities": Capabilities(max_concurrent_tasks=4).to_ledger()})
    return ledger, runner


def submit(ledger: Ledger, task_id: str, chunks: int) -> None:
    ledger.append("task.submitted", {"task_id": task_id, "task_type": "range_reduce", "escrow": 10 * PPM,
                                     "max_price": PPM, "chunks": chunks, "spec": {}})


# --------------------------------------------------------------------------- snapshots
def test_snapshot_reads_supply_and_demand_from_projections() -> None:
    ledger, runner = network()
    engine = PricingEngine(runner, ledger.node_id)
    m = engine.snapshot(load_ppm=250_000)
    assert (m.supply, m.demand, m.capacity, m.online_nodes) == (4, 0, 4, 1)
    assert m.reputation_ppm == 500_000 and m.load_ppm == 250_000

    submit(ledger, "t1", 5)
    assert (engine.snapshot().supply, engine.snapshot().demand) == (4, 5)
    assigned = ledger.append("task.assigned", {"task_id": "t1", "chunk": 0, "worker": ledger.node_id, "price": 10})
    ledger.append("task.assigned", {"task_id": "t1", "chunk": 1, "worker": ledger.node_id, "price": 10})
    m = engine.snapshot()
    assert (m.supply, m.demand) == (2, 5)  # two slots busy; assigned chunks still want results
    ledger.append("task.chunk_result", {"task_id": "t1", "chunk": 0, "ok": True, "result_hash": None},
                  deps=[assigned.hash])
    m = engine.snapshot()
    assert (m.supply, m.demand) == (3, 4)  # reported: slot free again, no longer demand
    remaining = ledger.state.accounts[ledger.node_id].escrow["t1"]
    ledger.append("task.cancelled", {"task_id": "t1", "reason": "test", "refund": remaining})
    m = engine.snapshot()
    assert (m.supply, m.demand) == (4, 0)  # closed tasks neither demand nor hold slots


def test_offline_and_forked_nodes_supply_nothing() -> None:
    ledger, runner = network()
    engine = PricingEngine(runner, ledger.node_id)
    ledger.append("node.left", {"reason": "bye"})
    m = engine.snapshot()
    assert (m.supply, m.capacity, m.online_nodes) == (0, 0, 0)


def test_snapshot_without_runner_is_a_neutral_empty_market() -> None:
    m = PricingEngine().snapshot(load_ppm=5)
    assert (m.supply, m.demand, m.reputation_ppm, m.load_ppm) == (0, 0, 500_000, 5)
    with pytest.raises(TaskError):
        PricingEngine().snapshot(load_ppm=2 * PPM)


# --------------------------------------------------------------------------- prices
def test_neutral_quote_equals_task_estimate_cost_per_chunk() -> None:
    engine = PricingEngine()
    task = Task.create_range_reduce("me", 1, 1000, "sum", {}, {})
    quote = engine.quote(work_units=task.work_units(), priority=TaskPriority.NORMAL, market=market(1, 1))
    assert quote is not None
    assert quote.price == task.estimate_cost_micros(0.5) == 1001


def test_monotonic_in_market_priority_reputation_load_and_work() -> None:
    e = PricingEngine()
    assert price(e, demand=20) > price(e, demand=10) > price(e, demand=0)
    assert price(e, supply=1) > price(e, supply=10) > price(e, supply=100)
    prices = [price(e, priority=p) for p in TaskPriority]
    assert prices == sorted(prices) and len(set(prices)) == len(prices)
    assert price(e, reputation=900_000) > price(e, reputation=500_000) > price(e, reputation=100_000)
    assert price(e, load=PPM) > price(e, load=0)
    assert price(e, work_units=10**9) > price(e, work_units=10**6)


def test_factors_are_bounded() -> None:
    e = PricingEngine()
    neutral = price(e, supply=5, demand=5)
    assert price(e, supply=0, demand=10**9) <= 3 * neutral  # scarcity ≤ ×3
    assert price(e, supply=10**9, demand=0) * 3 >= neutral - 3  # abundance ≥ ×1/3
    assert price(e, supply=5, demand=5, reputation=PPM) <= neutral * 3 // 2  # premium ≤ ×1.5
    assert price(e, supply=5, demand=5, load=PPM) <= neutral * 3 // 2


def test_quote_is_reproducible_from_its_inputs() -> None:
    e = PricingEngine()
    quote = e.quote(work_units=123_456, priority="HIGH", market=market(3, 17, 731_000, 420_000))
    assert quote is not None and isinstance(quote, Quote)
    assert all(type(v) is int for v in quote.inputs.values())
    assert quote.inputs["v"] == FORMULA_VERSION and quote.inputs["priority"] == int(TaskPriority.HIGH)
    assert PricingEngine.price_from_inputs(quote.inputs) == quote.price
    # another peer with other default constants still re-derives it: the constants travel in the inputs
    other = PricingEngine(params=PricingParams(chunk_fee=7, scarcity_max_ppm=9 * PPM))
    assert other.price_from_inputs(quote.inputs) == quote.price
    body = quote.event_body("t1", chunks=[2, 0])
    assert body == {"task_id": "t1", "price": quote.price, "inputs": quote.inputs, "chunks": [0, 2]}
    assert PricingEngine.verify_quote(body)
    assert not PricingEngine.verify_quote({**body, "price": quote.price + 1})
    assert not PricingEngine.verify_quote({**body, "inputs": {**quote.inputs, "demand": 18}})


def test_quote_event_round_trips_through_the_ledger() -> None:
    ledger, runner = network()
    submit(ledger, "t1", 3)
    engine = PricingEngine(runner, ledger.node_id)
    quote = engine.quote(work_units=1000, priority=TaskPriority.LOW, market=engine.snapshot(load_ppm=10))
    assert quote is not None
    event = ledger.append("task.quote", quote.event_body("t1", [0, 1, 2]))
    stored = ledger.event(event.hash)
    assert stored is not None and PricingEngine.verify_quote(stored.body)
    assert stored.body["inputs"]["demand"] == 3 and stored.body["inputs"]["supply"] == 4


def test_max_price() -> None:
    e = PricingEngine()
    m = market()
    full = e.quote(work_units=5000, market=m)
    assert full is not None
    assert e.quote(work_units=5000, market=m, max_price=full.price) == full
    assert e.quote(work_units=5000, market=m, max_price=full.price - 1) is None
    with pytest.raises(TaskError):
        e.quote(work_units=5000, market=m, max_price=-1)


@pytest.mark.parametrize("bad", [{"work_units": -1}, {"work_units": 1.5}, {"work_units": True},
                                 {"priority": 9}, {"priority": "URGENT"}])
def test_bad_quote_arguments(bad: dict[str, Any]) -> None:
    args: dict[str, Any] = {"work_units": 10, "priority": TaskPriority.NORMAL, **bad}
    with pytest.raises(TaskError):
        PricingEngine().quote(market=market(), **args)


@pytest.mark.parametrize("change", [{"supply": -1}, {"reputation_ppm": PPM + 1}, {"v": 99}, {"units_per_base": 0},
                                    {"load_ppm": 1.0}, {"scarcity_max_ppm": 10}])
def test_price_from_inputs_rejects_bad_inputs(change: dict[str, Any]) -> None:
    quote = PricingEngine().quote(work_units=10, market=market())
    assert quote is not None
    with pytest.raises(TaskError):
        PricingEngine.price_from_inputs({**quote.inputs, **change})
    missing = dict(quote.inputs)
    del missing["demand"]
    with pytest.raises(TaskError, match="demand"):
        PricingEngine.price_from_inputs(missing)


def test_params_from_genesis_and_validation() -> None:
    ledger, runner = private_network("priced", params={"pricing": {"chunk_fee": 5, "priority_ppm": [1, 2, 3, 4]}})
    engine = PricingEngine(runner, ledger.node_id)
    assert engine.params.chunk_fee == 5 and engine.params.priority_ppm == (1, 2, 3, 4)
    with pytest.raises(TaskError):
        PricingParams(priority_ppm=(4, 3, 2, 1))  # type: ignore[arg-type]
    with pytest.raises(TaskError):
        PricingParams(scarcity_max_ppm=PPM - 1)


# --------------------------------------------------------------------------- user-facing helpers
def test_estimate_price_and_market_state_in_credits() -> None:
    ledger, runner = network()
    engine = PricingEngine(runner, ledger.node_id)
    state = engine.get_market_state()
    assert state["online_nodes"] == 1 and state["supply"] == 4 and state["demand"] == 0
    assert state["utilization"] == 0.0 and state["scarcity_multiplier"] < 1.0
    cheap = engine.estimate_price({"cpu_percent": 50.0, "work_units": 1000})
    submit(ledger, "t1", 40)
    dear = engine.estimate_price({"cpu_percent": 50.0, "work_units": 1000})
    assert 0 < cheap < dear <= 0.1  # the seed's max_price of 0.1 credit still covers a small chunk
    assert engine.estimate_price({}, work_units=1000, priority=TaskPriority.CRITICAL) > dear
    assert engine.get_market_state()["demand"] == 40
    dataclasses.asdict(engine.snapshot())  # plain integers all the way


def test_quote_task_snapshots_and_clamps_ledger_priorities() -> None:
    ledger, runner = network()
    submit(ledger, "t1", 6)
    engine = PricingEngine()
    quote = engine.quote_task(runner, ledger.node_id, work_units=100, priority=2, load_ppm=7)
    assert quote is not None and quote.inputs["demand"] == 6 and quote.inputs["supply"] == 4
    assert quote.inputs["load_ppm"] == 7 and PricingEngine.price_from_inputs(quote.inputs) == quote.price
    top = engine.quote_task(runner, ledger.node_id, work_units=100, priority=10)
    low = engine.quote_task(runner, ledger.node_id, work_units=100, priority=0)
    assert top is not None and low is not None
    assert top.inputs["priority"] == int(TaskPriority.CRITICAL) and low.inputs["priority"] == int(TaskPriority.LOW)
    assert engine.quote_task(runner, ledger.node_id, work_units=100, max_price=1) is None
