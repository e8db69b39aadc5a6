"""Router: capability filter, ordering, spreading, replicas, exclusion, determinism; bids from quotes."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ledger_net.core.node import Capabilities
from ledger_net.core.private_ledger import private_network
from ledger_net.errors import TaskError
from ledger_net.market import MarketSnapshot, PricingEngine
from ledger_net.market.routing import Assignment, Bid, Router, bids_from_quotes, score

PPM = 1_000_000


def bid(worker: str, price: int = 100, rep: int = 500_000, load: int = 0, slots: int = 4, **caps: Any) -> Bid:
    return Bid(worker, price, rep, load, Capabilities(max_concurrent_tasks=slots, **caps).to_ledger(), f"q-{worker}")


def test_capability_filter_uses_node_rules_on_ledger_capabilities() -> None:
    bids = [bid("small", ram_gb=1.0), bid("nogpu"), bid("gpu", gpu_score=1.0, ram_gb=8.0),
            bid("mapper", ram_gb=8.0, gpu_score=1.0, task_types=["map"]),
            bid("wasm", ram_gb=8.0, gpu_score=1.0, sandbox_types=["wasm"])]
    req = {"ram_gb": 4.0, "gpu_percent": 20.0, "task_type": "matrix_ops", "sandbox_type": "process_isolation",
           "cpu_percent": 100.0, "timeout_seconds": 5}
    out = Router().assign([0], bids, req)
    assert out == {0: ["gpu"]}
    assert set(out.rejected) == {"small", "nogpu", "mapper", "wasm"}
    assert "ram" in out.rejected["small"] and "gpu" in out.rejected["nogpu"]
    assert "task type" in out.rejected["mapper"] and "sandbox" in out.rejected["wasm"]
    # float (seed) capability dicts are understood as well as the ledger's integer form
    floats = Bid("f", 1, 500_000, 0, Capabilities(ram_gb=8.0, gpu_score=1.0).to_dict())
    assert Router().assign([0], [floats], req)[0] == ["f"]


def test_malformed_requirements_and_arguments() -> None:
    with pytest.raises(TaskError):
        Router().assign([0], [bid("a")], {"timeout_seconds": 0})
    with pytest.raises(TaskError):
        Router().assign([0], [bid("a")], {}, replicas=0)
    with pytest.raises(TaskError):
        Router().assign([-1], [bid("a")], {})
    with pytest.raises(TaskError):
        Router().assign([0], [bid("a")], {}, current_load={"a": -1})
    with pytest.raises(TaskError):
        Router().assign([0], ["a"], {})  # type: ignore[list-item]


def test_malformed_bids_and_capabilities_are_dropped_not_fatal() -> None:
    bids = [Bid("neg", -1, 500_000, 0, {}), Bid("rep", 1, 2 * PPM, 0, {}),
            Bid("caps", 1, 500_000, 0, {"ram_mb": "lots"}), bid("ok")]
    out = Router().assign([0], bids, {})
    assert out == {0: ["ok"]} and set(out.rejected) == {"neg", "rep", "caps"}


def test_ordering_price_reputation_load_then_worker_id() -> None:
    router = Router()
    ranked = lambda bids: [b.worker for b, _ in router.rank(bids, {})]  # noqa: E731 -- a one-line probe
    assert ranked([bid("dear", price=200), bid("cheap", price=100)]) == ["cheap", "dear"]
    assert ranked([bid("meh", rep=400_000), bid("good", rep=900_000)]) == ["good", "meh"]
    assert ranked([bid("busy", load=800_000), bid("idle", load=0)]) == ["idle", "busy"]
    assert ranked([bid("b"), bid("a"), bid("c")]) == ["a", "b", "c"]
    # the combined score: a slightly dearer but far more reputable worker wins
    assert ranked([bid("cheap-shady", price=100, rep=100_000), bid("fair", price=120, rep=900_000)]) == \
        ["fair", "cheap-shady"]
    assert score(bid("x", price=0, rep=PPM)) == PPM and score(bid("x", price=0, rep=0)) > score(bid("y", price=0))


def test_spreading_round_robin_respects_slots_and_current_load() -> None:
    bids = [bid("a", price=10, slots=2), bid("b", price=20, slots=2), bid("c", price=30, slots=2)]
    out = Router().assign(range(6), bids, {})
    assert out == {0: ["a"], 1: ["b"], 2: ["c"], 3: ["a"], 4: ["b"], 5: ["c"]} and out.complete
    # a already runs one chunk of ours; c is full
    out = Router().assign(range(4), bids, {}, current_load={"a": 1, "c": 2})
    assert out == {0: ["a"], 1: ["b"], 2: ["b"], 3: []}
    assert out.shortfall == {3: 1} and out.unassigned == [3] and "c" in out.rejected
    assert "1 of 4 chunks lack workers" in out.explain()


def test_replicas_distinct_workers_and_shortfall() -> None:
    bids = [bid("a", price=10), bid("b", price=20), bid("c", price=30)]
    out = Router().assign([0, 1, 2], bids, {}, replicas=2)
    assert out == {0: ["a", "b"], 1: ["c", "a"], 2: ["b", "c"]}
    assert all(len(set(w)) == len(w) for w in out.values())
    out = Router().assign([0, 1], bids, {}, replicas=5)
    assert all(len(w) == 3 and len(set(w)) == 3 for w in out.values())
    assert out.shortfall == {0: 2, 1: 2} and not out.complete and out.replicas == 5


def test_exclusion_min_reputation_and_max_price() -> None:
    bids = [bid("a", price=10), bid("forker", price=1, rep=0), bid("failed", price=5), bid("dear", price=1000)]
    out = Router().assign([0, 1], bids, {}, exclude={"failed"}, max_price=500)
    assert out == {0: ["a"], 1: ["a"]}
    assert set(out.rejected) == {"forker", "failed", "dear"} and "excluded" in out.rejected["failed"]
    lenient = Router(min_reputation_ppm=0).assign([0], bids, {}, exclude={"failed"})
    assert lenient[0] == ["a"] and lenient.ranking == ["a", "dear", "forker"]  # zero reputation ranks last
    assert Router().assign([0], bids, {}, exclude={"a", "failed", "forker", "dear"}) == {0: []}


def test_one_bid_per_worker_the_cheapest() -> None:
    out = Router().assign([0, 1], [bid("a", price=50), bid("a", price=30), bid("b", price=40)], {}, replicas=2)
    assert out.price_of("a") == 30 and out.bids["a"].price == 30
    assert out == {0: ["a", "b"], 1: ["a", "b"]}


def test_deterministic_whatever_the_bid_order() -> None:
    bids = [bid(f"w{i}", price=100 + (i * 37) % 50, rep=300_000 + (i * 71_000) % 600_000, load=(i * 13) % 5 * 1000,
                slots=1 + i % 3) for i in range(12)]
    expected = Router().assign(range(20), bids, {"ram_gb": 0.5}, replicas=2)
    rng = random.Random(7)
    for _ in range(10):
        shuffled = list(bids)
        rng.shuffle(shuffled)
        got = Router().assign(reversed(range(20)), shuffled, {"ram_gb": 0.5}, replicas=2)
        assert got == expected and got.ranking == expected.ranking
    total = sum(len(w) for w in expected.values())
    assert total == min(40, sum(1 + i % 3 for i in range(12)))


def test_assignment_is_a_dict() -> None:
    out = Router().assign([], [bid("a")], {})
    assert isinstance(out, Assignment) and isinstance(out, dict) and out == {} and out.complete


def test_bids_from_quote_events_use_our_own_view() -> None:
    ledger, runner = private_network("routing")
    ledger.append("node.joined", {"name": "me", "url": "http://127.0.0.1:1",
                                  "capabilities": Capabilities(max_concurrent_tasks=2).to_ledger()})
    engine = PricingEngine(runner, ledger.node_id)
    market = engine.snapshot(load_ppm=300_000)
    quote = engine.quote(work_units=100, market=market)
    assert quote is not None
    good = ledger.append("task.quote", quote.event_body("t1"))
    forged = ledger.append("task.quote", {**quote.event_body("t1"), "price": 1})
    bids = bids_from_quotes(runner, [good, forged])
    assert len(bids) == 1
    b = bids[0]
    assert (b.worker, b.price, b.load_ppm, b.quote_hash) == (ledger.node_id, quote.price, 300_000, good.hash)
    assert b.reputation_ppm == runner.reputation.score(ledger.node_id)
    assert Router().assign([0, 1, 2], bids, {}) == {0: [ledger.node_id], 1: [ledger.node_id], 2: []}
    fake = MarketSnapshot(0, 0, 0, 0, 0, 0)
    assert fake.supply == 0


def test_per_chunk_exclusion() -> None:
    bids = [bid("a", price=10), bid("b", price=20)]
    out = Router().assign([0, 1, 2], bids, {}, exclude={1: {"b"}, 2: {"a", "b"}})
    assert out == {0: ["a"], 1: ["a"], 2: []} and out.shortfall == {2: 1}


def test_route_weighs_plain_bid_records_by_our_projections() -> None:
    from dataclasses import dataclass

    @dataclass
    class Record:  # what the execution engine keeps per task.quote
        worker: str
        price: int
        quote_hash: str
        inputs: dict[str, int]

    ledger, runner = private_network("route")
    me = ledger.node_id
    ledger.append("credit.minted", {"to": me, "amount": 10**9, "reason": "t"})
    ledger.append("node.joined", {"name": "me", "url": "http://127.0.0.1:1",
                                  "capabilities": Capabilities(max_concurrent_tasks=3).to_ledger()})
    ledger.append("task.submitted", {"task_id": "t0", "task_type": "map", "escrow": 1000, "max_price": 100,
                                     "chunks": 2, "spec": {}})
    ledger.append("task.assigned", {"task_id": "t0", "chunk": 0, "worker": me, "price": 1})
    records = [Record(me, 50, "h1", {"load_ppm": 10}), Record("f" * 64, 1, "h2", {"load_ppm": 0})]
    plan = Router().route(records, [0, 1, 2], {"ram_gb": 0.5}, replicas=1, exclude={}, runner=runner)
    # one of my 3 slots is taken by t0's assigned chunk; the unknown worker has no capabilities: no slots
    assert plan == {0: [me], 1: [me], 2: []} and plan.shortfall == {2: 1}
    assert plan.bids[me].reputation_ppm == runner.reputation.score(me) and plan.bids[me].load_ppm == 10
    assert "f" * 64 in plan.rejected
    assert Router().route(records, [0, 1, 2], {}, runner=runner, current_load={})[2] == [me]


def test_queue_per_slot_lets_a_worker_hold_more_chunks_than_it_runs_at_once() -> None:
    bids = [bid("a", price=10, slots=2), bid("b", price=20, slots=1)]
    out = Router(queue_per_slot=3).assign(range(10), bids, {})
    held = {w: sum(ws.count(w) for ws in out.values()) for w in ("a", "b")}
    assert held == {"a": 6, "b": 3} and out.shortfall == {9: 1}  # 2x3 and 1x3 places, then full
    out = Router(queue_per_slot=3).assign(range(4), bids, {}, current_load={"a": 5, "b": 3})
    assert out == {0: ["a"], 1: [], 2: [], 3: []} and "b" in out.rejected
    with pytest.raises(TaskError, match="queue_per_slot"):
        Router(queue_per_slot=0)
