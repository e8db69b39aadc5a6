"""Dynamic pricing: a per-chunk price from supply, demand, priority, work size, reputation and load.

Every quote is a ``task.quote`` event whose body names the integers it was computed from
(``inputs``), and the price is :meth:`PricingEngine.price_from_inputs` of them: a pure,
integer-only function, so any peer re-derives (and so checks) any quote without trusting the
quoter's arithmetic. The market figures themselves (supply, demand, reputation) are read from
the projections at the quoter's point in the log; a peer judges them against its own view.

Price in base units (1 credit = 10**6), all factors in parts per million::

    base     = chunk_fee + ceil(work_units / units_per_base)
    priority = priority_ppm[priority]                         (LOW 0.8 … CRITICAL 2.5)
    scarcity = (S·10⁶ + K·D) · 10⁶ / (K·S + D·10⁶)             (S supply, D demand, K = scarcity_max_ppm)
    rep      = 10⁶ − spread + 2·spread·reputation / 10⁶       (spread = reputation_spread_ppm)
    load     = 10⁶ + load_premium · load / 10⁶
    price    = base · priority · scarcity · rep · load // 10²⁴

``scarcity`` is 1 when supply meets demand, falls toward 1/k (k = K/10⁶) with idle capacity and
rises toward k when demand outruns free slots; it never decreases with demand nor increases with
supply. The default constants make ``base × priority × rep`` equal ``Task.estimate_cost``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import orjson

from ..core.task import PRIORITY_FACTOR_PPM, TaskPriority, coerce_priority
from ..errors import TaskError
from ..projections.runner import ProjectionSet
from ..projections.status import OPEN_CHUNK, TERMINAL, ChunkStatus

PPM = 1_000_000
FORMULA_VERSION = 1
NEUTRAL_REPUTATION_PPM = 500_000


def _default_priorities() -> tuple[int, int, int, int]:
    """The task's priority factors (LOW, NORMAL, HIGH, CRITICAL), so the default price of a task
    follows ``Task.estimate_cost``."""
    low, normal, high, critical = (PRIORITY_FACTOR_PPM[p] for p in sorted(PRIORITY_FACTOR_PPM))
    return low, normal, high, critical


@dataclasses.dataclass(frozen=True)
class PricingParams:
    """The pricing constants; a network may fix them in its genesis ``params.pricing``."""

    chunk_fee: int = 1_000              # base units per chunk (0.001 credit): scheduling, events, checks
    units_per_base: int = 1_000         # work units bought by one base unit
    scarcity_max_ppm: int = 3_000_000   # market factor ranges over [1/3, 3]
    reputation_spread_ppm: int = 500_000  # reputation 0 → ×0.5, 1 → ×1.5
    load_premium_ppm: int = 500_000     # a fully loaded node charges ×1.5
    priority_ppm: tuple[int, int, int, int] = _default_priorities()

    def __post_init__(self) -> None:
        for name in ("chunk_fee", "units_per_base", "scarcity_max_ppm", "reputation_spread_ppm",
                     "load_premium_ppm"):
            _whole(getattr(self, name), name)
        if self.units_per_base < 1:
            raise TaskError("pricing: units_per_base must be at least 1")
        if self.scarcity_max_ppm < PPM:
            raise TaskError("pricing: scarcity_max_ppm must be at least 1_000_000")
        if self.reputation_spread_ppm > PPM:
            raise TaskError("pricing: reputation_spread_ppm must be at most 1_000_000")
        factors = tuple(self.priority_ppm)
        if len(factors) != len(TaskPriority) or any(_whole(f, "priority_ppm") < 1 for f in factors) \
                or list(factors) != sorted(factors):
            raise TaskError("pricing: priority_ppm needs one positive, non-decreasing factor per priority")
        object.__setattr__(self, "priority_ppm", factors)

    @classmethod
    def from_genesis(cls, params: Mapping[str, Any]) -> PricingParams:
        given = dict(params.get("pricing") or {})
        if "priority_ppm" in given:
            given["priority_ppm"] = tuple(given["priority_ppm"])
        return cls(**{k: v for k, v in given.items() if k in cls.__dataclass_fields__})

    def priority_factor(self, priority: Any) -> int:
        p = coerce_priority(priority)
        return self.priority_ppm[list(TaskPriority).index(p)]


def _whole(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise TaskError(f"pricing: {what} must be a non-negative integer, got {value!r}")
    return value


@dataclasses.dataclass(frozen=True)
class MarketSnapshot:
    """The market as one node sees it at one point of its log; integers only."""

    supply: int            # free task slots on online nodes
    demand: int            # chunks of unfinished tasks still wanting a result
    capacity: int          # all task slots on online nodes
    online_nodes: int
    reputation_ppm: int    # the quoting node's reputation
    load_ppm: int          # the quoting node's load

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Quote:
    """A price for one chunk (base units) and every integer it was derived from."""

    price: int
    inputs: dict[str, int]

    def event_body(self, task_id: str, chunks: list[int] | None = None) -> dict[str, Any]:
        """The ``task.quote`` body carrying this quote."""
        body: dict[str, Any] = {"task_id": task_id, "price": self.price, "inputs": dict(self.inputs)}
        if chunks is not None:
            body["chunks"] = sorted(chunks)
        return body


_INPUT_KEYS = ("v", "work_units", "priority", "priority_ppm", "supply", "demand", "reputation_ppm", "load_ppm",
               "chunk_fee", "units_per_base", "scarcity_max_ppm", "reputation_spread_ppm", "load_premium_ppm")


def _capacity_of(capabilities_json: str) -> int:
    try:
        caps = orjson.loads(capabilities_json)
        slots = caps.get("max_concurrent_tasks", 0) if isinstance(caps, dict) else 0
    except orjson.JSONDecodeError:
        return 0
    return slots if type(slots) is int and slots > 0 else 0


class PricingEngine:
    """Quotes chunk prices from the projections; re-derives anyone's quote from its inputs."""

    def __init__(self, runner: ProjectionSet | None = None, node_id: str | None = None, *,
                 params: PricingParams | None = None) -> None:
        self.runner = runner
        self.node_id = node_id
        if params is None and runner is not None:
            state = runner.ledger.state
            genesis = state.genesis.body.get("params", {}) if state.genesis else {}
            params = PricingParams.from_genesis(genesis)
        self.params = params or PricingParams()
        decimals = runner.ledger.state.decimals if runner is not None else 6
        self._unit = 10 ** (decimals if isinstance(decimals, int) else 6)  # base units per credit

    # ------------------------------------------------------------------ market
    def snapshot(self, runner: ProjectionSet | None = None, node_id: str | None = None,
                 load_ppm: int = 0) -> MarketSnapshot:
        """Supply, demand and the quoter's standing from the nodes, tasks and reputation projections.

        Supply = Σ over online, unforked nodes of max(0, max_concurrent_tasks − chunks assigned to it
        and not yet reported). Demand = chunks of unfinished tasks that are open, assigned, or
        errored/rejected (those are reassigned). Costs O(nodes + chunks of unfinished tasks).
        """
        runner = runner if runner is not None else self.runner
        node_id = node_id if node_id is not None else self.node_id
        if type(load_ppm) is not int or not 0 <= load_ppm <= PPM:
            raise TaskError(f"load_ppm must be an integer 0..1_000_000, got {load_ppm!r}")
        if runner is None:
            return MarketSnapshot(0, 0, 0, 0, NEUTRAL_REPUTATION_PPM, load_ppm)
        nodes = runner.nodes.nodes
        tasks = runner.tasks
        slots = {key: _capacity_of(row["capabilities"]) for key, row in nodes.items()
                 if row["status"] == "online" and row["forked_at"] is None}
        busy: dict[str, int] = {}
        demand = 0
        for task_id, task in tasks.tasks.items():
            if task["status"] in TERMINAL:
                continue
            for i in range(task["chunks_total"]):
                chunk = tasks.chunks.get((task_id, i))
                if chunk is None or chunk["status"] not in OPEN_CHUNK:
                    continue
                demand += 1
                if chunk["status"] == ChunkStatus.ASSIGNED and chunk["worker"] in slots:
                    busy[chunk["worker"]] = busy.get(chunk["worker"], 0) + 1
        supply = sum(max(0, cap - busy.get(key, 0)) for key, cap in slots.items())
        reputation = runner.reputation.score(node_id) if node_id else NEUTRAL_REPUTATION_PPM
        return MarketSnapshot(supply=supply, demand=demand, capacity=sum(slots.values()), online_nodes=len(slots),
                              reputation_ppm=int(reputation), load_ppm=load_ppm)

    # ------------------------------------------------------------------ quoting
    def inputs_for(self, work_units: int, priority: Any, market: MarketSnapshot) -> dict[str, int]:
        """The integers a quote names: what was observed plus the constants applied."""
        p = self.params
        return {"v": FORMULA_VERSION, "work_units": _whole(work_units, "work_units"),
                "priority": int(coerce_priority(priority)), "priority_ppm": p.priority_factor(priority),
                "supply": market.supply, "demand": market.demand, "reputation_ppm": market.reputation_ppm,
                "load_ppm": market.load_ppm, "chunk_fee": p.chunk_fee, "units_per_base": p.units_per_base,
                "scarcity_max_ppm": p.scarcity_max_ppm, "reputation_spread_ppm": p.reputation_spread_ppm,
                "load_premium_ppm": p.load_premium_ppm}

    def quote(self, *, work_units: int, priority: Any = TaskPriority.NORMAL, market: MarketSnapshot,
              max_price: int | None = None) -> Quote | None:
        """This node's price for one chunk, or None when it exceeds ``max_price`` (base units)."""
        inputs = self.inputs_for(work_units, priority, market)
        price = self.price_from_inputs(inputs)
        if max_price is not None and price > _whole(max_price, "max_price"):
            return None
        return Quote(price, inputs)

    def quote_task(self, runner: ProjectionSet | None, node_id: str | None, *, work_units: int,
                   priority: Any = TaskPriority.NORMAL, max_price: int | None = None,
                   load_ppm: int = 0) -> Quote | None:
        """Snapshot and quote in one call, for a consumer reacting to a ``task.submitted``.

        A ledger priority outside TaskPriority (the schema allows 0..10) is clamped to LOW..CRITICAL,
        so a foreign task never makes the quoting node fail.
        """
        if type(priority) is int:
            priority = min(max(priority, min(TaskPriority)), max(TaskPriority))
        market = self.snapshot(runner, node_id, load_ppm)
        return self.quote(work_units=work_units, priority=priority, market=market, max_price=max_price)

    @staticmethod
    def price_from_inputs(inputs: Mapping[str, Any]) -> int:
        """The price a quote's inputs determine. Pure and integer-only: the same on every peer."""
        if not isinstance(inputs, Mapping):
            raise TaskError("quote inputs must be an object")
        missing = [k for k in _INPUT_KEYS if k not in inputs]
        if missing:
            raise TaskError(f"quote inputs lack {', '.join(missing)}")
        x = {k: _whole(inputs[k], k) for k in _INPUT_KEYS}
        if x["v"] != FORMULA_VERSION:
            raise TaskError(f"unknown pricing formula version {x['v']}")
        if x["units_per_base"] < 1 or x["scarcity_max_ppm"] < PPM or x["reputation_spread_ppm"] > PPM:
            raise TaskError("quote inputs hold impossible pricing constants")
        if x["reputation_ppm"] > PPM or x["load_ppm"] > PPM:
            raise TaskError("quote inputs: reputation_ppm and load_ppm are at most 1_000_000")
        base = x["chunk_fee"] + -(-x["work_units"] // x["units_per_base"])
        s, d, k = x["supply"], x["demand"], x["scarcity_max_ppm"]
        scarcity = PPM if s == 0 and d == 0 else (s * PPM + k * d) * PPM // (k * s + d * PPM)
        spread = x["reputation_spread_ppm"]
        reputation = PPM - spread + 2 * spread * x["reputation_ppm"] // PPM
        load = PPM + x["load_premium_ppm"] * x["load_ppm"] // PPM
        return base * x["priority_ppm"] * scarcity * reputation * load // PPM ** 4

    @classmethod
    def verify_quote(cls, body: Mapping[str, Any]) -> bool:
        """Does a ``task.quote`` body's price follow from its inputs?"""
        try:
            return cls.price_from_inputs(body["inputs"]) == body["price"]
        except (TaskError, KeyError, TypeError):
            return False

    # ------------------------------------------------------------------ user-facing (credits)
    def get_market_state(self) -> dict[str, Any]:
        """The market in readable numbers (credits and ratios are floats here, for display only)."""
        market = self.snapshot()
        ref = self.quote(work_units=0, priority=TaskPriority.NORMAL,
                         market=dataclasses.replace(market, reputation_ppm=NEUTRAL_REPUTATION_PPM, load_ppm=0))
        assert ref is not None
        s, d, k = market.supply, market.demand, self.params.scarcity_max_ppm
        scarcity = PPM if s == 0 and d == 0 else (s * PPM + k * d) * PPM // (k * s + d * PPM)
        return {"online_nodes": market.online_nodes, "capacity": market.capacity, "supply": market.supply,
                "demand": market.demand,
                "utilization": (market.capacity - market.supply) / market.capacity if market.capacity else 0.0,
                "demand_ratio": d / s if s else (math.inf if d else 0.0),
                "scarcity_multiplier": scarcity / PPM, "reference_chunk_price": ref.price / self._unit,
                "reputation": market.reputation_ppm / PPM}

    def estimate_price(self, task_requirements: Mapping[str, Any] | None = None, *,
                       work_units: int | None = None, priority: Any = TaskPriority.NORMAL,
                       load_ppm: int = 0) -> float:
        """Estimated price of one chunk in credits at the current market (no max_price cut-off).

        ``work_units`` defaults to the requirements' ``work_units`` (chunk requirements carry it).
        """
        req = dict(task_requirements or {})
        if work_units is None:
            work_units = req.get("work_units", 0)
        quote = self.quote(work_units=work_units, priority=priority, market=self.snapshot(load_ppm=load_ppm))
        assert quote is not None
        return quote.price / self._unit


__all__ = ["MarketSnapshot", "PricingEngine", "PricingParams", "Quote", "FORMULA_VERSION"]
