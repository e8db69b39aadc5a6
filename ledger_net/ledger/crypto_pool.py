"""Signing and signature checks on every core: one thread pool per ledger, and worker
processes for the signature checks of large batches read ahead.

Small batches are done on the caller's thread: below `PARALLEL_FROM` items the pool's
hand-off costs more than it saves. A batch of local appends is built first and then signed
on the pool, the caller waiting: overlapping the building (GIL-bound) with the signing
(threads taking turns) was measured no faster on the shared 2-core VM (docs/performance.md).
`verify_ahead` starts the checks of a batch and
returns at once, so a reader verifies its next page while the ledger judges and writes
the current one. Threads gain little there: each PyNaCl check drops the GIL, then waits
up to a switch interval to take it back from the thread that judges and writes. So a
batch of `PROCESS_FROM` events or more goes to worker processes (forkserver, started on
the first such batch): they get (author key, hash, signature) triples, all public, and
answer one byte per triple. A pool that cannot start or breaks leaves the checks to the
threads (or to the caller's thread, for a task lost with a worker). `verify_triples` and
`start_processes` are also what `audit.checked_rows` uses for a long log.

`check_wire_ahead` moves the parsing too: the workers get a page's (canonical bytes,
signature) pairs as they came off the wire and check everything `Event.from_wire` checks
(form, canonical bytes, schema, size) and the signature, answering one byte per pair; the
caller builds the events the workers passed without checking them again
(`Event.from_checked`), and parses any other here, so its error is the one `from_wire`
raises and a bad signature shows in `Ledger.ingest` as before.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from .encoding import content_hash
from .events import Event
from .identity import Identity, verify

PARALLEL_FROM = 64  # items below which the caller's thread does the work
VERIFY_CHUNK = 128  # events per task of `verify_ahead` on the threads
PROCESS_FROM = 256  # events in one `verify_ahead` batch from which the checks go to processes
PROCESS_CHUNK = 256  # fewest signatures per task of the worker processes (a batch is split in one task per worker)
POOL_FAILURES = (BrokenProcessPool, OSError, RuntimeError)  # a process pool that could not start or broke

Triple = tuple[str, bytes, bytes]  # (author's public key hex, event hash, signature)
Wire = tuple[bytes, bytes]  # (an event's canonical bytes as received, its signature)
T = TypeVar("T")


def verify_triples(triples: Sequence[Triple]) -> bytes:
    """1 or 0 per triple: whether the signature verifies (run in a worker process)."""
    return bytes(verify(author, digest, sig) for author, digest, sig in triples)


def check_wire(pairs: Sequence[Wire]) -> bytes:
    """1 or 0 per pair: whether it parses into an event (`Event.from_wire`: form, canonical
    bytes, schema, size) whose signature verifies (run in a worker process). A 0 says only
    "check it there": the caller parses that pair itself and so raises the precise error."""
    marks = bytearray(len(pairs))
    for i, (raw, sig) in enumerate(pairs):
        try:
            marks[i] = Event.from_wire(raw, sig).verify_signature()
        except Exception:  # any refusal: the caller's own parse names it
            marks[i] = 0
    return bytes(marks)


def triples_of(events: Sequence[Event]) -> list[Triple]:
    """What a worker process needs to check `events`' signatures: public data only."""
    return [(e.author, bytes.fromhex(e.hash), e.sig) for e in events]


def start_processes(processes: int) -> ProcessPoolExecutor | None:
    """A pool of worker processes for `verify_triples`, or None where none can be made.

    forkserver, not fork: the caller has threads. The workers start on the first submit,
    so a caller must also treat `POOL_FAILURES` from `submit` as "no pool"."""
    try:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])  # workers fork with this module imported
        return ProcessPoolExecutor(max_workers=processes, mp_context=context)
    except (OSError, ValueError):
        return None


def _marks(events: Sequence[Event]) -> bytes:
    return bytes(e.verify_signature() for e in events)


class SignatureChecks:
    """Signature checks of one batch running on a ledger's pool (see `CryptoPool.verify_ahead`)."""

    def __init__(self, parts: list[tuple[Sequence[Event], Future[bytes]]]) -> None:
        self._parts = parts

    def result(self) -> tuple[list[Event], set[int]]:
        """(the events whose signature is bad, the ids of every event checked), once done."""
        bad: list[Event] = []
        checked: set[int] = set()
        for part, future in self._parts:
            try:
                marks = future.result()
            except POOL_FAILURES:  # a worker process died with this task: check it here
                marks = _marks(part)
            bad.extend(e for e, ok in zip(part, marks, strict=True) if not ok)
            checked.update(id(e) for e in part)
        return bad, checked


class WireChecks:
    """Parsing and signature checks of one page of wire pairs running on a ledger's pool (see
    `CryptoPool.check_wire_ahead`)."""

    def __init__(self, parts: list[tuple[Sequence[Wire], Future[bytes]]], hashes: Sequence[str] | None = None) -> None:
        self._parts = parts
        self._hashes = hashes

    def futures(self) -> list[Future[bytes]]:
        """The running tasks (to wait for them without holding a thread)."""
        return [future for _, future in self._parts]

    def result(self) -> tuple[list[Event], SignatureChecks]:
        """The page's events, in order, and their signature checks for `Ledger.ingest`, once
        done. An event the workers passed is built without checking it again; any other is
        parsed here, so a malformed one raises what `Event.from_wire` raises, and one that
        parses has a bad signature, which the checks report (ingest refuses the batch)."""
        events: list[Event] = []
        bad: set[int] = set()
        hashes = self._hashes
        for part, future in self._parts:
            try:
                marks = future.result()
            except POOL_FAILURES:  # a worker process died with this task: check it here
                marks = check_wire(part)
            for (raw, sig), ok in zip(part, marks, strict=True):
                if ok:  # the hash is of these very bytes (taken here, or by `check_wire_ahead`'s caller)
                    events.append(Event.from_checked(raw, sig, content_hash(raw) if hashes is None
                                                     else hashes[len(events)]))
                else:
                    event = Event.from_wire(raw, sig)
                    events.append(event)
                    bad.add(id(event))
        done: Future[bytes] = Future()
        done.set_result(bytes(id(e) not in bad for e in events) if bad else b"\x01" * len(events))
        return events, SignatureChecks([(events, done)])


class CryptoPool:
    """`threads` workers (default: one per core) that sign and verify, and as many worker
    processes for large batches checked ahead (`processes=False`: never)."""

    def __init__(self, threads: int | None = None, processes: bool = True) -> None:
        self.threads = max(1, threads or os.cpu_count() or 2)
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="ledger-crypto")
        self._use_processes = processes and self.threads > 1
        self._processes: ProcessPoolExecutor | None = None
        self._processes_lock = threading.Lock()
        self._closed = False

    def sign_all(self, identity: Identity, digests: list[bytes]) -> list[bytes]:
        """`identity`'s signatures of `digests`, in order."""
        if len(digests) < PARALLEL_FROM or self.threads == 1:
            return [identity.sign(d) for d in digests]
        size = -(-len(digests) // self.threads)
        parts = [digests[i:i + size] for i in range(0, len(digests), size)]
        return [sig for part in self._pool.map(lambda p: [identity.sign(d) for d in p], parts) for sig in part]

    def verify(self, events: Sequence[Event]) -> list[bool]:
        """Whether each event's signature is good, in order."""
        if len(events) < PARALLEL_FROM or self.threads == 1:
            return [e.verify_signature() for e in events]
        size = -(-len(events) // self.threads)
        parts = [events[i:i + size] for i in range(0, len(events), size)]
        return [ok for part in self._pool.map(lambda p: [e.verify_signature() for e in p], parts) for ok in part]

    def verify_ahead(self, events: Sequence[Event], processes: bool = True) -> SignatureChecks:
        """Start checking `events`' signatures and return at once (in worker processes from
        `PROCESS_FROM` events unless `processes` is False, else on the threads)."""
        return SignatureChecks(self._ahead(events, processes, verify_triples, _marks, triples_of))

    def check_wire_ahead(self, pairs: Sequence[Wire], processes: bool = True,
                         hashes: Sequence[str] | None = None) -> WireChecks:
        """Start parsing and checking a page of wire pairs and return at once: in worker
        processes from `PROCESS_FROM` pairs unless `processes` is False, else on the threads.
        `hashes`: the content hash of each pair's bytes, if the caller took them already."""
        if hashes is not None and len(hashes) != len(pairs):
            raise ValueError("one content hash per wire pair")
        return WireChecks(self._ahead(pairs, processes, check_wire, check_wire), hashes)

    def _ahead(self, items: Sequence[T], processes: bool, in_process: Callable[[Any], bytes],
               in_thread: Callable[[Sequence[T]], bytes],
               sent: Callable[[Sequence[T]], Any] = lambda part: part) -> list[tuple[Sequence[T], Future[bytes]]]:
        """Start `in_process(sent(part))` on the worker processes (from `PROCESS_FROM` items
        unless `processes` is False, and while they work), else `in_thread(part)` on the
        threads, for each part of `items`: the parts with their running tasks."""
        pool = self._process_pool() if processes and len(items) >= PROCESS_FROM else None
        if pool is not None:
            size = max(PROCESS_CHUNK, -(-len(items) // self.threads))  # one task per worker: each
            parts = [items[i:i + size] for i in range(0, len(items), size)]  # hand-off needs the GIL
            try:  # the workers start on the first submit: a failure to start shows here
                return [(part, pool.submit(in_process, sent(part))) for part in parts]
            except POOL_FAILURES:
                self._give_up_processes()
        parts = [items[i:i + VERIFY_CHUNK] for i in range(0, len(items), VERIFY_CHUNK)]
        return [(part, self._pool.submit(in_thread, part)) for part in parts]

    @property
    def processes_running(self) -> bool:
        """Whether this pool has worker processes (started, not yet shut)."""
        return self._processes is not None

    def _process_pool(self) -> ProcessPoolExecutor | None:
        with self._processes_lock:
            if self._use_processes and self._processes is None and not self._closed:
                self._processes = start_processes(self.threads)
                self._use_processes = self._processes is not None
            return self._processes

    def _give_up_processes(self) -> None:
        """The processes could not start or broke: the threads check from now on."""
        with self._processes_lock:
            pool, self._processes, self._use_processes = self._processes, None, False
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def shutdown(self) -> None:
        with self._processes_lock:
            self._closed = True
            pool, self._processes = self._processes, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True)
