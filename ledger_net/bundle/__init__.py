"""NDJSON audit bundles: reading, checking, merging and loading them, in any line order.

A bundle is one stored event a line (`bundle_line`, what `ledger-net export` writes). An
auditor may get several — one per node — in whatever order their lines were cut, shuffled,
concatenated, duplicates included. `Bundle` takes them all and puts the union in a causal
order before anything is judged:

1. **Index** (one streaming pass over every file, in parallel): each line is parsed, its bytes
   hashed, its envelope checked and its signature verified by a pool of threads sized to the
   cores (PyNaCl releases the GIL). What is kept of a good line is a compact header: its hash
   (32 bytes), author (an index into the authors), seq, the file and byte offset of the line,
   the exporter's verdict bit, and its links (prev, deps and the genesis) as edges. A bad line
   is kept as a `LineProblem`; a line whose event is already held (the same bytes from another
   file or line) is counted as a duplicate and dropped.
2. **Sort**: Kahn's algorithm over the links, ties broken by (author, seq, hash), so the order
   is the same whatever the order of the input. Events whose causal past is not in the bundle
   never become ready: they are `unreached`, each with the hashes it lacks.
3. **Read** the events in that order by seeking to their offsets (bodies are never all held).

Memory: the bodies are read back one at a time; what grows with the input is the headers and
links, about 220 bytes an event once sorted and 330 at the peak of the sort for events with two
links (tests/audit/test_bundles.py measures it; each further dep adds about 50), plus a fixed
read-ahead of 2 x threads x CHUNK_LINES lines and the rules' own state (accounts, open escrows)
that any verification keeps. Standard input is spooled to a temporary file, so it can be re-read.

The line format, the per-line check and the file helpers are in `bundle.lines`; `Bundle` (index,
sort, read, verify, load) is here.
"""

from __future__ import annotations

import heapq
import os
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

from ..audit import Problem, VerifyReport, verify_events, workers
from ..ledger.events import Event
from ..ledger.store import StoredEvent
from .lines import (
    CHUNK_LINES,
    BundleError,
    LineProblem,
    Tick,
    _check,
    _Checked,
    _chunks,
    _lines,
    bundle_line,
    input_size,
    parse_line,
    spool,
)


@dataclass
class Unreached:
    """An event the causal order never reached: its causal past is not (all) in the bundle."""

    hash: str
    author: str
    seq: int
    missing: list[str]  # needed hashes that no good line of the bundle holds
    waits_for: list[str]  # needed hashes the bundle holds but could not reach either
    bad: dict[str, str] = field(default_factory=dict)  # of `missing`: those a bad line claims -> where

    def problem(self) -> str:
        if self.missing:
            return "its causal past is not in the bundle: needs " + ", ".join(
                f"{h} ({self.bad[h]} claims it but does not check out)" if h in self.bad else h
                for h in self.missing)
        return "waits for events whose causal past is not in the bundle: " + ", ".join(self.waits_for)


@dataclass
class Bundle:
    """The union of one or more bundle files, indexed (see the module docstring)."""

    paths: list[str]
    names: list[str]
    lines: int = 0
    duplicates: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    forks: dict[str, int] = field(default_factory=dict)
    disagreements: list[Problem] = field(default_factory=list)
    # compact headers, one entry per distinct event (index i)
    _index: dict[bytes, int] = field(default_factory=dict)
    _hashes: bytearray = field(default_factory=bytearray)
    _authors: list[str] = field(default_factory=list)
    _author_ids: dict[str, int] = field(default_factory=dict)
    _author: array[int] = field(default_factory=lambda: array("I"))
    _seq: array[int] = field(default_factory=lambda: array("q"))
    _file: array[int] = field(default_factory=lambda: array("H"))
    _offset: array[int] = field(default_factory=lambda: array("q"))
    _size: array[int] = field(default_factory=lambda: array("I"))
    _line: array[int] = field(default_factory=lambda: array("I"))
    _valid: bytearray = field(default_factory=bytearray)
    _edge_child: array[int] = field(default_factory=lambda: array("I"))
    _edge_need: bytearray = field(default_factory=bytearray)
    _order: array[int] | None = None
    _unreached: list[Unreached] | None = None

    # ------------------------------------------------------------------ reading

    @classmethod
    def read(cls, paths: Sequence[str], tick: Tick | None = None, threads: int | None = None) -> Bundle:
        """Index the files (each '-' is standard input, spooled to a temporary file)."""
        if not paths:
            raise BundleError("no bundle given")
        if sum(1 for p in paths if p == "-") > 1:
            raise BundleError("standard input ('-') can be given once")
        names = ["stdin" if p == "-" else p for p in paths]
        bundle = cls([spool(p) for p in paths], names)
        threads = threads or workers()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bundle-check") as pool:
            for file_no, path in enumerate(bundle.paths):
                bundle._index_file(file_no, path, pool, threads, tick)
        return bundle

    def _index_file(self, file_no: int, path: str, pool: ThreadPoolExecutor, threads: int,
                    tick: Tick | None) -> None:
        source = self.names[file_no]
        try:
            handle = open(path, "rb")  # noqa: SIM115 -- closed below, after the last chunk
        except OSError as exc:
            raise BundleError(f"cannot read {source}: {exc.strerror or exc}") from None
        with handle:
            inflight: deque[Future[list[_Checked]]] = deque()

            def check_all(chunk: list[tuple[int, int, bytes]]) -> list[_Checked]:
                return [_check(n, o, line, source) for n, o, line in chunk]

            for chunk in _chunks(_lines(handle), CHUNK_LINES):
                inflight.append(pool.submit(check_all, chunk))
                if len(inflight) >= 2 * threads:  # bounded read-ahead: memory does not grow with the file
                    self._take(file_no, inflight.popleft().result(), tick)
            while inflight:
                self._take(file_no, inflight.popleft().result(), tick)

    def _take(self, file_no: int, results: list[_Checked], tick: Tick | None) -> None:
        source = self.names[file_no]
        for item in results:
            self.lines += 1
            if tick is not None:
                tick(item.size)
            event = item.event
            if event is None:
                self.problems.append(LineProblem(source, item.number, item.problem or "unreadable", *item.claims))
                continue
            key = bytes.fromhex(event.hash)
            held = self._index.get(key)
            if held is not None:
                self.duplicates += 1
                if bool(self._valid[held]) != item.valid:
                    self.disagreements.append(Problem(event.author, event.seq, event.hash,
                                                      f"the copies disagree on the verdict ({source} line "
                                                      f"{item.number} says {'valid' if item.valid else 'invalid'})"))
                continue
            if item.fork is not None:
                author, seq = item.fork
                self.forks[author] = min(seq, self.forks.get(author, seq))
            i = len(self._index)
            self._index[key] = i
            self._hashes += key
            aid = self._author_ids.get(event.author)
            if aid is None:
                aid = self._author_ids[event.author] = len(self._authors)
                self._authors.append(event.author)
            self._author.append(aid)
            self._seq.append(event.seq)
            self._file.append(file_no)
            self._offset.append(item.offset)
            self._size.append(item.size)
            self._line.append(item.number)
            self._valid.append(1 if item.valid else 0)
            needs = ((event.prev,) if event.prev else ()) + tuple(event.deps)
            if not event.is_genesis:
                needs += (event.net,)
            for need in set(needs):
                self._edge_child.append(i)
                self._edge_need += bytes.fromhex(need)

    # ------------------------------------------------------------------ the causal order

    def __len__(self) -> int:
        return len(self._index)

    def hash_of(self, i: int) -> str:
        return self._hashes[32 * i:32 * i + 32].hex()

    def _children(self) -> tuple[array[int], array[int], array[int], dict[int, list[str]]]:
        """The links resolved: (indegree, CSR starts, children, hashes each event needs that no
        line holds). The edges' hashes are dropped once resolved."""
        n = len(self._index)
        indegree = array("I", bytes(4 * n))
        starts = array("I", bytes(4 * (n + 1)))
        parents = array("q", bytes(8 * len(self._edge_child)))
        absent: dict[int, list[str]] = {}
        for e, child in enumerate(self._edge_child):
            need = bytes(self._edge_need[32 * e:32 * e + 32])
            parent = self._index.get(need)
            if parent is None:
                parents[e] = -1
                absent.setdefault(child, []).append(need.hex())
            else:
                parents[e] = parent
                starts[parent + 1] += 1
            indegree[child] += 1
        self._edge_need = bytearray()
        for i in range(n):  # children of i: children[starts[i]:starts[i + 1]]
            starts[i + 1] += starts[i]
        fill = array("I", starts)
        children = array("I", bytes(4 * max(1, starts[n])))
        for e, child in enumerate(self._edge_child):
            parent = parents[e]
            if parent >= 0:
                children[fill[parent]] = child
                fill[parent] += 1
        self._edge_child = array("I")
        return indegree, starts, children, absent

    def _sort(self) -> None:
        """Kahn's algorithm; ties by (author, seq, hash)."""
        n = len(self._index)
        indegree, starts, children, absent = self._children()

        def key(i: int) -> tuple[str, int, bytes, int]:
            return (self._authors[self._author[i]], self._seq[i], bytes(self._hashes[32 * i:32 * i + 32]), i)

        ready = [key(i) for i in range(n) if indegree[i] == 0]
        heapq.heapify(ready)
        order = array("I")
        while ready:
            i = heapq.heappop(ready)[3]
            order.append(i)
            for c in range(starts[i], starts[i + 1]):
                child = children[c]
                indegree[child] -= 1
                if indegree[child] == 0:
                    heapq.heappush(ready, key(child))
        self._order = order
        self._unreached = self._left_out(order, starts, children, absent) if len(order) < n else []

    def _left_out(self, order: array[int], starts: array[int], children: array[int],
                  absent: dict[int, list[str]]) -> list[Unreached]:
        """Each event the order did not reach, with what it lacks or waits for."""
        n = len(self._index)
        placed = bytearray(n)
        for i in order:
            placed[i] = 1
        waits: dict[int, list[str]] = {}
        for p in range(n):  # parents that were not reached hold up their children
            if not placed[p]:
                for c in range(starts[p], starts[p + 1]):
                    waits.setdefault(children[c], []).append(self.hash_of(p))
        claimed = {p.hash: self.where(p) for p in self.problems if p.hash}
        unreached = []
        for i in range(n):
            if not placed[i]:
                missing = sorted(absent.get(i, []))
                unreached.append(Unreached(self.hash_of(i), self._authors[self._author[i]], self._seq[i], missing,
                                           sorted(waits.get(i, [])), {h: claimed[h] for h in missing if h in claimed}))
        unreached.sort(key=lambda u: (u.author, u.seq, u.hash))
        return unreached

    @property
    def order(self) -> array[int]:
        if self._order is None:
            self._sort()
        assert self._order is not None
        return self._order

    @property
    def unreached(self) -> list[Unreached]:
        if self._unreached is None:
            self._sort()
        assert self._unreached is not None
        return self._unreached

    def _read_at(self, handles: Sequence[IO[bytes]], i: int) -> StoredEvent:
        handle = handles[self._file[i]]
        handle.seek(self._offset[i])
        line = handle.read(self._size[i])
        row = parse_line(line, self._line[i])
        if isinstance(row, str):  # the file changed under us since it was indexed
            raise BundleError(f"{self.names[self._file[i]]} changed while it was read ({row})")
        return row

    def rows(self, which: Sequence[int] | None = None) -> Iterator[StoredEvent]:
        """The bundle's rows in the causal order (or the given indexes), read back by offset."""
        handles = [open(p, "rb") for p in self.paths]  # noqa: SIM115 -- closed in finally
        try:
            for i in self.order if which is None else which:
                yield self._read_at(handles, i)
        finally:
            for handle in handles:
                handle.close()

    def unreached_rows(self) -> Iterator[StoredEvent]:
        """The rows the causal order did not reach, read back by offset."""
        return self.rows([self._index[bytes.fromhex(u.hash)] for u in self.unreached])

    def events(self, which: Sequence[int] | None = None) -> Iterator[Event]:
        for row in self.rows(which):
            yield Event.from_wire(row.raw, row.sig)

    # ------------------------------------------------------------------ judging

    def verify(self, tick: Tick | None = None) -> VerifyReport:
        """`audit.verify_events` over the events in causal order (their signatures were checked
        when the bundle was indexed); then each bad line and each event the order never reached."""

        def counted() -> Iterator[StoredEvent]:
            for row in self.rows():
                if tick is not None:
                    tick(1)
                yield row

        report = verify_events(counted(), dict(self.forks), signatures_checked=True)
        report.events += len(self.problems) + len(self.unreached)
        report.problems[:0] = [Problem(p.author, p.seq, p.hash or self.where(p), self.describe(p))
                               for p in self.problems]
        report.problems += self.disagreements
        report.problems += [Problem(u.author, u.seq, u.hash, u.problem()) for u in self.unreached]
        return report

    def where(self, p: LineProblem) -> str:
        """'line N', with the file's name when there are several."""
        return f"line {p.number}" if len(self.paths) == 1 else f"{p.source} line {p.number}"

    def describe(self, p: LineProblem) -> str:
        """The problem of a line, with its line number (and file, when there are several)."""
        if p.problem.startswith(f"line {p.number} "):
            return p.problem if len(self.paths) == 1 else str(p)
        return f"{self.where(p)}: {p.problem}"

    def first_problem(self) -> LineProblem | None:
        return self.problems[0] if self.problems else None

    def load(self, ledger: Any, tick: Tick | None = None, batch: int = 1000) -> dict[str, Any]:
        """Ingest the events into `ledger` in causal order, in batches (the ledger verifies each
        again and judges it); the unreached go last and wait in its pending buffer. Refuses
        (BundleError, nothing stored) if any line is bad."""
        problem = self.first_problem()
        if problem is not None:
            raise BundleError(str(problem))
        stored = duplicates = 0
        refused: dict[str, str] = {}
        pending: list[Event] = []

        def flush() -> None:
            nonlocal stored, duplicates
            report = ledger.ingest(pending)
            stored += len(report.stored)
            duplicates += report.duplicates
            refused.update(report.refused)
            if tick is not None:
                tick(len(pending))
            pending.clear()

        for stream in (self.events(), (Event.from_wire(r.raw, r.sig) for r in self.unreached_rows())):
            for event in stream:
                pending.append(event)
                if len(pending) >= batch:
                    flush()
        if pending:
            flush()
        return {"lines": self.lines, "events": len(self), "stored": stored,
                "duplicates": duplicates + self.duplicates, "refused": refused, "pending": len(ledger.pending)}

    def size_bytes(self) -> int:
        """Bytes the files hold (for a progress bar over the indexing pass)."""
        return sum(os.path.getsize(p) for p in self.paths)


__all__ = ["Bundle", "BundleError", "LineProblem", "Unreached", "bundle_line", "input_size", "parse_line", "spool",
           "workers"]
