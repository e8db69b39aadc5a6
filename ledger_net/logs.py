"""A node's log reads as a story: repeated lines are collapsed, per-chunk chatter is DEBUG.

The same message (same logger, level and format string) logged again and again, say a peer that
keeps failing or a task that keeps waiting for workers, would bury the lines that matter. The
filter lets ``burst`` copies through per ``window`` seconds, drops the rest, and says how many it
dropped on the next copy it lets through. The CLI installs it on its handlers; a Python program
embedding a node may do the same with :func:`quiet_repeats`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RepeatFilter(logging.Filter):
    """Let at most ``burst`` records of one (logger, level, format) through per ``window`` seconds."""

    def __init__(self, burst: int = 5, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst, self.window, self.clock = burst, window, clock
        self._seen: dict[tuple[str, int, str], tuple[float, int, int]] = {}  # key -> (window start, passed, dropped)

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        start, passed, dropped = self._seen.get(key, (now, 0, 0))
        if now - start >= self.window:
            start, passed = now, 0
        if passed >= self.burst:
            self._seen[key] = (start, passed, dropped + 1)
            return False
        if dropped:
            record.msg = f"{record.msg} ({dropped} similar message(s) suppressed)"
        self._seen[key] = (start, passed + 1, 0)
        if len(self._seen) > 10_000:  # bounded: forget the oldest windows
            for old in sorted(self._seen, key=lambda k: self._seen[k][0])[:5_000]:
                del self._seen[old]
        return True


def quiet_repeats(logger: logging.Logger | None = None, *, burst: int = 5, window: float = 60.0) -> RepeatFilter:
    """Install one RepeatFilter on every handler of ``logger`` (default: the root logger)."""
    target = logger or logging.getLogger()
    repeat = RepeatFilter(burst, window)
    for handler in target.handlers:
        handler.addFilter(repeat)
    return repeat
