#!/usr/bin/env python3
"""Where the writer's CPU goes per ingested event: the pipelined ingest of `ledger_bench`
(pages parsed and signature-checked in the worker processes, `Ledger.check_wire_ahead`),
with each stage of `Ledger.ingest` timed in thread CPU time on the writer, beside one raw
single-thread verify measured the same way in the same run.

    pip install -e .                              # nothing beyond the package itself
    python bench/ingest_profile.py                # 20,000 events in pages of 1,000, 2 trials
    python bench/ingest_profile.py --events 5000 --trials 1

On two cores the ingest goal (1.0 x raw verify) holds when the writer's part plus the
workers' parse stays within one verify per event (docs/performance.md): this prints both.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ledger_bench  # noqa: E402 -- after sys.path gets this checkout

from ledger_net.ledger import chain, crypto_pool, delivery, known  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.events import Event  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.store import writes  # noqa: E402 -- after sys.path gets this checkout

STAGES: list[tuple[Any, str, str]] = [
    (chain.Ledger, "ingest", "Ledger.ingest, in all"),
    (writes.EventWrites, "_raw_write", "  the store's write and commit"),
    (writes.EventWrites, "_raw_insert", "    of which the events' insert"),
    (writes.EventWrites, "_merkle_insert", "    of which the Merkle nodes"),
    (delivery.Delivery, "run", "  delivery and the judge"),
    (known.KnownHashes, "unknown", "  which events are new (one query)"),
    (chain.Ledger, "_queue", "  rows and the judge snapshot"),
    (chain.Ledger, "_on_commit", "  listeners and the hash cache"),
    (chain.Ledger, "_check_batch", "  network and signature marks"),
    (crypto_pool.WireChecks, "result", "building the events (from_checked)"),
]


def timed(spent: collections.Counter[str], fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] += time.thread_time() - start
    return wrapper


def cpu_per(fn: Callable[[Any], Any], items: list[Any]) -> float:
    """Thread CPU seconds per item of `fn` over `items` (best of 3)."""
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        for item in items:
            fn(item)
        best = min(best, (time.thread_time() - start) / len(items))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    _, log = ledger_bench.make_economy(args.events, 50)
    wire = [(e.raw, e.sig) for e in log]
    sample = log[:3000]
    verify = cpu_per(Event.verify_signature, sample)
    parse = cpu_per(lambda e: Event.from_wire(e.raw, e.sig), sample)
    print(f"raw verify, 1 thread: {1e6 * verify:6.1f} us CPU; Event.from_wire (the workers' parse): "
          f"{1e6 * parse:5.1f} us CPU")
    spent: collections.Counter[str] = collections.Counter()
    for owner, name, label in STAGES:
        setattr(owner, name, timed(spent, getattr(owner, name), label))
    for _ in range(args.trials):
        spent.clear()
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
            n, (wall, cpu) = ledger_bench.trial_ingest(f"sqlite:///{tmp}/bench.db", wire, args.batch)
        print(f"ingest: {n / wall:,.0f} events/s; this process {1e6 * cpu / n:.1f} us CPU per event "
              f"(workers not counted); per event, on the writer thread:")
        for _, _, label in STAGES:
            print(f"  {label:<38}{1e6 * spent[label] / n:7.2f} us")


if __name__ == "__main__":
    main()
