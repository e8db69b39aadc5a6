"""Crash points in the commit path, for the crash-recovery tests only.

A test sets ``LEDGER_NET_CRASH_AT=<point>[:<n>]`` in a child process's environment;
the n-th time (default 1) the process passes that point it kills itself with SIGKILL,
as `kill -9` or a power cut would, with no cleanup, no flush and no exception handler
running. Unset (every real node), `crash_point` is one comparison.

Points:

* ``append.before_commit`` — local events signed and judged, not yet committed;
* ``events.mid_write`` — a batch's events and Merkle nodes written, its transaction not committed;
* ``events.committed`` — a batch committed, its listeners (projections, peers) not told;
* ``flush.mid_write`` — inside a projection flush, some rows written, no checkpoint yet;
* ``flush.before_commit`` — every row and checkpoint of a flush written, not committed.
"""

from __future__ import annotations

import os
import signal

ENV = "LEDGER_NET_CRASH_AT"
POINTS = frozenset({"append.before_commit", "events.mid_write", "events.committed", "flush.mid_write",
                    "flush.before_commit"})


class _Armed:
    """The armed point and how many more passes it lets through."""

    def __init__(self, point: str, hits: int) -> None:
        self.point, self.hits = point, hits


def _parse(spec: str | None) -> _Armed | None:
    """The armed point from the variable; ValueError names what a bad value lacks."""
    if not spec:
        return None
    point, _, count = spec.partition(":")
    if point not in POINTS:
        raise ValueError(f"{ENV}={spec!r}: unknown crash point {point!r} (known: {', '.join(sorted(POINTS))})")
    if count and (not count.isdigit() or int(count) < 1):
        raise ValueError(f"{ENV}={spec!r}: the count after ':' must be a positive integer")
    return _Armed(point, int(count or 1))


_armed = _parse(os.environ.get(ENV))


def crash_point(name: str) -> None:
    """Die here by SIGKILL if the environment armed this point and its count ran out."""
    if _armed is None or _armed.point != name:
        return
    _armed.hits -= 1
    if _armed.hits <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
