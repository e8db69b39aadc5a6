#!/usr/bin/env python3
"""Ledger throughput benchmark: appends, foreign ingests and projection rebuilds on
SQLite (a WAL file in a temp dir) and PostgreSQL, each beside baselines measured in
the same run (raw PyNaCl sign/verify rates, one thread, and a plain sqlite3
`executemany` of comparable rows), with 1, 8 and 64 concurrent appenders sharing commits
(the group commit) beside the one-commit figure.

    pip install -e .[postgres]                   # psycopg, for the PostgreSQL figures (SQLite needs nothing more)
    python bench/ledger_bench.py                 # default sizes, a few minutes
    python bench/ledger_bench.py --quick         # small counts, a smoke run
    python bench/ledger_bench.py --json          # machine-readable result on stdout
    python bench/ledger_bench.py --appends --no-pg   # only the two append goals' rows (one per commit, batches)
    python bench/ledger_bench.py --pg-url postgresql+psycopg://ledger:ledger@127.0.0.1:5432/ledger_test

The PostgreSQL URL falls back to $LEDGER_NET_BENCH_PG_URL, then $LEDGER_NET_TEST_PG_URL;
without one (or when the server cannot be reached) the PostgreSQL figures are skipped
and the output says so. The bench creates one scratch database per trial next to the
given one (the role needs CREATEDB) and drops it afterwards.

Every figure is the best of `--repeat` (3) trials: the machine is shared and noisy,
and the best trial is the one least disturbed by neighbours.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import nacl.signing  # noqa: E402 -- after sys.path gets this checkout

from ledger_net.ledger.chain import Ledger  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.events import GENESIS, Event  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.identity import Identity  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.projections.runner import ProjectionRunner  # noqa: E402 -- after sys.path gets this checkout

# Goals, as ratios against baselines of the same run.
GOAL_BATCH_VS_SIGN = 0.7
GOAL_SINGLE_VS_SIGN = 0.3
GOAL_INGEST_VS_VERIFY = 1.0
GOAL_REBUILD_SQLITE = 100_000
CONCURRENT = (1, 8, 64)  # concurrent appenders (threads) sharing commits


@dataclass
class Sizes:
    crypto: int = 20_000  # signatures for the raw sign/verify baselines
    sqlite_rows: int = 50_000  # rows for the plain executemany baseline
    single: int = 3_000  # one event per commit
    batch: int = 500  # events per append_batch
    batches: int = 40  # append_batch calls
    ingest: int = 20_000  # foreign events ingested
    ingest_batch: int = 1_000
    rebuild: int = 60_000  # events in the log that is rebuilt
    users: int = 50  # accounts in the generated economy
    repeat: int = 3

    @classmethod
    def quick(cls) -> Sizes:
        return cls(crypto=3_000, sqlite_rows=5_000, single=300, batch=500, batches=4, ingest=2_000,
                   ingest_batch=1_000, rebuild=5_000, users=10, repeat=2)


@dataclass
class Result:
    name: str
    value: float  # per second, best trial
    trials: list[float] = field(default_factory=list)
    unit: str = "events/s"
    per_cpu_s: float = 0.0  # best rate per CPU-second of the bench process
    per_commit: float = 0.0  # concurrent appenders: events per commit (the most of any trial)


Elapsed = tuple[float, float]  # (wall seconds, CPU seconds of this process, all threads)


def _now() -> Elapsed:
    return time.perf_counter(), time.process_time()


def _since(start: Elapsed) -> Elapsed:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def best_of(repeat: int, trial: Callable[[], tuple[int, Elapsed]]) -> tuple[float, list[float], float]:
    """Run `trial` (returning (count, (wall, cpu))) `repeat` times: the best wall rate, all wall
    rates, and the best rate per CPU-second of this process (all its threads; on PostgreSQL the
    server's CPU is not included)."""
    rates: list[float] = []
    cpu_best = 0.0
    for _ in range(repeat):
        gc.collect()
        count, (wall, cpu) = trial()
        rates.append(count / wall)
        cpu_best = max(cpu_best, count / cpu if cpu > 0 else 0.0)
    return max(rates), rates, cpu_best


# --------------------------------------------------------------------- baselines
def bench_sign(n: int) -> tuple[int, float]:
    key = nacl.signing.SigningKey.generate()
    digests = [os.urandom(32) for _ in range(n)]
    start = _now()
    for d in digests:
        key.sign(d)
    return n, _since(start)


def bench_verify(n: int) -> tuple[int, float]:
    key = nacl.signing.SigningKey.generate()
    vk = key.verify_key
    pairs = [(d, key.sign(d).signature) for d in (os.urandom(32) for _ in range(n))]
    start = _now()
    for d, s in pairs:
        vk.verify(d, s)
    return n, _since(start)


def bench_sqlite_executemany(n: int) -> tuple[int, float]:
    """Plain sqlite3: one executemany of n event-shaped rows in one transaction (WAL)."""
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        conn = sqlite3.connect(os.path.join(tmp, "plain.db"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute('CREATE TABLE events ("offset" INTEGER PRIMARY KEY, hash VARCHAR(64) NOT NULL UNIQUE, '
                     "author VARCHAR(64) NOT NULL, seq BIGINT NOT NULL, type VARCHAR(64) NOT NULL, "
                     "ts BIGINT NOT NULL, raw BLOB NOT NULL, sig BLOB NOT NULL, valid BOOLEAN NOT NULL, "
                     "reason TEXT, UNIQUE (author, seq))")
        conn.execute("CREATE INDEX ix_events_type ON events (type)")
        author = os.urandom(32).hex()
        raw = os.urandom(300)
        rows = [(i + 1, os.urandom(32).hex(), author, i + 1, "credit.transfer", 0, raw, os.urandom(64), True, None)
                for i in range(n)]
        start = _now()
        with conn:
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        elapsed = _since(start)
        conn.close()
    return n, elapsed


# ------------------------------------------------------------------- databases
class Backend:
    name = ""

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        raise NotImplementedError


class SQLiteBackend(Backend):
    name = "sqlite"

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
            yield f"sqlite:///{os.path.join(tmp, 'ledger.db')}"


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.base = make_url(url)
        self.admin = create_engine(self.base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)

    def check(self) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            conn.execute(text("SELECT 1"))

    @contextlib.contextmanager
    def fresh(self) -> Iterator[str]:
        from sqlalchemy import text

        name = f"{self.base.database}_bench_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\''))
        try:
            yield self.base.set(database=name).render_as_string(hide_password=False)
        finally:
            try:
                with self.admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except Exception as exc:
                print(f"WARNING: could not drop scratch database {name}: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.admin.dispose()


# ---------------------------------------------------------------- the economy
def make_economy(n: int, users: int, seed: int = 7) -> tuple[Identity, list[Event]]:
    """A causally ordered log of about n events by 1 issuer and `users` accounts: the
    genesis, then mints, transfers and their receipts (all valid)."""
    rng = random.Random(seed)
    issuer = Identity.from_seed(rng.randbytes(32))
    people = [Identity.from_seed(rng.randbytes(32)) for _ in range(users)]
    heads: dict[str, tuple[int, str | None]] = {}
    balance: dict[str, int] = {}
    log: list[Event] = []
    now = int(time.time() * 1000)

    def add(who: Identity, type_: str, body: dict[str, Any], deps: tuple[str, ...] = (), net: str = "") -> Event:
        seq, prev = heads.get(who.node_id, (0, None))
        ev = Event.create(who, net=net, seq=seq + 1, prev=prev, type=type_, body=body, deps=deps, ts=now + len(log))
        heads[who.node_id] = (ev.seq, ev.hash)
        log.append(ev)
        return ev

    genesis = add(issuer, GENESIS, {"name": "bench", "issuers": [issuer.node_id], "decimals": 6})
    net = genesis.hash
    everyone = [issuer, *people]
    pending: list[tuple[Identity, Event]] = []  # transfers awaiting their receipt
    while len(log) < n:
        r = rng.random()
        if r < 0.1 or balance.get(issuer.node_id, 0) < 1_000:
            add(issuer, "credit.minted", {"to": issuer.node_id, "amount": 1_000_000, "reason": "bench"}, net=net)
            balance[issuer.node_id] = balance.get(issuer.node_id, 0) + 1_000_000
        elif r < 0.55 or not pending:
            payers = [p for p in everyone if balance.get(p.node_id, 0) >= 10]
            payer = rng.choice(payers)
            payee = rng.choice([p for p in everyone if p is not payer])
            amount = rng.randint(1, balance[payer.node_id] // 4 or 1)
            balance[payer.node_id] -= amount
            ev = add(payer, "credit.transfer", {"to": payee.node_id, "amount": amount}, net=net)
            pending.append((payee, ev))
        else:
            payee, transfer = pending.pop(rng.randrange(len(pending)))
            add(payee, "credit.received", {"source": transfer.hash}, (transfer.hash,), net=net)
            balance[payee.node_id] = balance.get(payee.node_id, 0) + transfer.body["amount"]
    return issuer, log


# -------------------------------------------------------------------- trials
def trial_single(url: str, n: int) -> tuple[int, float]:
    ledger = Ledger.open(url, Identity.generate())
    try:
        me = ledger.node_id
        ledger.create_network("bench")
        ledger.append("credit.minted", {"to": me, "amount": 10**15, "reason": "bench"})
        to = Identity.generate().node_id
        start = _now()
        for i in range(n):
            ledger.append("credit.transfer", {"to": to, "amount": 1 + i % 7})
        return n, _since(start)
    finally:
        ledger.close()


def trial_batch(url: str, batch: int, batches: int) -> tuple[int, float]:
    ledger = Ledger.open(url, Identity.generate())
    try:
        me = ledger.node_id
        ledger.create_network("bench")
        ledger.append("credit.minted", {"to": me, "amount": 10**15, "reason": "bench"})
        to = Identity.generate().node_id
        items = [("credit.transfer", {"to": to, "amount": 1 + i % 7}, ()) for i in range(batch)]
        start = _now()
        for _ in range(batches):
            ledger.append_batch(items)
        return batch * batches, _since(start)
    finally:
        ledger.close()


def trial_ingest(url: str, wire: list[tuple[bytes, bytes]], batch: int, parse_ahead: bool = True) -> tuple[int, float]:
    """Foreign events from the wire (raw bytes + sig): parse, verify, store. Pipelined as a
    reader of pages does it: the next batch is parsed and its signatures are checked on the
    ledger's pool while the current one is judged and written. `parse_ahead`: the pool's
    workers parse the wire pairs too (`check_wire_ahead`); else this thread parses them and
    the pool checks only the signatures (`verify_ahead`)."""
    ledger = Ledger.open(url, Identity.generate())
    try:
        ledger.ingest([Event.from_wire(*wire[0])])  # the fresh ledger has the genesis
        rest = wire[1:]
        start = _now()
        ahead: Any = None
        for i in range(0, len(rest) + batch, batch):
            page = rest[i:i + batch]
            if not page:
                nxt: Any = None
            elif parse_ahead:
                nxt = ledger.check_wire_ahead(page)
            else:
                events = [Event.from_wire(raw, sig) for raw, sig in page]
                nxt = (events, ledger.verify_ahead(events))
            if ahead is not None:
                events, checks = ahead.result() if parse_ahead else ahead
                report = ledger.ingest(events, checks=checks)
                if report.pending or report.invalid:
                    raise RuntimeError(f"bench economy did not ingest cleanly: {report.as_dict()}")
            ahead = nxt
        elapsed = _since(start)
        if ledger.store.count() != len(wire):
            raise RuntimeError("ingest stored a different number of events")
        return len(rest), elapsed
    finally:
        ledger.close()


def trial_concurrent(url: str, threads: int, per: int) -> tuple[int, Elapsed, float]:
    """`threads` threads each appending `per` events one by one at the same time (the group
    commit shares commits between them); returns (events, elapsed, events per commit)."""
    import threading

    ledger = Ledger.open(url, Identity.generate())
    try:
        me = ledger.node_id
        ledger.create_network("bench")
        ledger.append("credit.minted", {"to": me, "amount": 10**15, "reason": "bench"})
        to = Identity.generate().node_id
        groups = ledger._group.groups
        ready = threading.Barrier(threads + 1)

        def work() -> None:
            ready.wait()
            for i in range(per):
                ledger.append("credit.transfer", {"to": to, "amount": 1 + i % 7})

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        ready.wait()
        start = _now()
        for w in workers:
            w.join()
        elapsed = _since(start)
        return threads * per, elapsed, threads * per / max(1, ledger._group.groups - groups)
    finally:
        ledger.close()


def trials_rebuild(url: str, log: list[Event], repeat: int) -> tuple[float, list[float], float]:
    ledger = Ledger.open(url, Identity.generate())
    try:
        for i in range(0, len(log), 5_000):
            ledger.ingest(log[i:i + 5_000])
        count = ledger.store.count()
        runner = ProjectionRunner(ledger)
        expected = runner.state_hash()

        def one() -> tuple[int, float]:
            start = _now()
            runner.rebuild()
            elapsed = _since(start)
            if runner.state_hash() != expected:
                raise RuntimeError("rebuild changed the state hash")
            return count, elapsed

        return best_of(repeat, one)
    finally:
        ledger.close()


def run_backend(backend: Backend, sizes: Sizes, wire: list[tuple[bytes, bytes]], log: list[Event],
                say: Callable[[str], None], appends_only: bool = False) -> dict[str, Result]:
    out: dict[str, Result] = {}

    def fresh_trial(fn: Callable[[str], tuple[int, float]]) -> Callable[[], tuple[int, float]]:
        def trial() -> tuple[int, float]:
            with backend.fresh() as url:
                return fn(url)
        return trial

    say(f"[{backend.name}] appends, one per commit ({sizes.single} events)…")
    best, rates, cpu = best_of(sizes.repeat, fresh_trial(lambda u: trial_single(u, sizes.single)))
    out["append_single"] = Result("append_single", best, rates, per_cpu_s=cpu)
    for threads in () if appends_only else CONCURRENT:
        say(f"[{backend.name}] appends, {threads} concurrent appenders ({sizes.single} events)…")
        per_commit: list[float] = []

        def concurrent(u: str, threads: int = threads, per_commit: list[float] = per_commit) -> tuple[int, Elapsed]:
            count, elapsed, grouped = trial_concurrent(u, threads, max(1, sizes.single // threads))
            per_commit.append(grouped)
            return count, elapsed

        best, rates, cpu = best_of(sizes.repeat, fresh_trial(concurrent))
        out[f"append_concurrent_{threads}"] = Result(f"append_concurrent_{threads}", best, rates, per_cpu_s=cpu,
                                                     per_commit=max(per_commit))
    say(f"[{backend.name}] appends, batches of {sizes.batch} ({sizes.batch * sizes.batches} events)…")
    best, rates, cpu = best_of(sizes.repeat, fresh_trial(lambda u: trial_batch(u, sizes.batch, sizes.batches)))
    out["append_batch"] = Result("append_batch", best, rates, per_cpu_s=cpu)
    if appends_only:
        return out
    say(f"[{backend.name}] foreign ingests, batches of {sizes.ingest_batch} ({len(wire) - 1} events)…")
    best, rates, cpu = best_of(sizes.repeat, fresh_trial(lambda u: trial_ingest(u, wire, sizes.ingest_batch)))
    out["ingest"] = Result("ingest", best, rates, per_cpu_s=cpu)
    say(f"[{backend.name}] projection rebuild ({len(log)} events)…")
    with backend.fresh() as url:
        best, rates, cpu = trials_rebuild(url, log, sizes.repeat)
    out["rebuild"] = Result("rebuild", best, rates, per_cpu_s=cpu)
    return out


# -------------------------------------------------------------------- report
def pg_url_from(args: argparse.Namespace) -> str | None:
    return args.pg_url or os.environ.get("LEDGER_NET_BENCH_PG_URL") or os.environ.get("LEDGER_NET_TEST_PG_URL")


def choose_backends(args: argparse.Namespace) -> tuple[list[Backend], PostgresBackend | None, dict[str, str]]:
    """The backends to measure, the PostgreSQL one (to close) if any, and why any was skipped."""
    backends: list[Backend] = []
    skipped: dict[str, str] = {}
    if not args.no_sqlite:
        backends.append(SQLiteBackend())
    pg_url = None if args.no_pg else pg_url_from(args)
    pg: PostgresBackend | None = None
    if args.no_pg:
        skipped["postgresql"] = "--no-pg given"
    elif not pg_url:
        skipped["postgresql"] = "no URL (--pg-url, $LEDGER_NET_BENCH_PG_URL or $LEDGER_NET_TEST_PG_URL)"
    else:
        try:
            pg = PostgresBackend(pg_url)
            pg.check()
            backends.append(pg)
        except Exception as exc:  # unreachable server, bad credentials, missing driver
            skipped["postgresql"] = f"cannot connect: {type(exc).__name__}: {str(exc).splitlines()[0]}"
            pg = None
    return backends, pg, skipped


def print_backend(b: str, r: dict[str, Result], rr: dict[str, float], sign: float, sizes: Sizes) -> None:
    """One backend's rows of the table, each with its ratio and goal."""
    print(f"{b}:")
    lines = [
        ("appends, one per commit", r["append_single"], rr["append_single/sign"], "× sign",
         GOAL_SINGLE_VS_SIGN),
        *[(f"  {n} concurrent appender{'s' if n > 1 else ''} ({r[f'append_concurrent_{n}'].per_commit:.1f}/commit)",
           r[f"append_concurrent_{n}"], r[f"append_concurrent_{n}"].value / sign, "× sign", None)
          for n in CONCURRENT if f"append_concurrent_{n}" in r],
        (f"appends, batches of {sizes.batch}", r["append_batch"], rr["append_batch/sign"], "× sign",
         GOAL_BATCH_VS_SIGN),
    ]
    if "ingest" in r:  # not with --appends
        lines += [(f"foreign ingests, pipelined, {sizes.ingest_batch}s", r["ingest"], rr["ingest/verify"],
                   "× verify", GOAL_INGEST_VS_VERIFY),
                  ("projection rebuild", r["rebuild"], rr["rebuild/sqlite_executemany"], "× executemany", None)]
    for label, result, ratio, of, goal in lines:
        value = result.value
        if goal is not None:
            verdict = f"goal ≥ {goal:.1f}: {'met' if ratio >= goal else 'MISSED'}"
        elif of == "× sign":
            verdict = "(group commit)"
        elif b == "sqlite":
            verdict = (f"goal ≥ {GOAL_REBUILD_SQLITE:,} events/s: "
                       f"{'met' if value >= GOAL_REBUILD_SQLITE else 'MISSED'}")
        else:
            verdict = ""
        print(f"  {label:<34}{value:>10,.0f} events/s  {ratio:5.2f} {of:<14}{verdict:<34}"
              f"[{result.per_cpu_s:,.0f} per CPU-s of this process]")


def print_baselines(baselines: dict[str, Result]) -> None:
    """The baselines measured in this run (`--appends` measures only the signing one)."""
    for key, label in (("sign", "PyNaCl sign, 32-byte digests"), ("verify", "PyNaCl verify, 32-byte digests"),
                       ("sqlite_executemany", "sqlite3 executemany, event rows")):
        if baselines[key].trials:
            print(f"  {label:<34}{baselines[key].value:>10,.0f} {baselines[key].unit}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument("--pg-url", help="PostgreSQL SQLAlchemy URL (default: $LEDGER_NET_BENCH_PG_URL, "
                                         "then $LEDGER_NET_TEST_PG_URL)")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite")
    parser.add_argument("--repeat", type=int, help="trials per figure (best is kept; default 3, quick 2)")
    parser.add_argument("--appends", action="store_true",
                        help="only the rows of the two append goals (one per commit, batches) and the sign baseline")
    args = parser.parse_args(argv)

    sizes = Sizes.quick() if args.quick else Sizes()
    if args.repeat:
        sizes.repeat = max(1, args.repeat)

    def say(m: str) -> None:
        print(m, file=sys.stderr, flush=True)

    began = time.perf_counter()

    baselines = {"sign": Result("sign", 0.0, [], "sigs/s"),
                 "verify": Result("verify", 0.0, [], "verifies/s"),
                 "sqlite_executemany": Result("sqlite_executemany", 0.0, [], "rows/s")}
    baseline_fns = {"sign": lambda: bench_sign(sizes.crypto), "verify": lambda: bench_verify(sizes.crypto),
                    "sqlite_executemany": lambda: bench_sqlite_executemany(sizes.sqlite_rows)}
    if args.appends:
        del baseline_fns["verify"], baseline_fns["sqlite_executemany"]

    def measure_baselines(when: str) -> None:
        """Baselines are measured before, between and after the backends and the best of all
        trials is kept, so a noisy moment cannot make the ledger's ratios look better."""
        say(f"baselines ({when})…")
        for key, fn in baseline_fns.items():
            _, rates, cpu = best_of(sizes.repeat, fn)
            baselines[key].trials += rates
            baselines[key].value = max(baselines[key].trials)
            baselines[key].per_cpu_s = max(baselines[key].per_cpu_s, cpu)

    measure_baselines("first")

    log: list[Event] = []
    if not args.appends:
        say(f"generating the bench economy ({max(sizes.ingest, sizes.rebuild)} signed events)…")
        _, log = make_economy(max(sizes.ingest, sizes.rebuild), sizes.users)
    wire = [(e.raw, e.sig) for e in log[:sizes.ingest]]
    rebuild_log = log[:sizes.rebuild]

    backends, pg, skipped = choose_backends(args)
    for name, why in skipped.items():
        say(f"SKIPPING {name}: {why}")

    results: dict[str, dict[str, Result]] = {}
    try:
        for backend in backends:
            results[backend.name] = run_backend(backend, sizes, wire, rebuild_log, say, args.appends)
            measure_baselines(f"after {backend.name}")
    finally:
        if pg is not None:
            pg.close()
    sign, verify = baselines["sign"].value, baselines["verify"].value
    plain = baselines["sqlite_executemany"].value

    def ratios(r: dict[str, Result]) -> dict[str, float]:
        out = {"append_batch/sign": r["append_batch"].value / sign,
               "append_single/sign": r["append_single"].value / sign}
        if "ingest" in r:
            out["ingest/verify"] = r["ingest"].value / verify
            out["rebuild/sqlite_executemany"] = r["rebuild"].value / plain
        return out

    goals = {"append_batch/sign": GOAL_BATCH_VS_SIGN, "append_single/sign": GOAL_SINGLE_VS_SIGN,
             "ingest/verify": GOAL_INGEST_VS_VERIFY}
    elapsed = time.perf_counter() - began
    doc = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "sizes": sizes.__dict__,
        "baselines": {k: {"value": v.value, "unit": v.unit, "trials": v.trials, "per_cpu_s": v.per_cpu_s}
                      for k, v in baselines.items() if v.trials},
        "backends": {b: {k: {"value": v.value, "unit": v.unit, "trials": v.trials, "per_cpu_s": v.per_cpu_s,
                             "per_commit": v.per_commit}
                         for k, v in r.items()} for b, r in results.items()},
        "ratios": {b: ratios(r) for b, r in results.items()},
        "goals": {**goals, "rebuild_sqlite_events_per_s": GOAL_REBUILD_SQLITE},
        "skipped": skipped,
        "seconds": elapsed,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0

    print(f"ledger_net ledger bench — {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"best of {sizes.repeat}{' (quick)' if args.quick else ''}, {elapsed:.0f} s")
    print(f"baselines (single thread; best of {len(baselines['sign'].trials)} trials spread over the run):")
    print("  (bracketed: events per CPU-second of the bench process, all its threads; PostgreSQL's own CPU is"
          " not in it)")
    print_baselines(baselines)
    for b, r in results.items():
        print_backend(b, r, ratios(r), sign, sizes)
    for name, why in skipped.items():
        print(f"{name}: SKIPPED — {why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
