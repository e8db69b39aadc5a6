"""Signing and signature checks on every core: one thread pool per ledger (PyNaCl
releases the GIL, so threads of one process verify in parallel).

Small batches are done on the caller's thread: below `PARALLEL_FROM` items the pool's
hand-off costs more than it saves. `verify_ahead` starts the checks of a batch and
returns at once, so a reader verifies its next page while the ledger judges and writes
the current one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from .events import Event
from .identity import Identity

PARALLEL_FROM = 64  # items below which the caller's thread does the work
VERIFY_CHUNK = 128  # events per task of `verify_ahead` on the pool


class SignatureChecks:
    """Signature checks of one batch running on a ledger's pool (see `CryptoPool.verify_ahead`)."""

    def __init__(self, parts: list[tuple[Sequence[Event], Future[list[Event]]]]) -> None:
        self._parts = parts

    def result(self) -> tuple[list[Event], set[int]]:
        """(the events whose signature is bad, the ids of every event checked), once done."""
        bad: list[Event] = []
        checked: set[int] = set()
        for part, future in self._parts:
            bad.extend(future.result())
            checked.update(id(e) for e in part)
        return bad, checked


def _bad_signatures(events: Sequence[Event]) -> list[Event]:
    return [e for e in events if not e.verify_signature()]


class CryptoPool:
    """`threads` workers (default: one per core) that sign and verify."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = max(1, threads or os.cpu_count() or 2)
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="ledger-crypto")

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

    def verify_ahead(self, events: Sequence[Event]) -> SignatureChecks:
        """Start checking `events`' signatures and return at once."""
        parts = [events[i:i + VERIFY_CHUNK] for i in range(0, len(events), VERIFY_CHUNK)]
        return SignatureChecks([(part, self._pool.submit(_bad_signatures, part)) for part in parts])

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
