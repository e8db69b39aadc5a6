#!/usr/bin/env python3
"""Where a projection rebuild's time goes: the top-20 tables of docs/performance.md
("Rebuilds, verify and audit at scale").

    python bench/rebuild_profile.py                    # 100k events, cProfile top 20 by own time
    python bench/rebuild_profile.py --events 1000000 --no-profile --repeat 1
    python bench/rebuild_profile.py --verify           # verify_events on 1 thread and on every core, against raw verify

Needs the cached ledgers of bench/scale_bench.py (run it once with `--build-only` to build
them). The ledger is copied to a temp dir, its projections are caught up
(`ProjectionRunner(ledger)`), then `runner.rebuild()` runs `--repeat` times. Each run prints
its wall and CPU rate (`time.process_time`: on a shared machine the wall time also counts the
other jobs' turns on the cores) and whether the rebuilt state hash equals the caught-up one.
With the profile on, the first rebuild is profiled on CPU time; cProfile slows pure-Python
code more than C calls, so its shares flatter the Python side.

`--verify` instead times `audit.verify_events` over the cached log's rows (read first), with the
signatures checked on one thread and then on every core (`audit.checked_rows`), each beside one
thread's raw ed25519 verify rate measured just before it: the ratio is the goal's (≥ 1.0).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger_net.ledger.chain import Ledger  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.store import sqlite_url  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.projections.runner import ProjectionRunner  # noqa: E402 -- after sys.path gets this checkout

CACHE = Path.home() / ".cache" / "ledger_net" / "scale_bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="size of the cached ledger")
    parser.add_argument("--cache-dir", type=Path, default=CACHE)
    parser.add_argument("--repeat", type=int, default=2, help="rebuilds (the first is profiled)")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--verify", action="store_true", help="time verify_events instead of a rebuild")
    parser.add_argument("--writer", choices=("auto", "on", "off", "both"), default="auto",
                        help="flushes committed by a writer process (on), in this one (off), alternating (both), "
                             "or as a node would choose by the load average (auto)")
    args = parser.parse_args(argv)
    cached = args.cache_dir / f"economy-g1-{args.events}-u10000-s7.sqlite"
    if not cached.exists():
        sys.exit(f"error: no cached ledger {cached}: run bench/scale_bench.py --sizes {args.events} --build-only")
    with tempfile.TemporaryDirectory(prefix="rebuild-profile-") as tmp:
        db = Path(tmp) / "ledger.sqlite"
        shutil.copyfile(cached, db)
        ledger = Ledger.open(sqlite_url(db), snapshot_on_close=False)
        try:
            if args.verify:
                verify_rates(ledger, args.repeat)
                return 0
            runner = ProjectionRunner(ledger)
            want = runner.state_hash()
            choices: dict[str, list[bool | None]] = {"auto": [None], "on": [True], "off": [False],
                                                     "both": [False, True]}
            modes = choices[args.writer]
            for trial in range(args.repeat * len(modes)):
                ProjectionRunner.rebuild_writer = modes[trial % len(modes)]
                profile = cProfile.Profile(time.process_time) if trial == 0 and not args.no_profile else None
                wall, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
                if profile is not None:
                    profile.enable()
                runner.rebuild()
                if profile is not None:
                    profile.disable()
                wall, cpu, child = time.perf_counter() - wall, time.process_time() - cpu, _children_cpu() - child
                n = ledger.store.last_offset()
                mode = {True: "on", False: "off", None: "auto"}[ProjectionRunner.rebuild_writer]
                print(f"rebuild of {n:,} events{' (profiled)' if profile else ''}, writer process {mode}: "
                      f"wall {wall:.2f} s "
                      f"({n / wall:,.0f}/s), CPU here {cpu:.2f} s ({n / cpu:,.0f}/s), writer's CPU {child:.2f} s, "
                      f"same state hash: "
                      f"{runner.state_hash() == want}")
                if profile is not None:
                    out = io.StringIO()
                    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
                    print(out.getvalue())
        finally:
            ledger.close()
    return 0


def _children_cpu() -> float:
    """CPU seconds of the finished child processes (the writer, once the rebuild joined it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def verify_rates(ledger: Ledger, repeat: int) -> None:
    """verify_events on one thread, then on every core, `repeat` rounds, beside raw verify."""
    from ledger_net import audit
    from ledger_net.ledger.identity import Identity, verify

    rows = list(ledger.store.select_events())
    who = Identity.generate()
    signed = [(m, who.sign(m)) for m in (os.urandom(32) for _ in range(3000))]
    for _ in range(repeat):
        for threads in (1, audit.workers()):
            t = time.perf_counter()
            for message, sig in signed:
                verify(who.node_id, message, sig)
            raw = len(signed) / (time.perf_counter() - t)
            t = time.perf_counter()
            report = audit.verify_events(rows, threads=threads)
            rate = len(rows) / (time.perf_counter() - t)
            print(f"verify_events, signatures on {threads} thread(s): {rate:,.0f} events/s; raw verify on one "
                  f"thread just before: {raw:,.0f}/s; ratio {rate / raw:.2f}; ok={report.ok}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
