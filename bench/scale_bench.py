#!/usr/bin/env python3
"""Scale benchmark (issue 13 item 5): what a ledger of 100k, 1M (and 10M) events costs to
open, hold, rebuild, audit and read, on SQLite.

    python bench/scale_bench.py                          # 100k and 1M events, 10k accounts
    python bench/scale_bench.py --sizes 100000,300000    # other sizes
    python bench/scale_bench.py --big                    # adds 10M (~35-60 min to build the first time here)
    python bench/scale_bench.py --sizes 10000000 --skip open_full,rebuild,audit  # 10M alone, 3 O(N) phases left out
    python bench/scale_bench.py --json                   # machine-readable result on stdout

Needs only the package itself (`pip install -e .`; psutil is a dependency). The
ledgers are built once from a streamed economy of the same mix as
`bench/ledger_bench.py`'s `make_economy` (mints, transfers and their receipts, all
valid), and kept in `--cache-dir` (default ~/.cache/ledger_net/scale_bench): a rerun
copies them instead of building. One build covers every size: the database is copied as
it passes each smaller size. The build signs on every core (`SignPool`: an event's hash
excludes its signature, so the generator makes a batch unsigned and worker processes sign
it) and ingests with the real `Ledger.ingest` (judged, stored with its Merkle log), without
checking again the signatures it has just made; `ledger-net verify`, one of the figures,
checks every one of them.

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
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from ledger_net.ledger.chain import SNAPSHOT_EVERY, Ledger  # noqa: E402
from ledger_net.ledger.crypto_pool import SignatureChecks  # noqa: E402
from ledger_net.ledger.events import GENESIS, Event  # noqa: E402
from ledger_net.ledger.identity import Identity  # noqa: E402
from ledger_net.ledger.store import sqlite_url  # noqa: E402

GENERATOR = 1  # bump when iter_economy changes: cached ledgers of another generator are not reused
GOAL_OPEN_S = 1.0  # at 1M events
GOAL_RSS_MIB = 150.0  # after open, at 1M events with 10k accounts
GOAL_REBUILD_RATE = 100_000  # events/s of a projection rebuild
MIB = 1 << 20


# --------------------------------------------------------------------- the economy
def _draw_seeds(rng: random.Random, users: int) -> list[bytes]:
    """The issuer's and the accounts' key seeds: the first draws of the economy's generator."""
    return [rng.randbytes(32) for _ in range(users + 1)]


class _Unsigned:
    """An author that leaves the signature to the caller (an event's hash excludes it)."""

    def __init__(self, identity: Identity) -> None:
        self.node_id = identity.node_id

    def sign(self, digest: bytes) -> bytes:
        return UNSIGNED


UNSIGNED = bytes(64)


def iter_economy(n: int, users: int, seed: int = 7, signed: bool = True) -> Iterator[Event]:
    """`make_economy`'s mix streamed, O(1) work and memory per event (its payer scan is
    O(accounts) per event, too slow at 10k accounts): about n events by one issuer and
    `users` accounts: the genesis, then mints (10 %), transfers (45 %) and receipts of
    open transfers (45 %), all valid. The first k events do not depend on n.
    `signed=False`: every event carries `UNSIGNED` (zeros) and the caller signs it
    (`SignPool`): the same hashes, the same economy."""
    rng = random.Random(seed)
    keys = [Identity.from_seed(s) for s in _draw_seeds(rng, users)]
    everyone: list[Any] = keys if signed else [_Unsigned(k) for k in keys]
    issuer = everyone[0]
    heads: dict[str, tuple[int, str | None]] = {}
    balance: dict[str, int] = {}
    pending: list[tuple[Any, str, int]] = []  # transfers awaiting their receipt
    now = int(time.time() * 1000)
    count = 0

    def make(who: Any, type_: str, body: dict[str, Any], deps: tuple[str, ...] = (), net: str = "") -> Event:
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


# --------------------------------------------------------------------- signing on every core
_signing_keys: dict[str, Identity] = {}


def _start_signer(seeds: list[bytes]) -> None:
    """A signing worker's keys (its initializer)."""
    for seed in seeds:
        key = Identity.from_seed(seed)
        _signing_keys[key.node_id] = key


def _sign_part(authors: list[str], digests: bytes) -> bytes:
    """The signatures of `digests` (32 bytes each) by `authors`, concatenated (in a worker)."""
    return b"".join(_signing_keys[a].sign(digests[32 * i:32 * i + 32]) for i, a in enumerate(authors))


class SignPool:
    """Signs the generator's batches in worker processes, one per core, while the bench's
    own process generates the next batch and ingests the last: the build runs at the pace of
    that one process, not of it plus every signature."""

    def __init__(self, users: int, seed: int, workers: int | None = None) -> None:
        seeds = _draw_seeds(random.Random(seed), users)
        self.workers = max(1, workers or os.cpu_count() or 2)
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_signer,
                                         initargs=(seeds,))

    def submit(self, events: list[Event]) -> list[Future[bytes]]:
        size = -(-len(events) // self.workers)
        return [self._pool.submit(_sign_part, [e.author for e in part], b"".join(bytes.fromhex(e.hash) for e in part))
                for part in (events[i:i + size] for i in range(0, len(events), size))]

    def signed(self, chunks: Iterator[list[Event]], ahead: int = 4) -> Iterator[list[Event]]:
        """`chunks` of unsigned events, signed, in order; `ahead` chunks are in the workers."""
        queue: deque[tuple[list[Event], list[Future[bytes]]]] = deque()
        for chunk in chunks:
            queue.append((chunk, self.submit(chunk)))
            if len(queue) > ahead:
                yield _with_signatures(*queue.popleft())
        while queue:
            yield _with_signatures(*queue.popleft())

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _with_signatures(chunk: list[Event], parts: list[Future[bytes]]) -> list[Event]:
    sigs = b"".join(f.result() for f in parts)
    return [Event(e.net, e.author, e.seq, e.prev, e.deps, e.type, e.body, e.ts, e.raw, e.hash, sigs[64 * i:64 * i + 64])
            for i, e in enumerate(chunk)]  # not dataclasses.replace: 5 % of the build


def _signed_here(events: list[Event]) -> SignatureChecks:
    """`Ledger.ingest`'s `checks` for events this process has just had signed with their
    authors' keys: not checked again on ingest (40 µs each, the build's largest cost).
    Every signature of a built ledger is checked by the `ledger-net verify` it is measured with."""
    done: Future[bytes] = Future()
    done.set_result(b"\x01" * len(events))
    return SignatureChecks([(events, done)])


def _chunks(events: Iterator[Event], batch: int, stops: set[int]) -> Iterator[list[Event]]:
    """`events` in lists of `batch`, also cut after each event count in `stops`."""
    chunk: list[Event] = []
    done = 0
    for event in events:
        chunk.append(event)
        if len(chunk) >= batch or done + len(chunk) in stops:
            done += len(chunk)
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --------------------------------------------------------------------- building
def _open_for_build(work: Path) -> Ledger:
    """The building ledger: judge snapshots only where `build` saves one (one at each quiet
    point, none on close), as `Ledger.open`'s own would be: the state after that event."""
    ledger = Ledger.open(sqlite_url(work), snapshot_on_close=False)
    ledger.snapshots.every, ledger.snapshots.seconds = 1 << 62, float("inf")
    return ledger


def build(cache: Path, sizes: list[int], users: int, seed: int, batch: int = 5_000) -> None:
    """Ingest the economy up to the largest missing size, copying the database at each smaller one.

    The generator makes the events unsigned and `SignPool` signs them on every core; they are
    ingested with the real `Ledger.ingest` (judged, stored with their Merkle log as a node
    stores them), without re-checking the signatures made here (`_signed_here`). Judge
    snapshots are written only where the open measured needs one: SNAPSHOT_EVERY - 1 events
    before each size's end (none in between: only the latest is ever read)."""
    # A cached ledger is never opened in place (its snapshot is refreshed on the scratch copy,
    # `run_child`): opening migrates, and a migration being written in the tree and then
    # withdrawn left a 10M cache stamped with a revision the code no longer had.
    missing = [n for n in sizes if not cached_path(cache, n, users, seed).exists()]
    if not missing:
        return
    cache.mkdir(parents=True, exist_ok=True)
    top = max(missing)
    work = cache / f"building-{os.getpid()}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    # Each cached ledger ends as a crashed node's would in the worst case: its last judge
    # snapshot SNAPSHOT_EVERY - 1 events before its end, so opening it judges the longest tail.
    marks = set(missing)
    quiet = {m - (SNAPSHOT_EVERY - 1) for m in marks if m >= SNAPSHOT_EVERY}
    signer = SignPool(users, seed)
    ledger = _open_for_build(work)
    done, start = 0, time.perf_counter()
    try:
        for chunk in signer.signed(_chunks(iter_economy(top, users, seed, signed=False), batch, marks | quiet)):
            ledger.ingest(chunk, checks=_signed_here(chunk))
            done += len(chunk)
            if done % 100_000 < len(chunk):
                rate = done / (time.perf_counter() - start)
                print(f"  built {done:,} / {top:,} events ({rate:,.0f}/s)", file=sys.stderr, flush=True)
            if done in quiet:
                ledger.save_snapshot()
            if done in marks:
                ledger.close()
                if done == top:  # the last size: moved, not copied (~9 GB at 10M)
                    os.replace(work, cached_path(cache, done, users, seed))
                    break
                _copy_db(work, cached_path(cache, done, users, seed))
                ledger = _open_for_build(work)
    finally:
        ledger.close()
        signer.close()
    work.unlink(missing_ok=True)


# --------------------------------------------------------------------- measuring (child)
def _rss() -> float:
    return psutil.Process().memory_info().rss / MIB


def _deep_size(obj: Any, seen: set[int]) -> int:
    """Bytes of `obj` and everything it holds (containers, instance dicts and slots), each once."""
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, frozenset)):
        size += sum(_deep_size(x, seen) for x in obj)
    elif hasattr(obj, "__dict__"):
        size += _deep_size(vars(obj), seen)
    elif hasattr(obj, "__slots__"):
        size += sum(_deep_size(getattr(obj, a), seen) for a in obj.__slots__ if hasattr(obj, a))
    return size


def _state_parts(ledger: Ledger) -> dict[str, Any]:
    """What the judge's state holds after open: accounts and open credits, as [entries, MiB]
    (what grows with the log shows here: it must be per account or per open item)."""
    state = ledger.state
    return {f"state_{name}": [len(getattr(state, name)), _deep_size(getattr(state, name), set()) / MIB]
            for name in ("accounts", "in_transit")}


def _best(trials: int, fn: Any) -> float:
    best = float("inf")
    for _ in range(trials):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


# the O(N) phases --skip may leave out (minutes each at 10M); "projections": catch-up, balance queries, rebuild, reopen
SKIPPABLE = ("open_full", "projections", "rebuild", "verify", "audit")


def _phase(out: dict[str, Any], name: str) -> None:
    """The figures so far on stderr, so a run cut short (at 10M, an hour) keeps them."""
    print(f"  {name} done: {json.dumps(out)}", file=sys.stderr, flush=True)


def _measure_projections(url: str, out: dict[str, Any], skip: frozenset[str]) -> None:
    """The first catch-up (a fold of the whole log), the two balance queries, a rebuild, and a
    reopen of ledger + projections from their checkpoints."""
    from ledger_net.projections.runner import ProjectionRunner

    ledger = Ledger.open(url)
    try:
        _catch_up_and_rebuild(ledger, out, skip)
    finally:
        ledger.close()
    gc.collect()

    t = time.perf_counter()
    ledger = Ledger.open(url)
    try:
        ProjectionRunner(ledger)
        out["reopen_with_projections_s"] = time.perf_counter() - t
        out["rss_reopen_with_projections_mib"] = _rss()
    finally:
        ledger.close()


def _catch_up_and_rebuild(ledger: Ledger, out: dict[str, Any], skip: frozenset[str]) -> None:
    from sqlalchemy import select

    from ledger_net.projections.runner import ProjectionRunner
    from ledger_net.projections.tables import balances

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
    _phase(out, "catch-up")

    if "rebuild" not in skip:
        t, cpu = time.perf_counter(), time.process_time()
        runner.rebuild()
        out["rebuild_s"] = time.perf_counter() - t
        out["rebuild_rate"] = out["events"] / out["rebuild_s"]
        # CPU time too: on a shared machine the wall time counts the other jobs' turns on the cores
        out["rebuild_cpu_rate"] = out["events"] / (time.process_time() - cpu)
        _phase(out, "rebuild")


def measure(db: Path, repeat: int, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every figure for one ledger (run in a fresh process on a scratch copy), but the
    phases named in `skip` (of `SKIPPABLE`)."""
    from ledger_net.ledger.wire import stored_to_wire
    from ledger_net.network.responses import dumps

    url = sqlite_url(db)
    out: dict[str, Any] = {"rss_start_mib": _rss()}
    # The worst case first: the cached ledger's last snapshot is SNAPSHOT_EVERY - 1 events
    # before its end, as after a crash; closing without a snapshot keeps it so.
    t, cpu = time.perf_counter(), time.process_time()
    ledger = Ledger.open(url, snapshot_on_close=False)
    out["open_first_s"] = time.perf_counter() - t
    cpus = [time.process_time() - cpu]  # CPU time too: the wall time on a loaded machine is its turns
    out["rss_open_mib"] = _rss()
    out["events"] = ledger.store.last_offset()
    out["accounts"] = len(ledger.state.accounts)
    out["judged_on_open"] = ledger.judged_on_open
    ledger.close()
    opens = [out["open_first_s"]]
    for _ in range(repeat - 1):
        gc.collect()
        t, cpu = time.perf_counter(), time.process_time()
        again = Ledger.open(url, snapshot_on_close=False)
        opens.append(time.perf_counter() - t)
        cpus.append(time.process_time() - cpu)
        out["judged_on_open"] = min(out["judged_on_open"], again.judged_on_open)  # the tail of the best too
        again.close()
    out["open_s"], out["open_cpu_s"] = min(opens), min(cpus)
    gc.collect()
    tracemalloc.start()
    ledger = Ledger.open(url, snapshot_on_close=False)
    out["heap_open_mib"] = tracemalloc.get_traced_memory()[0] / MIB
    tracemalloc.stop()
    out.update(_state_parts(ledger))
    ledger.close()
    gc.collect()
    _phase(out, "open")
    if "open_full" not in skip:
        t = time.perf_counter()  # the old way, for comparison: judge every stored event
        full = Ledger.open(url, snapshot_every=0, snapshot_on_close=False)
        out["open_full_s"] = time.perf_counter() - t
        out["rss_open_full_mib"] = _rss()
        full.close()
    # After a clean close (a snapshot at the end): nothing to judge.
    Ledger.open(url).close()
    out["open_clean_s"] = _best(repeat, lambda: Ledger.open(url).close())
    ledger = Ledger.open(url)

    last = ledger.store.last_offset()

    def last_page() -> None:
        rows = list(ledger.store.select_events(after=max(0, last - 500), limit=500, batch=256))
        dumps({"events": [stored_to_wire(r) for r in rows], "next": last, "last_offset": last, "more": False})
    out["feed_page_ms"] = _best(20, last_page) * 1e3
    ledger.close()
    gc.collect()

    try:  # a failure of the projections' fold is reported, and verify and audit still run
        if "projections" not in skip:
            _measure_projections(url, out, skip)
    except Exception as exc:
        out["projections_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        _phase(out, "projections (failed)")

    commands = [c for c in ("verify", "audit") if c not in skip]
    if commands:
        out["raw_verify_rate"] = _raw_verify_rate()
        for command in commands:
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
            _phase(out, command)
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


def run_child(cached: Path, repeat: int, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        scratch = Path(tmp) / "ledger.sqlite"
        shutil.copyfile(cached, scratch)
        # Its snapshot must name the rules of the code the child runs (rules.py or chain.py may
        # have been edited since the cache was refreshed): else the first open judges the whole
        # log and stores a snapshot at its end, and every later open judges nothing. Here, not
        # in the child: a refold there would be in its RSS.
        refresh_snapshot(scratch)
        done = subprocess.run([sys.executable, __file__, "--measure", str(scratch), "--repeat", str(repeat)]
                              + (["--skip", ",".join(sorted(skip))] if skip else []),
                              stdout=subprocess.PIPE, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------- report
ROWS = [  # (key, label, format)
    ("events", "events", "{:,}"),
    ("accounts", "accounts", "{:,}"),
    ("open_s", "open, worst tail (Ledger.open, best)", "{:.3f} s"),
    ("open_cpu_s", "open, worst tail: CPU time (best; the wall time on an idle core)", "{:.3f} s"),
    ("judged_on_open", "events judged on that open (the tail)", "{:,}"),
    ("open_clean_s", "open after a clean close (best, incl. close)", "{:.3f} s"),
    ("open_full_s", "open judging every event (snapshots off)", "{:.2f} s"),
    ("rss_start_mib", "RSS of the process before open (imports)", "{:.0f} MiB"),
    ("rss_open_mib", "RSS after open", "{:.0f} MiB"),
    ("rss_open_full_mib", "RSS after the open judging every event", "{:.0f} MiB"),
    ("heap_open_mib", "Python heap of the open ledger (tracemalloc)", "{:.1f} MiB"),
    ("state_accounts", "judge state after open: accounts (entries, deep size)", "{0[0]:,}, {0[1]:.2f} MiB"),
    ("state_in_transit", "judge state after open: open credits (in_transit)", "{0[0]:,}, {0[1]:.2f} MiB"),
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
            line = (f"{n:,} events: open {r['open_s']:.3f} s (goal ≤ {GOAL_OPEN_S} s): "
                    f"{'MET' if r['open_s'] <= GOAL_OPEN_S else 'MISSED'}; RSS after open {r['rss_open_mib']:.0f} "
                    f"MiB (goal ≤ {GOAL_RSS_MIB:.0f}): {'MET' if r['rss_open_mib'] <= GOAL_RSS_MIB else 'MISSED'}")
            if "rebuild_rate" in r:
                line += (f"; rebuild {r['rebuild_rate']:,.0f} events/s ({r['rebuild_cpu_rate']:,.0f} per CPU second; "
                         f"goal ≥ {GOAL_REBUILD_RATE:,}): "
                         f"{'MET' if r['rebuild_rate'] >= GOAL_REBUILD_RATE else 'MISSED'}")
            out.append(line)
        for command in ("verify", "audit"):
            if f"{command}_ok" in r:
                out.append(f"{n:,} events: {command} {'passed' if r[f'{command}_ok'] else 'FAILED'}, "
                           f"{r[f'{command}_rate'] / r['raw_verify_rate']:.2f} x one thread's raw verify, "
                           f"peak RSS {r[f'{command}_rss_mib']:.0f} MiB")
        if "projections_error" in r:
            out.append(f"{n:,} events: the projections' catch-up FAILED: {r['projections_error']}")
        if skipped := [k for k in SKIPPABLE if r.get("skipped") and k in r["skipped"]]:
            out.append(f"{n:,} events: not measured (--skip): {', '.join(skipped)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated event counts")
    parser.add_argument("--big", action="store_true", help="add a 10M-event ledger")
    parser.add_argument("--users", type=int, default=10_000, help="accounts besides the issuer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "ledger_net" / "scale_bench")
    parser.add_argument("--repeat", type=int, default=3, help="trials of open (best is printed)")
    parser.add_argument("--no-cli", action="store_true", help="= --skip verify,audit")
    parser.add_argument("--skip", default="", help=f"comma-separated phases not to measure, of {','.join(SKIPPABLE)} "
                        "(each O(N): minutes at 1M, up to half an hour at 10M on a shared 2-core machine)")
    parser.add_argument("--build-only", action="store_true", help="build the cached ledgers and stop")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's entry
    args = parser.parse_args(argv)
    skip = frozenset(s for s in args.skip.split(",") if s) | ({"verify", "audit"} if args.no_cli else set())
    if unknown := skip - set(SKIPPABLE):
        parser.error(f"--skip: unknown phase(s) {', '.join(sorted(unknown))}; they are {', '.join(SKIPPABLE)}")
    if args.measure:
        print(json.dumps(measure(args.measure, args.repeat, skip)))
        return 0
    sizes = sorted({int(s) for s in args.sizes.split(",") if s} | ({10_000_000} if args.big else set()))
    build(args.cache_dir, sizes, args.users, args.seed)
    if args.build_only:
        return 0
    results = {}
    for n in sizes:
        print(f"measuring {n:,} events …", file=sys.stderr, flush=True)
        results[n] = run_child(cached_path(args.cache_dir, n, args.users, args.seed), args.repeat, skip)
        results[n]["skipped"] = sorted(skip)
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
