#!/usr/bin/env python3
"""Pipelined foreign ingests with the read-ahead signature checks on threads, in worker
processes, and parsing plus signature checks in worker processes (`Ledger.check_wire_ahead`,
what the node's feed reader does), alternated in one process (same economy, same SQLite
setup, raw single-thread verify measured in the same run), so a changing load on a shared
machine touches all alike.

    python bench/ingest_workers_bench.py             # 20,000 events, 3 rounds, best of 3 each
    python bench/ingest_workers_bench.py --events 5000 --rounds 1
    python bench/ingest_workers_bench.py --pg-url postgresql+psycopg://ledger:ledger@127.0.0.1:5432/ledger_test

Each line: ingests/s, the ratio to raw verify, and events per CPU-second of this process
(the worker processes' CPU is not counted: the checks left this process).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ledger_bench  # noqa: E402 -- after sys.path gets this checkout

from ledger_net.ledger import crypto_pool  # noqa: E402 -- after sys.path gets this checkout


def best_ingest(backend: ledger_bench.Backend, wire: list[tuple[bytes, bytes]], batch: int, trials: int,
                parse_ahead: bool) -> tuple[float, float]:
    """(best wall rate, that trial's rate per CPU-second of this process)."""
    best, per_cpu = 0.0, 0.0
    for _ in range(trials):
        with backend.fresh() as url:
            n, (wall, cpu) = ledger_bench.trial_ingest(url, wire, batch, parse_ahead)
        if n / wall > best:
            best, per_cpu = n / wall, n / max(cpu, 1e-9)
    return best, per_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--pg-url", help="ingest into PostgreSQL (a scratch database per trial) instead of SQLite")
    args = parser.parse_args()
    backend: ledger_bench.Backend = (ledger_bench.PostgresBackend(args.pg_url) if args.pg_url
                                     else ledger_bench.SQLiteBackend())
    _, log = ledger_bench.make_economy(args.events, 50)
    wire = [(e.raw, e.sig) for e in log]
    verify = 0.0
    for _ in range(5):
        n, (wall, _) = ledger_bench.bench_verify(5_000)
        verify = max(verify, n / wall)
    print(f"raw PyNaCl verify, 1 thread  {verify:>8,.0f} /s (best of 5; later ratios use the best so far)")
    processes_from = crypto_pool.PROCESS_FROM
    for _ in range(args.rounds):
        for _ in range(2):  # the baseline is the best of every trial so far: a quiet moment cannot flatter a ratio
            n, (wall, _) = ledger_bench.bench_verify(5_000)
            verify = max(verify, n / wall)
        for name, threshold, parse_ahead in (("threads", 10**12, False), ("processes", processes_from, False),
                                             ("processes, parsed there", processes_from, True)):
            crypto_pool.PROCESS_FROM = threshold
            rate, per_cpu = best_ingest(backend, wire, args.batch, args.trials, parse_ahead)
            print(f"ingests, checks on {name:<25}{rate:>8,.0f} /s  {rate / verify:.2f} × verify  "
                  f"[{per_cpu:,.0f} per CPU-s of this process]", flush=True)
    crypto_pool.PROCESS_FROM = processes_from


if __name__ == "__main__":
    main()
