"""Properties of the price function: monotone in the market, priority, reputation, load and work;
bounded; deterministic and re-derivable from a quote's inputs on any peer."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_net.core.task import TaskPriority
from ledger_net.market import MarketSnapshot, PricingEngine, PricingParams

PPM = 1_000_000
SETTINGS = settings(max_examples=300, deadline=None)

counts = st.integers(0, 10**7)
ppm = st.integers(0, PPM)
work = st.integers(0, 10**12)
priorities = st.sampled_from(list(TaskPriority))
params = st.builds(PricingParams, chunk_fee=st.integers(0, 10**6), units_per_base=st.integers(1, 10**6),
                   scarcity_max_ppm=st.integers(PPM, 20 * PPM), reputation_spread_ppm=ppm,
                   load_premium_ppm=st.integers(0, 5 * PPM))


def price(p: PricingParams, work_units: int, priority: Any, supply: int, demand: int, rep: int, load: int) -> int:
    market = MarketSnapshot(supply=supply, demand=demand, capacity=supply, online_nodes=1, reputation_ppm=rep,
                            load_ppm=load)
    quote = PricingEngine(params=p).quote(work_units=work_units, priority=priority, market=market)
    assert quote is not None
    return quote.price


@SETTINGS
@given(params, work, priorities, counts, counts, counts, ppm, ppm)
def test_more_demand_never_lowers_the_price(p: PricingParams, w: int, pr: Any, s: int, d: int, extra: int,
                                            r: int, load: int) -> None:
    assert price(p, w, pr, s, d + extra, r, load) >= price(p, w, pr, s, d, r, load)


@SETTINGS
@given(params, work, priorities, counts, counts, counts, ppm, ppm)
def test_less_supply_never_lowers_the_price(p: PricingParams, w: int, pr: Any, s: int, d: int, extra: int,
                                            r: int, load: int) -> None:
    assert price(p, w, pr, s, d, r, load) >= price(p, w, pr, s + extra, d, r, load)


@SETTINGS
@given(params, work, counts, counts, ppm, ppm, st.integers(0, 2), st.integers(1, 3))
def test_higher_priority_never_costs_less(p: PricingParams, w: int, s: int, d: int, r: int, load: int, lo: int,
                                          step: int) -> None:
    levels = list(TaskPriority)
    hi = min(lo + step, len(levels) - 1)
    assert price(p, w, levels[hi], s, d, r, load) >= price(p, w, levels[lo], s, d, r, load)


@SETTINGS
@given(work, counts, counts, ppm, ppm)
def test_higher_priority_costs_strictly_more_with_default_factors(w: int, s: int, d: int, r: int, load: int) -> None:
    p = PricingParams()
    prices = [price(p, w, level, s, d, r, load) for level in TaskPriority]
    assert all(a < b for a, b in zip(prices, prices[1:], strict=False))


@SETTINGS
@given(params, work, priorities, counts, counts, ppm, ppm, ppm, ppm)
def test_reputation_load_and_work_never_lower_the_price(p: PricingParams, w: int, pr: Any, s: int, d: int,
                                                        r1: int, r2: int, l1: int, l2: int) -> None:
    base = price(p, w, pr, s, d, min(r1, r2), min(l1, l2))
    assert price(p, w, pr, s, d, max(r1, r2), min(l1, l2)) >= base
    assert price(p, w, pr, s, d, min(r1, r2), max(l1, l2)) >= base
    assert price(p, w + 1000, pr, s, d, min(r1, r2), min(l1, l2)) >= base


@SETTINGS
@given(work, priorities, counts, counts, ppm, ppm)
def test_factors_stay_within_their_bounds(w: int, pr: Any, s: int, d: int, r: int, load: int) -> None:
    p = PricingParams()
    base = (p.chunk_fee + -(-w // p.units_per_base)) * p.priority_factor(pr)
    got = price(p, w, pr, s, d, r, load)
    # scarcity in [1/3, 3] (its ppm value floors to 333_333), reputation in [0.5, 1.5], load in [1, 1.5]
    assert base * 333_333 * 500_000 * PPM // PPM**4 <= got <= base * 3 * PPM * 1_500_000 * 1_500_000 // PPM**4


@SETTINGS
@given(params, work, priorities, counts, counts, ppm, ppm)
def test_quotes_are_deterministic_and_rederivable(p: PricingParams, w: int, pr: Any, s: int, d: int, r: int,
                                                  load: int) -> None:
    market = MarketSnapshot(supply=s, demand=d, capacity=s, online_nodes=1, reputation_ppm=r, load_ppm=load)
    a = PricingEngine(params=p).quote(work_units=w, priority=pr, market=market)
    b = PricingEngine(params=p).quote(work_units=w, priority=int(pr), market=market)
    assert a is not None and a == b
    assert all(type(v) is int for v in a.inputs.values())
    # any peer, whatever its own constants, re-derives the price from the inputs alone
    assert PricingEngine.price_from_inputs(dict(a.inputs)) == a.price
    assert PricingEngine.verify_quote({"task_id": "t", "price": a.price, "inputs": a.inputs})


@SETTINGS
@given(params, work, priorities, counts, counts, ppm, ppm, st.integers(0, 10**9))
def test_max_price_cuts_exactly_at_the_price(p: PricingParams, w: int, pr: Any, s: int, d: int, r: int, load: int,
                                             cap: int) -> None:
    market = MarketSnapshot(supply=s, demand=d, capacity=s, online_nodes=1, reputation_ppm=r, load_ppm=load)
    engine = PricingEngine(params=p)
    full = engine.quote(work_units=w, priority=pr, market=market)
    capped = engine.quote(work_units=w, priority=pr, market=market, max_price=cap)
    assert full is not None
    assert (capped is None) == (full.price > cap)
    if capped is not None:
        assert capped == full
