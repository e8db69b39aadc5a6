"""SQLite WAL checkpoints off the commit path.

In WAL mode with `synchronous=NORMAL` a commit appends its pages to the WAL and does not
fsync; every ~1000 pages the committing connection then copies the WAL back into the
database file and fsyncs both (the auto-checkpoint). That checkpoint, paid by whichever
append crossed the line, was half the time of a one-event append (a 1–15 ms stall every
~150 commits). Here a thread of the store runs `wal_checkpoint(PASSIVE)` on its own
connection at most every 50 ms while writes go on, so commits only append to the WAL. PASSIVE never blocks
a writer or a reader; durability is unchanged, since a checkpoint only copies what was
already committed. The connections' own auto-checkpoint stays as a backstop at
`BACKSTOP_PAGES`, should this thread fall behind.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time

log = logging.getLogger(__name__)

BACKSTOP_PAGES = 16_384  # 64 MiB of 4 KiB pages: the writers' own auto-checkpoint, if this one lags
INTERVAL = 0.05  # seconds between two checkpoints at most once per this interval


class WalCheckpointer:
    """Checkpoints one SQLite database file's WAL from a background thread (started by the first `poke`)."""

    def __init__(self, path: str, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._next = 0.0  # monotonic time before which a poke is not passed on

    def poke(self) -> None:
        """Something was committed: checkpoint soon (at most once per `interval`: waking
        the thread after every commit cost more than the checkpoints it saved)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(target=self._run, name="ledger-wal-checkpoint", daemon=True)
                    self._thread.start()
        self._wake.set()

    def close(self) -> None:
        with self._lock:
            self._stopping.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error:
            log.warning("WAL checkpointer could not open %s; the writers checkpoint themselves", self.path)
            return
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
            while not self._stopping.is_set():
                self._wake.wait()
                self._wake.clear()
                if self._stopping.is_set():
                    break
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy or gone: the backstop still holds
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
