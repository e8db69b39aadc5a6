"""Routing: which workers run which chunks, chosen from their bids.

1. **Filter** (hard): a bid is dropped when its worker is excluded (failed this chunk before,
   proven forker), has reputation below ``min_reputation_ppm`` (a proven forker is pinned to 0),
   asks more than ``max_price``, or fails the task's requirements under the same rules as
   :meth:`Node.is_available_for_task` applied to the capabilities it signed into the ledger
   (:func:`~ledger_net.core.node.unmet_requirements`; live CPU/RAM are the worker's own check
   before it bids). One bid per worker counts: its cheapest (then lowest quote hash).
2. **Rank** by an integer *effective cost* — the price adjusted for risk and queueing::

       cost = (price + 1) · (10⁶ + load_ppm) · 10⁶ // max(reputation_ppm, 1)

   lower is better: cheaper, more reputable, less loaded workers come first. Ties go to the lower
   price, then higher reputation, then lower load, then the worker id, so the same inputs always
   give the same ranking.
3. **Assign** chunks in index order, round-robin over the ranked list (spreading load), giving each
   chunk ``replicas`` distinct workers and never more chunks to a worker than its free places
   (``max_concurrent_tasks × queue_per_slot`` minus ``current_load``): ``max_concurrent_tasks``
   chunks run at once and, with ``queue_per_slot`` > 1, more wait in the worker's queue so a
   slot never idles while the next chunk's assignment travels (tiny tasks are otherwise
   bounded by that round trip, not by the work). With too few workers or slots a chunk gets
   as many as possible; the :class:`Assignment` says which chunks fell short and by how much.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from ..core.node import Capabilities, unmet_requirements, validate_requirements
from ..errors import NodeError, TaskError
from ..projections.runner import ProjectionSet
from ..projections.status import TERMINAL, ChunkStatus
from .pricing import PricingEngine

log = logging.getLogger(__name__)

PPM = 1_000_000


@dataclasses.dataclass(frozen=True)
class Bid:
    """A worker's offer for a task's chunks: its quoted price and what the router weighs."""

    worker: str
    price: int
    reputation_ppm: int
    load_ppm: int
    capabilities: Capabilities | Mapping[str, Any]
    quote_hash: str | None = None

    def problem(self) -> str | None:
        """Why the bid is malformed (None when it is well formed)."""
        if not isinstance(self.worker, str) or not self.worker:
            return "worker must be a non-empty string"
        for name in ("price", "reputation_ppm", "load_ppm"):
            v = getattr(self, name)
            if type(v) is not int or v < 0 or (name != "price" and v > PPM):
                return f"{name} must be an integer{' 0..1_000_000' if name != 'price' else ' >= 0'}, got {v!r}"
        return None


def score(bid: Bid) -> int:
    """The effective cost of a bid (lower ranks first); see the module docstring."""
    return (bid.price + 1) * (PPM + bid.load_ppm) * PPM // max(bid.reputation_ppm, 1)


def _rank_key(bid: Bid) -> tuple[int, int, int, int, str]:
    return (score(bid), bid.price, -bid.reputation_ppm, bid.load_ppm, bid.worker)


class Assignment(dict[int, list[str]]):
    """chunk index → workers (best first). Also says what fell short and why bids were dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.replicas = 1
        self.ranking: list[str] = []              # eligible workers, best first
        self.bids: dict[str, Bid] = {}            # the bid that counted, per eligible worker
        self.rejected: dict[str, str] = {}        # worker → why its bid was dropped
        self.shortfall: dict[int, int] = {}       # chunk → replicas it is missing

    @property
    def complete(self) -> bool:
        return not self.shortfall

    @property
    def unassigned(self) -> list[int]:
        """Chunks that got no worker at all."""
        return sorted(c for c, workers in self.items() if not workers)

    def price_of(self, worker: str) -> int:
        return self.bids[worker].price

    def explain(self) -> str:
        if self.complete:
            return f"all {len(self)} chunks have {self.replicas} worker(s)"
        parts = [f"{len(self.shortfall)} of {len(self)} chunks lack workers "
                 f"({sum(self.shortfall.values())} replica slots unfilled; {len(self.ranking)} eligible)"]
        if self.rejected:
            parts.append("dropped: " + "; ".join(f"{w[:16]}: {r}" for w, r in sorted(self.rejected.items())))
        return ", ".join(parts)


class Router:
    """Deterministic chunk routing over bids (no clocks, no randomness)."""

    def __init__(self, *, min_reputation_ppm: int = 1, queue_per_slot: int = 1) -> None:
        if type(min_reputation_ppm) is not int or not 0 <= min_reputation_ppm <= PPM:
            raise TaskError(f"min_reputation_ppm must be an integer 0..1_000_000, got {min_reputation_ppm!r}")
        if type(queue_per_slot) is not int or queue_per_slot < 1:
            raise TaskError(f"queue_per_slot must be a positive integer, got {queue_per_slot!r}")
        self.min_reputation_ppm = min_reputation_ppm
        self.queue_per_slot = queue_per_slot

    def rank(self, bids: Iterable[Bid], requirements: Mapping[str, Any] | None = None, *,
             exclude: Iterable[str] = (), current_load: Mapping[str, int] | None = None,
             max_price: int | None = None, rejected: dict[str, str] | None = None
             ) -> list[tuple[Bid, Capabilities]]:
        """Eligible bids (one per worker) with their parsed capabilities, best first."""
        try:
            req = validate_requirements(requirements or {})
        except NodeError as exc:
            raise TaskError(f"bad task requirements: {exc}") from exc
        if max_price is not None and (type(max_price) is not int or max_price < 0):
            raise TaskError(f"max_price must be a non-negative integer of base units, got {max_price!r}")
        excluded = set(exclude)
        load = dict(current_load or {})
        dropped = rejected if rejected is not None else {}
        best: dict[str, Bid] = {}
        for bid in bids:
            if not isinstance(bid, Bid):
                raise TaskError(f"bids must be Bid objects, got {type(bid).__name__}")
            problem = bid.problem()
            if problem:
                dropped[str(bid.worker)] = f"malformed bid: {problem}"
                continue
            held = best.get(bid.worker)
            if held is None or (bid.price, bid.quote_hash or "") < (held.price, held.quote_hash or ""):
                best[bid.worker] = bid
        eligible: list[tuple[Bid, Capabilities]] = []
        for worker, bid in best.items():
            dropped.pop(worker, None)
            if worker in excluded:
                dropped[worker] = "excluded (failed this work before or proven forker)"
                continue
            if bid.reputation_ppm < self.min_reputation_ppm:
                dropped[worker] = f"reputation {bid.reputation_ppm} ppm below {self.min_reputation_ppm}"
                continue
            if max_price is not None and bid.price > max_price:
                dropped[worker] = f"price {bid.price} above max_price {max_price}"
                continue
            try:
                caps = Capabilities.from_any(bid.capabilities)
            except (NodeError, TypeError) as exc:
                dropped[worker] = f"unreadable capabilities: {exc}"
                continue
            # busy only once its slots and its queue are full (load // q >= slots <=> load >= slots * q)
            unmet = unmet_requirements(caps, req, active_tasks=_count(load.get(worker, 0)) // self.queue_per_slot)
            if unmet:
                dropped[worker] = "; ".join(unmet)
                continue
            eligible.append((bid, caps))
        eligible.sort(key=lambda item: _rank_key(item[0]))
        return eligible

    def assign(self, chunks: Iterable[int], bids: Iterable[Bid], requirements: Mapping[str, Any] | None = None,
               replicas: int = 1, exclude: Iterable[str] | Mapping[int, Iterable[str]] = (),
               current_load: Mapping[str, int] | None = None, *, max_price: int | None = None) -> Assignment:
        """Give each chunk ``replicas`` distinct workers, spreading load; see the module docstring.

        ``exclude`` is a set of workers barred from every chunk, or a mapping chunk → workers
        barred from that chunk only (e.g. those that already failed it).
        """
        if type(replicas) is not int or replicas < 1:
            raise TaskError(f"replicas must be a positive integer, got {replicas!r}")
        indexes = sorted(set(_chunk_index(c) for c in chunks))
        per_chunk: dict[int, set[str]] = {}
        if isinstance(exclude, Mapping):
            per_chunk = {_chunk_index(k): set(v) for k, v in exclude.items()}
            exclude = ()
        result = Assignment()
        result.replicas = replicas
        load = dict(current_load or {})
        ranked = self.rank(bids, requirements, exclude=exclude, current_load=load, max_price=max_price,
                           rejected=result.rejected)
        result.ranking = [bid.worker for bid, _ in ranked]
        result.bids = {bid.worker: bid for bid, _ in ranked}
        slots = {bid.worker: max(0, caps.max_concurrent_tasks * self.queue_per_slot - _count(load.get(bid.worker, 0)))
                 for bid, caps in ranked}
        order = result.ranking
        n = len(order)
        pointer = 0
        for index in indexes:
            chosen: list[str] = []
            start = pointer
            for step in range(n):
                if len(chosen) == replicas:
                    break
                position = (start + step) % n
                worker = order[position]
                if slots[worker] > 0 and worker not in per_chunk.get(index, ()):
                    chosen.append(worker)
                    slots[worker] -= 1
                    pointer = (position + 1) % n  # the next chunk starts after the last worker used
            result[index] = chosen
            if len(chosen) < replicas:
                result.shortfall[index] = replicas - len(chosen)
        if result.shortfall:
            log.debug("routing: %s", result.explain())  # per step, per chunk: chatter, not the story
        return result


    def route(self, bids: Iterable[Any], chunks: Iterable[int], requirements: Mapping[str, Any] | None = None,
              *, replicas: int = 1, exclude: Iterable[str] | Mapping[int, Iterable[str]] = (),
              runner: ProjectionSet | None = None, current_load: Mapping[str, int] | None = None,
              max_price: int | None = None) -> Assignment:
        """:meth:`assign` for a consumer holding plain bid records (``worker``, ``price``,
        ``quote_hash``, ``inputs``) and the projection runner.

        With ``runner``, what the router weighs comes from this node's own view: reputation from
        the reputation projection, capabilities from the nodes projection, and (unless given)
        ``current_load`` = chunks of unfinished tasks assigned to each worker and not yet reported.
        The load is the one the quote names (``inputs.load_ppm``). ``Bid`` objects pass unchanged.
        """
        converted = [b if isinstance(b, Bid) else _bid_from_record(b, runner) for b in bids]
        if current_load is None and runner is not None:
            current_load = assigned_counts(runner)
        return self.assign(chunks, converted, requirements, replicas, exclude, current_load, max_price=max_price)


def assigned_counts(runner: ProjectionSet) -> dict[str, int]:
    """Chunks of unfinished tasks assigned to each worker and not yet reported (from projections)."""
    tasks = runner.tasks
    counts: dict[str, int] = {}
    for task_id, task in tasks.tasks.items():
        if task["status"] in TERMINAL:
            continue
        for i in range(task["chunks_total"]):
            chunk = tasks.chunks.get((task_id, i))
            if chunk is not None and chunk["status"] == ChunkStatus.ASSIGNED and chunk["worker"]:
                counts[chunk["worker"]] = counts.get(chunk["worker"], 0) + 1
    return counts


def _bid_from_record(record: Any, runner: ProjectionSet | None) -> Bid:
    worker, price = record.worker, record.price
    inputs = getattr(record, "inputs", None) or {}
    load = getattr(record, "load_ppm", None)
    if load is None:
        load = inputs.get("load_ppm", 0) if isinstance(inputs, Mapping) else 0
    load = load if type(load) is int and 0 <= load <= PPM else PPM
    if runner is not None:
        reputation = int(runner.reputation.score(worker))
        row = runner.nodes.nodes.get(worker)
        caps: Any = orjson.loads(row["capabilities"]) if row is not None and row["forked_at"] is None else None
        if caps is None:
            caps = {"max_concurrent_tasks": 0}  # unknown or forked: no slots
    else:
        reputation = getattr(record, "reputation_ppm", 500_000)
        caps = getattr(record, "capabilities", {})
    return Bid(worker=worker, price=price, reputation_ppm=reputation, load_ppm=load, capabilities=caps,
               quote_hash=getattr(record, "quote_hash", None))


def _chunk_index(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TaskError(f"chunk indexes must be non-negative integers, got {value!r}")
    return value


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise TaskError(f"current_load counts must be non-negative integers, got {value!r}")
    return value


def bids_from_quotes(runner: ProjectionSet, quotes: Sequence[Any], *, verify: bool = True) -> list[Bid]:
    """Bids from ``task.quote`` events, weighed by *this* node's view of the ledger.

    Reputation and capabilities come from our own projections (never from what the quoter
    claims); the load is the one the quote names. Quotes whose price does not follow from their
    inputs are skipped when ``verify`` is set.
    """
    nodes = runner.nodes.nodes
    reputation = runner.reputation
    out: list[Bid] = []
    for event in quotes:
        body = event.body
        if verify and not PricingEngine.verify_quote(body):
            continue
        row = nodes.get(event.author)
        if row is None or row["forked_at"] is not None:
            continue
        caps = orjson.loads(row["capabilities"])
        load = body.get("inputs", {}).get("load_ppm", 0)
        out.append(Bid(worker=event.author, price=body["price"], reputation_ppm=int(reputation.score(event.author)),
                       load_ppm=load if type(load) is int and 0 <= load <= PPM else PPM, capabilities=caps,
                       quote_hash=event.hash))
    return out


__all__ = ["Assignment", "Bid", "Router", "assigned_counts", "bids_from_quotes", "score"]
