"""The bounded buffer of events whose causal past has not arrived yet.

Anyone can sign orphans (valid signatures, unknown `prev`) with throwaway keys, so
the buffer is partitioned and its entries expire:

* strangers (authors with no stake, see `LedgerState.is_established`) share at most
  `stranger_share` of the slots, each stranger at most `stranger_per_author`, and the
  strangers' events from one source (the pushing peer's address, or the peer we pull
  from) at most `per_source`;
* an established author at most `per_author` slots (default: no cap of its own);
* when the buffer is full, an established author's event evicts the oldest stranger
  entry instead of being refused;
* an entry older than `ttl` seconds is dropped (its author can send it again, and
  sync fetches the causal past of what is still wanted).

A refusal of one event by a partition (`PendingQuotaError`) drops that event only;
a full buffer for an established author (`PendingLimitError`) refuses the batch.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import PendingLimitError
from .events import Event

DEFAULT_MAX_EVENTS = 10_000
DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_TTL = 300.0  # seconds an event may wait for its causal past
DEFAULT_STRANGER_SHARE = 0.25  # of max_events, for all strangers together
DEFAULT_STRANGER_PER_AUTHOR = 16
DEFAULT_PER_SOURCE_SHARE = 0.1  # of max_events, for strangers' events from one source


class PendingQuotaError(PendingLimitError):
    """One event refused by a partition of the pending buffer (its author's or source's
    share is full); other events of the batch are unaffected."""


@dataclass(slots=True)
class _Entry:
    event: Event
    source: str | None
    stranger: bool
    added: float


class PendingBuffer:
    """Events waiting for their prev/deps, indexed by the hashes they wait for."""

    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS, max_bytes: int = DEFAULT_MAX_BYTES, *,
                 ttl: float = DEFAULT_TTL, stranger_share: float = DEFAULT_STRANGER_SHARE,
                 stranger_per_author: int = DEFAULT_STRANGER_PER_AUTHOR,
                 per_source: int | None = None, per_author: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.max_strangers = max(1, int(max_events * stranger_share))
        self.stranger_per_author = max(1, stranger_per_author)
        self.per_source = per_source if per_source is not None else max(1, int(max_events * DEFAULT_PER_SOURCE_SHARE))
        self.per_author = per_author  # None: an established author shares the whole buffer
        self.clock = clock
        self._entries: dict[str, _Entry] = {}  # insertion order is age order
        self._missing: dict[str, set[str]] = {}  # event hash -> hashes it still waits for
        self._waiters: defaultdict[str, set[str]] = defaultdict(set)  # missing hash -> waiting events
        self._bytes = 0
        self._by_author: Counter[str] = Counter()
        self._by_source: Counter[str] = Counter()
        self._strangers = 0
        self.expired = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, hash_: str) -> bool:
        return hash_ in self._entries

    @property
    def strangers(self) -> int:
        """How many waiting events are by authors with no stake."""
        return self._strangers

    def add(self, event: Event, missing: set[str], *, source: str | None = None, stranger: bool = False) -> None:
        """Park `event` until `missing` arrives. `PendingQuotaError` if its author's or
        source's share is full, `PendingLimitError` if the whole buffer is."""
        if event.hash in self._entries:
            return
        self.expire()
        size = len(event.raw)
        if stranger:
            if self._by_author[event.author] >= self.stranger_per_author:
                raise PendingQuotaError(f"author {event.author[:16]}… has no stake and already "
                                        f"{self.stranger_per_author} events waiting for their causal past")
            if self._strangers >= self.max_strangers:
                raise PendingQuotaError(f"the pending slots for authors with no stake ({self.max_strangers}) "
                                        "are full: send the causal past first")
            if source is not None and self._by_source[source] >= self.per_source:
                raise PendingQuotaError(f"source {source[:64]} already has {self.per_source} events of authors "
                                        "with no stake waiting for their causal past")
        elif self.per_author is not None and self._by_author[event.author] >= self.per_author:
            raise PendingQuotaError(f"author {event.author[:16]}… already has {self.per_author} events waiting "
                                    "for their causal past")
        while not stranger and self._full(size) and self._strangers:
            self._evict_stranger()
        if self._full(size):
            raise PendingLimitError(
                f"pending buffer is full ({len(self._entries)} events, {self._bytes} bytes): "
                "send the causal past first")
        self._entries[event.hash] = _Entry(event, source, stranger, self.clock())
        self._missing[event.hash] = set(missing)
        self._bytes += size
        self._by_author[event.author] += 1
        if stranger:
            self._strangers += 1
            if source is not None:
                self._by_source[source] += 1
        for h in missing:
            self._waiters[h].add(event.hash)

    def _full(self, size: int) -> bool:
        return len(self._entries) >= self.max_events or self._bytes + size > self.max_bytes

    def _evict_stranger(self) -> None:
        victim = next(h for h, e in self._entries.items() if e.stranger)
        self.evicted += 1
        self.discard(victim)

    def expire(self) -> int:
        """Drop entries older than `ttl`; returns how many."""
        if not self._entries:
            return 0
        cutoff = self.clock() - self.ttl
        old = []
        for hash_, entry in self._entries.items():
            if entry.added > cutoff:
                break
            old.append(hash_)
        for hash_ in old:
            self.discard(hash_)
        self.expired += len(old)
        return len(old)

    def arrived(self, hash_: str) -> list[Event]:
        """`hash_` is now stored: return the events that wait for nothing else any more."""
        ready = []
        for waiter in self._waiters.pop(hash_, ()):
            missing = self._missing.get(waiter)
            if missing is None:
                continue
            missing.discard(hash_)
            if not missing:
                ready.append(self._pop(waiter))
        return ready

    def discard(self, hash_: str) -> None:
        """Forget one waiting event (and its place in the index of missing hashes)."""
        if hash_ not in self._entries:
            return
        for h in self._missing.get(hash_, ()):
            waiters = self._waiters.get(h)
            if waiters is not None:
                waiters.discard(hash_)
                if not waiters:
                    del self._waiters[h]
        self._pop(hash_)

    def drop_author(self, author: str) -> int:
        """Forget every waiting event of `author` (e.g. its past could not be fetched)."""
        hashes = [h for h, e in self._entries.items() if e.event.author == author]
        for h in hashes:
            self.discard(h)
        return len(hashes)

    def clear(self) -> None:
        """Forget everything (after a failed write: the state was reloaded from the store)."""
        self._entries.clear()
        self._missing.clear()
        self._waiters.clear()
        self._bytes = 0
        self._by_author.clear()
        self._by_source.clear()
        self._strangers = 0

    def _pop(self, hash_: str) -> Event:
        entry = self._entries.pop(hash_)
        self._missing.pop(hash_, None)
        event = entry.event
        self._bytes -= len(event.raw)
        _decrement(self._by_author, event.author)
        if entry.stranger:
            self._strangers -= 1
            if entry.source is not None:
                _decrement(self._by_source, entry.source)
        return event

    def wanted(self) -> set[str]:
        """Hashes some pending event waits for and that are not themselves pending."""
        self.expire()
        return {h for h, waiters in self._waiters.items() if waiters and h not in self._entries}

    def wanted_for(self, due_strangers: set[str]) -> set[str]:
        """:meth:`wanted`, but of strangers' events only those whose author is in
        ``due_strangers``: an orphan flood must not cost a fetch per missing hash per round."""
        self.expire()
        out = set()
        for h, waiters in self._waiters.items():
            if not waiters or h in self._entries:
                continue
            for waiter in waiters:
                entry = self._entries.get(waiter)
                if entry is not None and (not entry.stranger or entry.event.author in due_strangers):
                    out.add(h)
                    break
        return out

    def wanted_chains(self) -> dict[str, int]:
        """author -> lowest seq of theirs that is pending (its predecessors are wanted)."""
        self.expire()
        lowest: dict[str, int] = {}
        for entry in self._entries.values():
            event = entry.event
            if event.author not in lowest or event.seq < lowest[event.author]:
                lowest[event.author] = event.seq
        return lowest

    def events(self) -> list[Event]:
        return [e.event for e in self._entries.values()]

    def entries(self) -> list[tuple[Event, str | None, bool]]:
        """(event, source, stranger) of every waiting event, oldest first."""
        return [(e.event, e.source, e.stranger) for e in self._entries.values()]

    def stats(self) -> dict[str, int]:
        return {"events": len(self._entries), "bytes": self._bytes, "strangers": self._strangers,
                "authors": len(self._by_author), "expired": self.expired, "evicted": self.evicted}


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
