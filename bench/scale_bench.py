#!/usr/bin/env python3
"""Scale benchmark (issue 13 item 5): what a ledger of 100k, 1M (and 10M) events costs to
open, hold, rebuild, audit and read, on SQLite.

    python bench/scale_bench.py                          # 100k and 1M events, 10k accounts
    python bench/scale_bench.py --sizes 100000,300000    # other sizes
    python bench/scale_bench.py --big                    # adds 10M (hours to build the first time)
    python bench/scale_bench.py --json                   # machine-readable result on stdout

Needs only the package itself (`pip install -e .`; psutil is a dependency). The
ledgers are built once, by ingesting a streamed economy of the same mix as
`bench/ledger_bench.py`'s `make_economy` (mints, transfers and their receipts, all
valid) with the real `Ledger.ingest` (signatures checked, judged, judge snapshots
written as a node writes them), and kept in `--cache-dir` (default
~/.cache/ledger_net/scale_bench): a rerun copies them instead of building. One build
covers every size: the database is copied as it passes each smaller size.

Every figure is measured in a fresh child process on a scratch copy of the cached
ledger, so the resident memory after open is the node's, not the generator's:

* open: `Ledger.open` (best of `--repeat`), and how many events it judged (the tail);
* RSS after open (psutil) and the Python heap the open ledger holds (tracemalloc);
* the first full catch-up of the projections (no checkpoint yet: a fold of the log),
  RSS after it, and reopening ledger + projections from their checkpoints;
* a projection rebuild (`ProjectionRunner.rebuild`);
* `ledger-net verify` and `ledger-net audit` (wall time and peak RSS of the CLI on the
  copy), beside one thread's raw ed25519 verify rate measured in the same run;
* the last feed page (the replication route's read: 500 events, wire form, JSON body)
  and one balance query (the projection's read, and the balances row in the database).

The machine is shared and noisy: open and the read latencies are the best of several trials.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from ledger_net.ledger.chain import SNAPSHOT_EVERY, Ledger  # noqa: E402
from ledger_net.ledger.events import GENESIS, Event  # noqa: E402
from ledger_net.ledger.identity import Identity  # noqa: E402
from ledger_net.ledger.store import sqlite_url  # noqa: E402

GENERATOR = 1  # bump when iter_economy changes: cached ledgers of another generator are not reused
GOAL_OPEN_S = 1.0  # at 1M events
GOAL_RSS_MIB = 150.0  # after open, at 1M events with 10k accounts
GOAL_REBUILD_RATE = 100_000  # events/s of a projection rebuild
MIB = 1 << 20


# --------------------------------------------------------------------- the economy
def iter_economy(n: int, users: int, seed: int = 7) -> Iterator[Event]:
    """`make_economy`'s mix streamed, O(1) work and memory per event (its payer scan is
    O(accounts) per event, too slow at 10k accounts): about n events by one issuer and
    `users` accounts: the genesis, then mints (10 %), transfers (45 %) and receipts of
    open transfers (45 %), all valid. The first k events do not depend on n."""
    rng = random.Random(seed)
    issuer = Identity.from_seed(rng.randbytes(32))
    people = [Identity.from_seed(rng.randbytes(32)) for _ in range(users)]
    everyone = [issuer, *people]
    heads: dict[str, tuple[int, str | None]] = {}
    balance: dict[str, int] = {}
    pending: list[tuple[Identity, str, int]] = []  # transfers awaiting their receipt
    now = int(time.time() * 1000)
    count = 0

    def make(who: Identity, type_: str, body: dict[str, Any], deps: tuple[str, ...] = (), net: str = "") -> Event:
        nonlocal count
        seq, prev = heads.get(who.node_id, (0, None))
        ev = Event.create(who, net=net, seq=seq + 1, prev=prev, type=type_, body=body, deps=deps, ts=now + count)
        heads[who.node_id] = (ev.seq, ev.hash)
        count += 1
        return ev

    genesis = make(issuer, GENESIS, {"name": "scale", "issuers": [issuer.node_id], "decimals": 6})
    net = genesis.hash
    yield genesis
    while count < n:
        r = rng.random()
        if r < 0.1 or balance.get(issuer.node_id, 0) < 1_000:
            yield make(issuer, "credit.minted", {"to": issuer.node_id, "amount": 1_000_000, "reason": "bench"}, net=net)
            balance[issuer.node_id] = balance.get(issuer.node_id, 0) + 1_000_000
        elif r < 0.55 or not pending:
            payer = rng.choice(everyone)
            if balance.get(payer.node_id, 0) < 10:
                payer = issuer
            payee = rng.choice(everyone)
            while payee is payer:
                payee = rng.choice(everyone)
            amount = rng.randint(1, balance[payer.node_id] // 4 or 1)
            balance[payer.node_id] -= amount
            ev = make(payer, "credit.transfer", {"to": payee.node_id, "amount": amount}, net=net)
            pending.append((payee, ev.hash, amount))
            yield ev
        else:
            i = rng.randrange(len(pending))
            pending[i], pending[-1] = pending[-1], pending[i]
            payee, source, amount = pending.pop()
            yield make(payee, "credit.received", {"source": source}, (source,), net=net)
            balance[payee.node_id] = balance.get(payee.node_id, 0) + amount


# --------------------------------------------------------------------- the cache
def cached_path(cache: Path, n: int, users: int, seed: int) -> Path:
    return cache / f"economy-g{GENERATOR}-{n}-u{users}-s{seed}.sqlite"


def _copy_db(src: Path, dst: Path) -> None:
    """Copy a closed SQLite database (its WAL was checkpointed when the last connection closed)."""
    tmp = dst.with_suffix(".partial")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def refresh_snapshot(path: Path) -> None:
    """Rewrite a cached ledger's judge snapshot if it names other rules (the rules, the chain
    or the codec changed since it was built): the state folded up to the same offset (its
    end minus SNAPSHOT_EVERY - 1 events), under the current rules. Else a rerun would
    measure one full re-judge instead of the open it means to."""
    from sqlalchemy import delete, insert

    from ledger_net.ledger.judge import verdict
    from ledger_net.ledger.rules import LedgerState
    from ledger_net.ledger.snapshot import pack, rules_fingerprint
    from ledger_net.ledger.store import Store
    from ledger_net.ledger.tables import judge_snapshots

    store = Store.open(sqlite_url(path))
    try:
        snap = store.latest_snapshot()
        if snap is None or snap.rules == rules_fingerprint():
            return
        print(f"  {path.name}: judge snapshot of other rules, refolding to offset {snap.offset:,}", file=sys.stderr)
        state = LedgerState()
        for row in store.select_events(until=snap.offset):
            event = Event.from_stored(row.raw, row.sig, row.hash)
            state.apply(event, verdict(state, event))
        data, digest = pack(state)
        with store.engine.begin() as conn:
            conn.execute(delete(judge_snapshots))
            conn.execute(insert(judge_snapshots).values(offset=snap.offset, rules=rules_fingerprint(), digest=digest,
                                                        data=data, created_at=int(time.time() * 1000)))
    finally:
        store.close()


def build(cache: Path, sizes: list[int], users: int, seed: int, batch: int = 5_000) -> None:
    """Ingest the economy up to the largest missing size, copying the database at each smaller one."""
    missing = [n for n in sizes if not cached_path(cache, n, users, seed).exists()]
    for n in sorted(set(sizes) - set(missing)):
        refresh_snapshot(cached_path(cache, n, users, seed))
    if not missing:
        return
    cache.mkdir(parents=True, exist_ok=True)
    top = max(missing)
    work = cache / f"building-{os.getpid()}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    # Each cached ledger ends as a crashed node's would in the worst case: its last judge
    # snapshot SNAPSHOT_EVERY - 1 events before its end, so opening it judges the longest tail.
    ledger = Ledger.open(sqlite_url(work), snapshot_on_close=False)
    done, start, chunk = 0, time.perf_counter(), []
    marks = sorted(missing)
    quiet = {m - (SNAPSHOT_EVERY - 1) for m in marks if m >= SNAPSHOT_EVERY}
    try:
        for event in iter_economy(top, users, seed):
            chunk.append(event)
            at = done + len(chunk)
            if len(chunk) < batch and at not in marks and at not in quiet:
                continue
            ledger.ingest(chunk)
            done, chunk = at, []
            if done % 100_000 < batch:
                rate = done / (time.perf_counter() - start)
                print(f"  built {done:,} / {top:,} events ({rate:,.0f}/s)", file=sys.stderr, flush=True)
            if done in quiet:
                ledger.save_snapshot()
                ledger.snapshots.every = 0  # no snapshot past the quiet point
            if done in marks:
                ledger.close()
                _copy_db(work, cached_path(cache, done, users, seed))
                ledger = Ledger.open(sqlite_url(work), snapshot_on_close=False)
    finally:
        ledger.close()
    work.unlink(missing_ok=True)


# --------------------------------------------------------------------- measuring (child)
def _rss() -> float:
    return psutil.Process().memory_info().rss / MIB


def _best(trials: int, fn: Any) -> float:
    best = float("inf")
    for _ in range(trials):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def measure(db: Path, repeat: int, cli: bool) -> dict[str, Any]:
    """Every figure for one ledger (run in a fresh process on a scratch copy)."""
    from sqlalchemy import select

    from ledger_net.ledger.wire import stored_to_wire
    from ledger_net.network.responses import dumps
    from ledger_net.projections.runner import ProjectionRunner
    from ledger_net.projections.tables import balances

    url = sqlite_url(db)
    out: dict[str, Any] = {"rss_start_mib": _rss()}
    # The worst case first: the cached ledger's last snapshot is SNAPSHOT_EVERY - 1 events
    # before its end, as after a crash; closing without a snapshot keeps it so.
    t = time.perf_counter()
    ledger = Ledger.open(url, snapshot_on_close=False)
    out["open_first_s"] = time.perf_counter() - t
    out["rss_open_mib"] = _rss()
    out["events"] = ledger.store.last_offset()
    out["accounts"] = len(ledger.state.accounts)
    out["judged_on_open"] = ledger.judged_on_open
    ledger.close()
    opens = [out["open_first_s"]]
    for _ in range(repeat - 1):
        gc.collect()
        t = time.perf_counter()
        again = Ledger.open(url, snapshot_on_close=False)
        opens.append(time.perf_counter() - t)
        again.close()
    out["open_s"] = min(opens)
    gc.collect()
    tracemalloc.start()
    ledger = Ledger.open(url, snapshot_on_close=False)
    out["heap_open_mib"] = tracemalloc.get_traced_memory()[0] / MIB
    tracemalloc.stop()
    ledger.close()
    gc.collect()
    t = time.perf_counter()  # the old way, for comparison: judge every stored event
    full = Ledger.open(url, snapshot_every=0, snapshot_on_close=False)
    out["open_full_s"] = time.perf_counter() - t
    out["rss_open_full_mib"] = _rss()
    full.close()
    # After a clean close (a snapshot at the end): nothing to judge.
    Ledger.open(url).close()
    out["open_clean_s"] = _best(repeat, lambda: Ledger.open(url).close())
    ledger = Ledger.open(url)

    t = time.perf_counter()
    runner = ProjectionRunner(ledger)  # no checkpoint yet: folds the whole log
    out["catchup_s"] = time.perf_counter() - t
    gc.collect()
    out["rss_catchup_mib"] = _rss()

    account = max(runner["balances"].accounts, key=lambda a: runner["balances"].accounts[a]["received"])
    out["balance_proj_us"] = _best(1000, lambda: runner["balances"].balance(account)) * 1e6

    def balance_row() -> None:
        with ledger.store.engine.connect() as conn:
            conn.execute(select(balances.c.balance).where(balances.c.account == account)).scalar_one()
    out["balance_db_ms"] = _best(50, balance_row) * 1e3
    last = ledger.store.last_offset()

    def last_page() -> None:
        rows = list(ledger.store.select_events(after=max(0, last - 500), limit=500, batch=256))
        dumps({"events": [stored_to_wire(r) for r in rows], "next": last, "last_offset": last, "more": False})
    out["feed_page_ms"] = _best(20, last_page) * 1e3

    t, cpu = time.perf_counter(), time.process_time()
    runner.rebuild()
    out["rebuild_s"] = time.perf_counter() - t
    out["rebuild_rate"] = out["events"] / out["rebuild_s"]
    # CPU time too: on a shared machine the wall time counts the other jobs' turns on the cores
    out["rebuild_cpu_rate"] = out["events"] / (time.process_time() - cpu)
    ledger.close()
    gc.collect()

    t = time.perf_counter()
    ledger = Ledger.open(url)
    runner = ProjectionRunner(ledger)
    out["reopen_with_projections_s"] = time.perf_counter() - t
    out["rss_reopen_with_projections_mib"] = _rss()
    ledger.close()

    if cli:
        out["raw_verify_rate"] = _raw_verify_rate()
        for command in ("verify", "audit"):
            t = time.perf_counter()
            with tempfile.TemporaryFile() as err:
                child = subprocess.Popen([sys.executable, "-m", "ledger_net.cli", command, "--db-url", url, "--json"],
                                         stdout=subprocess.DEVNULL, stderr=err)
                peak = 0.0
                while child.poll() is None:
                    peak = max(peak, _peak_rss_mib(child.pid))
                    time.sleep(0.05)
                err.seek(0)
                stderr = err.read().decode(errors="replace")
            out[f"{command}_s"] = time.perf_counter() - t
            out[f"{command}_rss_mib"] = peak
            out[f"{command}_rate"] = out["events"] / out[f"{command}_s"]
            out[f"{command}_ok"] = child.returncode == 0
            if child.returncode != 0:
                out[f"{command}_error"] = stderr[-500:]
    return out


def _peak_rss_mib(pid: int) -> float:
    """A running child's peak RSS so far: VmHWM of its own address space (set up at its exec).
    Not getrusage/wait4's ru_maxrss: on Linux that counts the address space the child was
    forked with, i.e. this measuring process's RSS. Elsewhere, its current RSS (psutil)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        return psutil.Process(pid).memory_info().rss / MIB
    except psutil.Error:
        return 0.0


def _raw_verify_rate(n: int = 3000) -> float:
    """ed25519 verifications a second on one thread, best of three (the baseline verify and
    audit are set against: they check every signature, on every core)."""
    who = Identity.generate()
    messages = [os.urandom(32) for _ in range(n)]
    signed = [(m, who.sign(m)) for m in messages]
    from ledger_net.ledger.identity import verify

    return n / _best(3, lambda: [verify(who.node_id, m, sig) for m, sig in signed])


def run_child(cached: Path, repeat: int, cli: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        scratch = Path(tmp) / "ledger.sqlite"
        shutil.copyfile(cached, scratch)
        done = subprocess.run([sys.executable, __file__, "--measure", str(scratch), "--repeat", str(repeat)]
                              + ([] if cli else ["--no-cli"]), stdout=subprocess.PIPE, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------- report
ROWS = [  # (key, label, format)
    ("events", "events", "{:,}"),
    ("accounts", "accounts", "{:,}"),
    ("open_s", "open, worst tail (Ledger.open, best)", "{:.3f} s"),
    ("judged_on_open", "events judged on that open (the tail)", "{:,}"),
    ("open_clean_s", "open after a clean close (best, incl. close)", "{:.3f} s"),
    ("open_full_s", "open judging every event (snapshots off)", "{:.2f} s"),
    ("rss_start_mib", "RSS of the process before open (imports)", "{:.0f} MiB"),
    ("rss_open_mib", "RSS after open", "{:.0f} MiB"),
    ("rss_open_full_mib", "RSS after the open judging every event", "{:.0f} MiB"),
    ("heap_open_mib", "Python heap of the open ledger (tracemalloc)", "{:.1f} MiB"),
    ("catchup_s", "projections: first catch-up (fold of the log)", "{:.1f} s"),
    ("rss_catchup_mib", "RSS after catch-up", "{:.0f} MiB"),
    ("reopen_with_projections_s", "reopen ledger + projections from checkpoints", "{:.2f} s"),
    ("rss_reopen_with_projections_mib", "RSS after that reopen", "{:.0f} MiB"),
    ("rebuild_s", "projection rebuild", "{:.1f} s"),
    ("rebuild_rate", "rebuild rate", "{:,.0f} events/s"),
    ("rebuild_cpu_rate", "rebuild rate per CPU second (the wall rate on an idle core)", "{:,.0f} events/s"),
    ("verify_s", "ledger-net verify", "{:.1f} s"),
    ("verify_rss_mib", "ledger-net verify, peak RSS", "{:.0f} MiB"),
    ("audit_s", "ledger-net audit", "{:.1f} s"),
    ("audit_rss_mib", "ledger-net audit, peak RSS", "{:.0f} MiB"),
    ("raw_verify_rate", "raw ed25519 verify, one thread (same run)", "{:,.0f} /s"),
    ("verify_rate", "ledger-net verify rate (events/s, incl. open)", "{:,.0f} /s"),
    ("feed_page_ms", "last feed page (500 events)", "{:.1f} ms"),
    ("balance_proj_us", "balance query (projection)", "{:.2f} µs"),
    ("balance_db_ms", "balance query (balances row)", "{:.2f} ms"),
]


def table(results: dict[int, dict[str, Any]]) -> str:
    sizes = sorted(results)
    lines = ["| figure | " + " | ".join(f"{n:,}" for n in sizes) + " |",
             "|---|" + "---|" * len(sizes)]
    for key, label, fmt in ROWS:
        cells = [fmt.format(results[n][key]) if key in results[n] else "–" for n in sizes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(results: dict[int, dict[str, Any]]) -> list[str]:
    out = []
    for n, r in sorted(results.items()):
        if n >= 1_000_000:
            out.append(f"{n:,} events: open {r['open_s']:.3f} s (goal ≤ {GOAL_OPEN_S} s): "
                       f"{'MET' if r['open_s'] <= GOAL_OPEN_S else 'MISSED'}; RSS after open {r['rss_open_mib']:.0f} "
                       f"MiB (goal ≤ {GOAL_RSS_MIB:.0f}): {'MET' if r['rss_open_mib'] <= GOAL_RSS_MIB else 'MISSED'}; "
                       f"rebuild {r['rebuild_rate']:,.0f} events/s ({r['rebuild_cpu_rate']:,.0f} per CPU second; goal "
                       f"≥ {GOAL_REBUILD_RATE:,}): {'MET' if r['rebuild_rate'] >= GOAL_REBUILD_RATE else 'MISSED'}")
        if "verify_rate" in r:
            out.append(f"{n:,} events: verify {r['verify_rate'] / r['raw_verify_rate']:.2f} x one thread's raw "
                       f"verify, peak RSS verify {r['verify_rss_mib']:.0f} / audit {r['audit_rss_mib']:.0f} MiB")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated event counts")
    parser.add_argument("--big", action="store_true", help="add a 10M-event ledger")
    parser.add_argument("--users", type=int, default=10_000, help="accounts besides the issuer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "ledger_net" / "scale_bench")
    parser.add_argument("--repeat", type=int, default=3, help="trials of open (best is printed)")
    parser.add_argument("--no-cli", action="store_true", help="skip ledger-net verify and audit")
    parser.add_argument("--build-only", action="store_true", help="build the cached ledgers and stop")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's entry
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeat, not args.no_cli)))
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",") if s} | ({10_000_000} if args.big else set()))
    build(args.cache_dir, sizes, args.users, args.seed)
    if args.build_only:
        return 0
    results = {}
    for n in sizes:
        print(f"measuring {n:,} events …", file=sys.stderr, flush=True)
        results[n] = run_child(cached_path(args.cache_dir, n, args.users, args.seed), args.repeat, not args.no_cli)
        print(json.dumps({str(n): results[n]}), file=sys.stderr, flush=True)  # (partial results as they come)
    if args.json:
        print(json.dumps({"users": args.users, "results": results}, indent=1))
        return 0
    print(f"scale bench: SQLite, {args.users:,} accounts + issuer, {os.cpu_count()} CPUs")
    print(table(results))
    for line in goals(results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
