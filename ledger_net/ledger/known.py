"""Which event hashes this ledger holds, without a set of every hash in memory.

A set of all hashes cost ~170 bytes per event for ever (the bulk of a node's memory at a
million events). The store already indexes `events.hash` and `void_events.hash`, so
membership is asked of it, behind a bounded LRU of hashes recently seen or added. Events
of a batch not yet committed are kept aside until the commit (or dropped with a `reset`
when the write fails and the ledger reloads). `prefetch` answers a whole batch's
questions with one query, so an ingest does not pay a round trip per dependency.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from .store import Store

DEFAULT_CACHE = 50_000


class KnownHashes:
    """`hash in known` for events and void events of one store; `add` for the batch being written."""

    def __init__(self, store: Store, cache_size: int = DEFAULT_CACHE) -> None:
        self.store = store
        self.cache_size = max(0, cache_size)
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._uncommitted: set[str] = set()
        self._absent: set[str] = set()  # asked by `prefetch` and not held (cleared by `forget_absent`)

    def __contains__(self, hash_: object) -> bool:
        if not isinstance(hash_, str):
            return False
        with self._lock:
            if hash_ in self._uncommitted:
                return True
            if hash_ in self._recent:
                self._recent.move_to_end(hash_)
                return True
            if hash_ in self._absent:
                return False
        if not self.store.has_hashes([hash_]):
            return False
        self._remember([hash_])
        return True

    def __len__(self) -> int:
        """Bounded by the cache size plus the batch being written (not the log's size)."""
        return len(self._recent) + len(self._uncommitted)

    def add(self, hash_: str) -> None:
        """A hash of the batch being written: known from now on, cached once committed."""
        with self._lock:
            self._uncommitted.add(hash_)
            self._absent.discard(hash_)

    def commit(self) -> None:
        """The batch is durable: its hashes move into the bounded cache."""
        with self._lock:
            done, self._uncommitted = self._uncommitted, set()
        self._remember(done)

    def reset(self) -> None:
        """Forget everything cached (the ledger reloaded from the store)."""
        with self._lock:
            self._recent.clear()
            self._uncommitted.clear()
            self._absent.clear()

    def prefetch(self, hashes: Iterable[str]) -> None:
        """Ask the store about many hashes at once; the answers serve the next lookups
        (absent ones until `forget_absent`, which the caller runs when its batch is done)."""
        with self._lock:  # absent ones were asked in this batch already (an ingest asks twice)
            ask = {h for h in hashes if h not in self._uncommitted and h not in self._recent and h not in self._absent}
        if not ask:
            return
        held = self.store.has_hashes(ask)
        self._remember(held)
        with self._lock:
            if len(self._absent) > self.cache_size:  # prefetched but never ingested: start over
                self._absent.clear()
            self._absent.update(h for h in ask - held if h not in self._uncommitted)

    def prefetch_wire(self, items: Sequence[Any]) -> None:
        """`prefetch` the hashes of wire items (`{"raw": <text>, ...}`) about to be parsed with
        `skip=known.__contains__`: one query for a page instead of one per new event.
        Malformed items are left for the parser to refuse."""
        hashes = []
        for item in items:
            raw = item.get("raw") if isinstance(item, dict) else None
            if isinstance(raw, str):
                try:
                    hashes.append(hashlib.sha256(raw.encode("utf-8")).hexdigest())
                except UnicodeEncodeError:
                    continue
        self.prefetch(hashes)

    def unknown(self, hashes: Iterable[str]) -> set[str]:
        """Those of `hashes` this ledger does not hold (one query for the lot). After the
        prefetch each is in the batch, cached, or asked and absent: sorted under one lock
        (an ingest asks this of every event of a page); any other is asked as `in` does."""
        hashes = list(hashes)
        self.prefetch(hashes)
        out: set[str] = set()
        unsure: list[str] = []
        with self._lock:
            uncommitted, recent, absent = self._uncommitted, self._recent, self._absent
            for h in hashes:
                if h in uncommitted or h in recent:
                    continue
                if h in absent:
                    out.add(h)
                else:
                    unsure.append(h)
        out.update(h for h in unsure if h not in self)
        return out

    def forget_absent(self) -> None:
        with self._lock:
            self._absent.clear()

    def _remember(self, hashes: Iterable[str]) -> None:
        if self.cache_size == 0:
            return
        with self._lock:
            recent = self._recent
            for h in hashes:
                recent[h] = None
                recent.move_to_end(h)
            while len(recent) > self.cache_size:
                recent.popitem(last=False)
