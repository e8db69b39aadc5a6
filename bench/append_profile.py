#!/usr/bin/env python3
"""Where the time of the ledger's hot paths goes: the top-20 table of docs/performance.md.

    pip install -e .[bench]                            # py-spy comes with the bench extra
    python bench/append_profile.py single              # 3,000 one-event appends, cProfile top 20
    python bench/append_profile.py batch --events 20000
    python bench/append_profile.py ingest --events 20000
    python bench/append_profile.py single --py-spy     # sampled by py-spy instead (no tracing overhead)
    python bench/append_profile.py single --commits --events 6000   # every commit timed, WAL
                                                       # checkpoints by the writer vs the store's thread

`single` appends one event per commit on a SQLite file in a temp dir, `batch` appends in
batches of 500, `ingest` ingests a generated economy (bench/ledger_bench.py's make_economy)
pipelined as a reader of pages does (verify_ahead). cProfile slows pure-Python code more
than C calls, so its shares flatter the Python side; `--py-spy` samples the running process
(py-spy must be on PATH) and prints self and inclusive shares of the loop's samples.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger_net.ledger.chain import Ledger  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.events import Event  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.identity import Identity  # noqa: E402 -- after sys.path gets this checkout

LOOP_MARK = "hot_loop"  # the function py-spy's samples are counted under


def hot_loop(mode: str, ledger: Ledger, n: int, wire: list[tuple[bytes, bytes]]) -> None:
    to = Identity.generate().node_id
    if mode == "single":
        for i in range(n):
            ledger.append("credit.transfer", {"to": to, "amount": 1 + i % 7})
    elif mode == "batch":
        items = [("credit.transfer", {"to": to, "amount": 1 + i % 7}, ()) for i in range(500)]
        for _ in range(n // 500):
            ledger.append_batch(items)
    else:
        ahead = None
        for i in range(0, len(wire) + 1000, 1000):
            events = [Event.from_wire(raw, sig) for raw, sig in wire[i:i + 1000]]
            checks = ledger.verify_ahead(events) if events else None
            if ahead is not None:
                ledger.ingest(ahead[0], checks=ahead[1])
            ahead = (events, checks) if events else None


def setup(mode: str, n: int, tmp: str) -> tuple[Ledger, list[tuple[bytes, bytes]]]:
    ledger = Ledger.open(f"sqlite:///{tmp}/ledger.db", Identity.generate())
    if mode == "ingest":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from ledger_bench import make_economy

        _, log = make_economy(n + 1, 50)
        ledger.ingest(log[:1])
        return ledger, [(e.raw, e.sig) for e in log[1:]]
    ledger.create_network("profile")
    ledger.append("credit.minted", {"to": ledger.node_id, "amount": 10**15, "reason": "profile"})
    return ledger, []


def run(mode: str, n: int, profile: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-profile-") as tmp:
        ledger, wire = setup(mode, n, tmp)
        profiler = cProfile.Profile() if profile else None
        start, cpu = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        hot_loop(mode, ledger, n, wire)
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        ledger.close()
    print(f"{mode}: {n:,} events, {n / wall:,.0f}/s wall, {n / cpu:,.0f} per CPU-second"
          f"{' (under cProfile)' if profile else ''}")
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(20)
        print("\n".join(line for line in out.getvalue().splitlines()
                        if line.strip() and not line.startswith(("   Ordered", "   List"))))


def py_spy(mode: str, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ledger-profile-") as tmp:
        raw = os.path.join(tmp, "samples.txt")
        subprocess.run(["py-spy", "record", "-r", "1000", "-f", "raw", "-o", raw, "--", sys.executable,
                        __file__, mode, "--events", str(n), "--plain"], check=True)
        own: Counter[str] = Counter()
        inclusive: Counter[str] = Counter()
        total = 0
        with open(raw) as f:
            for line in f:
                stack, count = line.rsplit(" ", 1)
                if LOOP_MARK not in stack:
                    continue
                frames = [frame.split(" (")[0] + " " + frame.rsplit("/", 1)[-1].rstrip(")") for frame in
                          stack.split(";")]
                total += int(count)
                own[frames[-1]] += int(count)
                for frame in {fr.split(" ")[0] for fr in frames}:
                    inclusive[frame] += int(count)
    print(f"{total:,} samples in the loop; self (top 20):")
    for frame, count in own.most_common(20):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("inclusive (top 25):")
    for frame, count in inclusive.most_common(25):
        print(f"  {100 * count / total:5.1f}%  {frame}")


def commits(n: int, trials: int = 3) -> None:
    """Time every commit of `n` one-event appends, the writer checkpointing the WAL itself
    (auto-checkpoint at 1,000 pages, as before ledger/store/wal.py) and the store's thread
    doing it, alternating, `trials` times each."""
    import statistics

    def trial(background: bool) -> str:
        with tempfile.TemporaryDirectory(prefix="ledger-profile-") as tmp:
            ledger, _ = setup("single", n, tmp)
            store = ledger.store
            if not background:
                store.wal = None
                store._writer = store.engine.raw_connection()
                store._writer.cursor().execute("PRAGMA wal_autocheckpoint=1000")
            raw, times = store._writer, []

            class Timed:  # the writer's connection, its commit timed
                def __getattr__(self, name: str) -> object:
                    return getattr(raw, name)

                def commit(self) -> None:
                    start = time.perf_counter()
                    raw.commit()
                    times.append(time.perf_counter() - start)

            store._writer = Timed()
            start, cpu = time.perf_counter(), time.process_time()
            hot_loop("single", ledger, n, [])
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu
            store._writer = raw
            ledger.close()
        times.sort()
        return (f"{n / wall:7,.0f}/s {n / cpu:7,.0f}/CPU-s  commit median {times[n // 2] * 1e6:4.0f} us, "
                f"mean {statistics.mean(times) * 1e6:4.0f} us, p99 {times[int(n * 0.99)] * 1e3:5.2f} ms; "
                f"commits {100 * sum(times) / wall:3.0f} % of the time")

    for _ in range(trials):
        for background in (False, True):
            print(f"{'store thread' if background else 'writer     '}  {trial(background)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["single", "batch", "ingest"])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--py-spy", action="store_true", help="sample with py-spy instead of cProfile")
    parser.add_argument("--commits", action="store_true",
                        help="single only: time every commit, WAL checkpoints by the writer vs the store's thread")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)  # the py-spy child
    args = parser.parse_args()
    if args.commits:
        commits(args.events)
    elif args.py_spy:
        py_spy(args.mode, args.events)
    else:
        run(args.mode, args.events, profile=not args.plain)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
