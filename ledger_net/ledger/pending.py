"""The bounded buffer of events whose causal past has not arrived yet."""

from __future__ import annotations

from collections import defaultdict

from ..errors import PendingLimitError
from .events import Event


class PendingBuffer:
    """Events waiting for their prev/deps, indexed by the hashes they wait for."""

    def __init__(self, max_events: int = 10_000, max_bytes: int = 64 << 20) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: dict[str, Event] = {}
        self._missing: dict[str, set[str]] = {}  # event hash -> hashes it still waits for
        self._waiters: defaultdict[str, set[str]] = defaultdict(set)  # missing hash -> waiting events
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._events)

    def __contains__(self, hash_: str) -> bool:
        return hash_ in self._events

    def add(self, event: Event, missing: set[str]) -> None:
        if event.hash in self._events:
            return
        if len(self._events) >= self.max_events or self._bytes + len(event.raw) > self.max_bytes:
            raise PendingLimitError(
                f"pending buffer is full ({len(self._events)} events, {self._bytes} bytes): "
                "send the causal past first")
        self._events[event.hash] = event
        self._missing[event.hash] = set(missing)
        self._bytes += len(event.raw)
        for h in missing:
            self._waiters[h].add(event.hash)

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
        if hash_ in self._events:
            event = self._pop(hash_)
            for h in list(self._waiters):
                self._waiters[h].discard(event.hash)
                if not self._waiters[h]:
                    del self._waiters[h]

    def _pop(self, hash_: str) -> Event:
        event = self._events.pop(hash_)
        self._missing.pop(hash_, None)
        self._bytes -= len(event.raw)
        return event

    def wanted(self) -> set[str]:
        """Hashes some pending event waits for and that are not themselves pending."""
        return {h for h, waiters in self._waiters.items() if waiters and h not in self._events}

    def wanted_chains(self) -> dict[str, int]:
        """author -> lowest seq of theirs that is pending (its predecessors are wanted)."""
        lowest: dict[str, int] = {}
        for event in self._events.values():
            if event.author not in lowest or event.seq < lowest[event.author]:
                lowest[event.author] = event.seq
        return lowest

    def events(self) -> list[Event]:
        return list(self._events.values())
