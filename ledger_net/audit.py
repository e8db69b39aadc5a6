"""Auditing: verify a log from scratch and report on its books.

`verify_events` trusts nothing that was stored: it re-checks every event's
canonical bytes, hash and schema, judges it with the chain's own `judge` (signature,
chain link, rules and evidence), and compares each verdict with the stored one. `audit` adds the accountant's
view: supply, conservation, balances, escrow, forks, invalid and pending events,
and whether the projections agree with the rules. Offline, `audit` folds the
projections (`replay.Fold`) in the same pass over the log as the verification.
It also checks the *stored* projections as a restarting node would load them —
their rows and checkpoints, then the tail — against a fresh fold of the log
(`projections.consistency.StoredCheck`, in the same pass), and names every differing row.

Pending events (whose causal past has not arrived) live only in a node's memory:
the store never holds them, so a database opened offline has none by construction
(`audit(..., live=False)` says so instead of reporting a count).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

from .errors import LedgerError, SignatureError
from .ledger.chain import Ledger
from .ledger.crypto_pool import POOL_FAILURES, Triple, start_processes, verify_triples
from .ledger.events import Event
from .ledger.judge import judge
from .ledger.rules import LedgerState
from .ledger.store import StoredEvent
from .projections.consistency import StoredCheck
from .projections.runner import ProjectionRunner
from .replay import Fold, context_of

PENDING_OFFLINE = ("none on disk: a node keeps events that wait for their causal past in memory only "
                   "(a running node shows its count at GET /api/v1/info and in /metrics) and fetches them "
                   "again from its peers after a restart")
RowHook = Callable[[StoredEvent, "Event | None"], None]

CONSERVATION_EVERY = 1024  # events between two conservation checks of verify_events
CHECK_CHUNK = 256  # rows parsed and signature-checked per task of the thread pool
PROCESS_AFTER = 20_000  # rows checked on threads before a longer log's signatures go to processes
PROCESS_CHUNK = 512  # signatures per task of the process pool
Checked = tuple[StoredEvent, "Event | LedgerError", bool]  # (row, its event or why unreadable, signature good)


def workers() -> int:
    """Threads for signature checks: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover -- not Linux
        return max(1, os.cpu_count() or 1)


def _check_chunk(rows: list[StoredEvent], signatures: bool) -> list[Checked]:
    out: list[Checked] = []
    for row in rows:
        try:
            event = Event.from_wire(row.raw, row.sig)
        except LedgerError as exc:
            out.append((row, exc, False))
            continue
        out.append((row, event, not signatures or event.verify_signature()))
    return out


def checked_rows(rows: Iterable[StoredEvent], signatures: bool = True, threads: int | None = None
                 ) -> Iterator[Checked]:
    """Each row, in order, with its bytes parsed and (`signatures`) its signature checked,
    ahead of the caller, by `threads` workers (default: the cores; 1: all on this thread).

    The first `PROCESS_AFTER` rows go to a thread pool: each check drops the GIL, but a worker
    must take it back from the thread that judges, which costs it up to a switch interval, so
    threads add little (docs/performance.md). A longer log's signatures then go to worker
    processes (forkserver: this process has threads) as (key, hash, signature) triples, while
    this thread parses and the caller judges; a pool that cannot start or breaks leaves the
    rest to this thread. Read-ahead is bounded in both, so memory does not grow with the log."""
    threads = threads or workers()
    it = iter(rows)
    if threads <= 1 or not signatures:
        while chunk := list(islice(it, CHECK_CHUNK)):
            yield from _check_chunk(chunk, signatures)
        return
    yield from _on_threads(islice(it, PROCESS_AFTER), threads)
    first = list(islice(it, PROCESS_CHUNK))
    if first:
        yield from _on_processes(chain(first, it), threads)


def _on_threads(it: Iterator[StoredEvent], threads: int) -> Iterator[Checked]:
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="verify-check") as pool:
        inflight: deque[Future[list[Checked]]] = deque()
        while chunk := list(islice(it, CHECK_CHUNK)):
            inflight.append(pool.submit(_check_chunk, chunk, True))
            if len(inflight) >= 2 * threads:
                yield from inflight.popleft().result()
        while inflight:
            yield from inflight.popleft().result()


def _on_processes(it: Iterator[StoredEvent], processes: int) -> Iterator[Checked]:
    pool = start_processes(processes)
    if pool is None:  # no forkserver here: everything on this thread
        while chunk := list(islice(it, CHECK_CHUNK)):
            yield from _check_chunk(chunk, True)
        return
    with pool:
        inflight: deque[tuple[list[tuple[StoredEvent, Event | LedgerError]], list[Triple], Future[bytes] | None]]
        inflight = deque()
        broken = False
        while chunk := list(islice(it, PROCESS_CHUNK)):
            parsed = [_parse(row) for row in chunk]
            triples = [(e.author, bytes.fromhex(e.hash), e.sig) for _, e in parsed if isinstance(e, Event)]
            future = None
            if not broken:
                try:  # the workers start on the first submit: a failure to start shows here
                    future = pool.submit(verify_triples, triples)
                except POOL_FAILURES:
                    broken = True
            inflight.append((parsed, triples, future))
            if len(inflight) >= 3 * processes:
                yield from _joined(*inflight.popleft())
        while inflight:
            yield from _joined(*inflight.popleft())


def _parse(row: StoredEvent) -> tuple[StoredEvent, Event | LedgerError]:
    try:
        return row, Event.from_wire(row.raw, row.sig)
    except LedgerError as exc:
        return row, exc


def _joined(parsed: list[tuple[StoredEvent, Event | LedgerError]], triples: list[Triple],
            future: Future[bytes] | None) -> Iterator[Checked]:
    try:
        good = future.result() if future is not None else verify_triples(triples)
    except POOL_FAILURES:  # a worker died: check these here
        good = verify_triples(triples)
    marks = iter(good)
    for row, event in parsed:
        yield (row, event, bool(next(marks))) if isinstance(event, Event) else (row, event, False)


@dataclass
class Problem:
    author: str
    seq: int
    hash: str
    problem: str

    def as_dict(self) -> dict[str, Any]:
        return {"author": self.author, "seq": self.seq, "hash": self.hash, "problem": self.problem}


@dataclass
class VerifyReport:
    events: int = 0
    effective: int = 0
    invalid: int = 0
    problems: list[Problem] = field(default_factory=list)
    state: LedgerState = field(default_factory=LedgerState)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "events": self.events, "effective": self.effective, "invalid": self.invalid,
                "problems": [p.as_dict() for p in self.problems], "supply": self.state.supply(),
                "conserved": self.state.conserved(), "forks": dict(self.state.frozen)}


def verify_events(rows: Iterable[StoredEvent], forks: dict[str, int] | None = None,
                  each: RowHook | None = None, *, signatures_checked: bool = False,
                  threads: int | None = None) -> VerifyReport:
    """Check every stored event from its bytes up; list each bad one by author, seq and hash.

    `each(row, event)` is called for every row as it is read (`event` None when its bytes
    cannot be parsed), so a caller can fold other views in the same pass over the log.
    `signatures_checked`: the caller verified every row's signature already in this run
    (`bundle.Bundle` does, on all cores, and passes on only the good ones); otherwise the
    rows are parsed and their signatures checked on all cores (`checked_rows`) ahead of
    the judge, which then runs on this thread in log order (`threads`: the pool's size,
    default the cores)."""
    report = VerifyReport()
    state = report.state
    state.frozen.update(forks or {})
    since_check, last = 0, None
    checked = checked_rows(rows, signatures=not signatures_checked, threads=1 if signatures_checked else threads)
    for row, event, signed in checked:
        report.events += 1
        if not isinstance(event, Event):
            report.problems.append(Problem(row.author, row.seq, row.hash, f"unreadable: {event}"))
            if each is not None:
                each(row, None)
            continue
        if each is not None:
            each(row, event)
        if event.hash != row.hash or event.author != row.author or event.seq != row.seq:
            report.problems.append(Problem(row.author, row.seq, row.hash, "stored columns disagree with the bytes"))
        if not signed:  # checked on the pool (checked_rows), as the judge would first
            report.problems.append(Problem(event.author, event.seq, event.hash, "bad signature"))
            continue
        try:  # the chain's own judge: valid here exactly when a node accepts it so
            reason = judge(state, event, signature_checked=True)
        except SignatureError:
            report.problems.append(Problem(event.author, event.seq, event.hash, "bad signature"))
            continue
        except LedgerError as exc:
            report.problems.append(Problem(event.author, event.seq, event.hash, f"broken chain: {exc}"))
            continue
        state.apply(event, reason)
        if reason is None:
            report.effective += 1
        else:
            report.invalid += 1
        if (reason is None) != row.valid:
            report.problems.append(Problem(event.author, event.seq, event.hash,
                                           f"stored verdict {'valid' if row.valid else 'invalid'} but the rules say "
                                           f"{'valid' if reason is None else 'invalid: ' + reason}"))
        since_check += 1
        last = event
        if since_check >= CONSERVATION_EVERY:
            _check_conservation(report, last, since_check)
            since_check = 0
    if since_check and last is not None:
        _check_conservation(report, last, since_check)
    return report


def _check_conservation(report: VerifyReport, last: Event, window: int) -> None:
    """Minted = held + escrowed + in transit + vouchers + burnt. Summing every account costs
    O(accounts), so it runs once per window of events rather than after each one (after each it
    made verify O(events x accounts)); a break names the window's last event."""
    if not report.state.conserved():
        where = "by this event" if window == 1 else f"within the {window} events up to this one"
        report.problems.append(Problem(last.author, last.seq, last.hash, f"conservation broken {where}"))


def audit(ledger: Ledger, runner: ProjectionRunner | Fold | None = None, *, live: bool = True,
          tick: Callable[[int], None] | None = None) -> dict[str, Any]:
    """The accountant's report of one ledger; `ok` is False on any violation.

    `runner` holds the projections to compare with the rules (a node's runner); without
    one, fresh projections are folded from the stored verdicts in the verification's own
    pass over the log. `live` says `ledger.pending` is a running node's buffer; for a
    database opened offline it is empty by construction, so the report says that
    (`pending_events` None, `pending` the why) rather than a misleading 0."""
    forks = {p.author: p.seq for p in ledger.store.fork_proofs()}
    fold = Fold(ledger) if runner is None else None
    projections = runner if runner is not None else fold
    assert projections is not None
    # What a restarting node would load (rows, checkpoints, then the tail) against a fresh fold.
    stored = StoredCheck(ledger, [type(p) for p in projections.projections], context_of(ledger),
                         fold.projections if fold is not None else None)
    invalid: list[dict[str, Any]] = []

    def each(row: StoredEvent, event: Event | None) -> None:
        if event is not None:
            stored.apply(row, event)  # first: it compares rows at a checkpoint before the fold passes it
        if fold is not None and event is not None:
            fold.apply(row, event)
        if not row.valid:
            invalid.append({"offset": row.offset, "hash": row.hash, "author": row.author, "seq": row.seq,
                            "type": row.type, "reason": row.reason})
        if tick is not None:
            tick(1)

    verified = verify_events(ledger.store.select_events(), forks, each)
    balances = projections.balances
    state = verified.state
    mismatched = []
    for author, acct in state.accounts.items():
        projected = balances.accounts.get(author)
        if (projected["balance"] if projected else 0) != acct.balance or \
                (projected["escrow"] if projected else 0) != sum(acct.escrow.values()):
            mismatched.append(author)
    supply = state.supply()
    decimals = state.decimals
    nodes = projections.nodes.nodes
    accounts = []
    for author in sorted(balances.accounts):
        row = balances.accounts[author]
        node = nodes.get(author)
        accounts.append({"account": author, "name": node["name"] if node else None,
                         **{k: row[k] for k in ("balance", "escrow", "incoming", "earned", "spent", "sent",
                                                "received", "minted", "burnt")}})
    violations = [p.as_dict() for p in verified.problems]
    if mismatched:
        violations.append({"problem": "projection balances disagree with the rules", "accounts": mismatched})
    violations += stored.violations()
    return {
        "ok": not violations,
        "net": state.net,
        "decimals": decimals,
        "events": verified.events,
        "effective": verified.effective,
        "invalid_events": verified.invalid,
        "invalid": invalid,
        "pending_events": len(ledger.pending) if live else None,
        "pending": "in this process's pending buffer" if live else PENDING_OFFLINE,
        "void_events": len(ledger.store.void_hashes()),
        "supply": supply,
        "conserved": state.conserved(),
        "forks": [{"author": p.author, "seq": p.seq, "hashes": [p.hash_a, p.hash_b]}
                  for p in ledger.store.fork_proofs()],
        "accounts": accounts,
        "state_hash": projections.state_hash(),
        "violations": violations,
    }
