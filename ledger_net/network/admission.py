"""Admission of pushed events from strangers.

A stranger is an author with no stake on this node (`LedgerState.is_established`: not
an issuer, no credits, no escrow, no task of its own). Keys cost nothing, so a
stranger's events are admitted under small token-bucket quotas, per author and per
source (the pushing peer's address): events per second and bytes per second, with a
burst. Events beyond the quota are dropped from the batch (reported as `throttled`,
with the later events of that author, which could only wait as orphans); when a
whole push is throttled the answer is 429 with a `Retry-After`. Established authors
are never throttled here. The pending buffer adds per-author and per-source slots
(ledger/pending.py). Pulls are not throttled: this node chose the peer and pages are
bounded in bytes. docs/security.md says what N throwaway keys can cost a node.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..ledger.events import Event


@dataclass(frozen=True)
class Quota:
    """A token bucket: sustained rates and the burst a fresh bucket holds."""

    events_per_s: float
    bytes_per_s: float
    burst_events: int
    burst_bytes: int


AUTHOR_QUOTA = Quota(events_per_s=8, bytes_per_s=64 << 10, burst_events=32, burst_bytes=256 << 10)
SOURCE_QUOTA = Quota(events_per_s=64, bytes_per_s=512 << 10, burst_events=256, burst_bytes=2 << 20)
MAX_BUCKETS = 20_000  # least recently used buckets beyond this are forgotten


class _Bucket:
    __slots__ = ("events", "bytes", "at")

    def __init__(self, quota: Quota, now: float) -> None:
        self.events = float(quota.burst_events)
        self.bytes = float(quota.burst_bytes)
        self.at = now

    def refill(self, quota: Quota, now: float) -> None:
        elapsed = max(0.0, now - self.at)
        self.at = now
        self.events = min(float(quota.burst_events), self.events + elapsed * quota.events_per_s)
        self.bytes = min(float(quota.burst_bytes), self.bytes + elapsed * quota.bytes_per_s)

    def fits(self, size: int) -> bool:
        return self.events >= 1 and self.bytes >= size

    def charge(self, size: int) -> None:
        self.events -= 1
        self.bytes -= size

    def wait_for(self, quota: Quota, size: int) -> float:
        """Seconds until one event of `size` bytes fits."""
        need_events = max(0.0, 1 - self.events) / quota.events_per_s if quota.events_per_s > 0 else 60.0
        need_bytes = max(0.0, size - self.bytes) / quota.bytes_per_s if quota.bytes_per_s > 0 else 60.0
        return max(need_events, need_bytes)


class Admission:
    """Token buckets per stranger author and per source."""

    def __init__(self, established: Callable[[str], bool], *, author_quota: Quota = AUTHOR_QUOTA,
                 source_quota: Quota = SOURCE_QUOTA, max_buckets: int = MAX_BUCKETS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.established = established
        self.author_quota = author_quota
        self.source_quota = source_quota
        self.max_buckets = max_buckets
        self.clock = clock
        self._authors: OrderedDict[str, _Bucket] = OrderedDict()
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()
        self.throttled = 0

    def _bucket(self, table: OrderedDict[str, _Bucket], key: str, quota: Quota, now: float) -> _Bucket:
        bucket = table.get(key)
        if bucket is None:
            bucket = table[key] = _Bucket(quota, now)
            while len(table) > self.max_buckets:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
            bucket.refill(quota, now)
        return bucket

    def admit(self, events: Sequence[Event], source: str | None,
              established: Callable[[str], bool] | None = None) -> tuple[list[Event], dict[str, str], float]:
        """Split a pushed batch into (admitted, throttled hash -> reason, seconds until the
        first throttled event would fit). `established` overrides the constructor's check
        (e.g. one that reuses a set computed once for the batch)."""
        established = established or self.established
        now = self.clock()
        admitted: list[Event] = []
        throttled: dict[str, str] = {}
        blocked: set[str] = set()
        retry = 0.0
        funded = _funded_in(events, established)
        for event in events:
            author = event.author
            if author in blocked:
                throttled[event.hash] = f"an earlier event of author {author[:16]}… in this push was throttled"
                continue
            if author in funded or established(author):
                admitted.append(event)
                continue
            size = len(event.raw)
            by_author = self._bucket(self._authors, author, self.author_quota, now)
            by_source = self._bucket(self._sources, source, self.source_quota, now) if source else None
            if by_author.fits(size) and (by_source is None or by_source.fits(size)):
                by_author.charge(size)
                if by_source is not None:
                    by_source.charge(size)
                admitted.append(event)
                continue
            blocked.add(author)
            which = "author" if not by_author.fits(size) else "source"
            if which == "author" or by_source is None:
                wait = by_author.wait_for(self.author_quota, size)
            else:
                wait = by_source.wait_for(self.source_quota, size)
            retry = max(retry, wait)
            throttled[event.hash] = (f"{which} quota for authors with no stake is spent "
                                     f"(author {author[:16]}…, source {source}); retry in {wait:.1f}s")
        self.throttled += len(throttled)
        return admitted, throttled, retry


def _funded_in(events: Sequence[Event], established: Callable[[str], bool]) -> set[str]:
    """Authors this very batch funds (a mint or transfer to them by an established or
    already funded author, or a genesis naming them issuers): a catching-up batch carries
    the stake together with the events it admits."""
    funded: set[str] = set()
    for event in events:
        body = event.body
        if event.type in ("credit.minted", "credit.transfer") and isinstance(body.get("to"), str) \
                and (event.author in funded or established(event.author)):
            funded.add(body["to"])
        elif event.is_genesis and isinstance(body.get("issuers"), list):
            funded.update(i for i in body["issuers"] if isinstance(i, str))
    return funded
