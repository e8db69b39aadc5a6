"""The writer process of a long rebuild (see flush_writer.py), run as a script.

It is started by path with `python -I -S`, imports the standard library only (and
ledger_net/faults.py by path, for the crash tests), so it starts in ~0.06 s of CPU and
shares nothing with the rebuilding process but the database file and one pipe: no lock
another thread of that process held at a fork can stall it.

Arguments: the database's path, the descriptor of its pipe, the rebuilding process's pid.
Messages (pickled, on that pipe): (last, statements), each
statement (kind, SQL, parameters): "one" runs a statement, "many" an executemany, "tuples"
(SQL of n rows, (n, SQL of one row, rows)) inserts the rows n to a statement. The
statements of a flush run in one transaction, opened at the first and committed after a
message with `last` true, which is answered with None or the error's text. None or the end
of the pipe stops it; an open transaction is then rolled back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sqlite3
import sys
from itertools import chain
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def _crash_point() -> Any:
    """ledger_net.faults.crash_point, loaded without importing the package."""
    faults = Path(__file__).resolve().parents[1] / "faults.py"
    spec = importlib.util.spec_from_file_location("_ledger_net_faults", faults)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.crash_point


def _run(db: sqlite3.Connection, statements: list[tuple[str, Any, Any]]) -> None:
    for kind, sql, params in statements:
        if kind == "tuples":
            n, one, rows = params
            full = len(rows) // n * n
            if full:
                flat = chain.from_iterable
                db.executemany(sql, [tuple(flat(rows[i:i + n])) for i in range(0, full, n)])
            if full < len(rows):
                db.executemany(one, rows[full:])
        elif kind == "many":
            db.executemany(sql, params)
        else:
            db.execute(sql, params)


def _die_with(parent: int) -> None:
    """Be killed the instant the rebuilding process dies (Linux: PR_SET_PDEATHSIG), or exit
    if it is already gone: an orphan must not commit a flush after a new process has read
    the books (it would write rows that process is about to write again)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(0)


def main(argv: list[str]) -> int:
    path, fd, parent = argv[1], int(argv[2]), int(argv[3])
    _die_with(parent)
    crash_point = _crash_point()
    pipe = Connection(fd)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA busy_timeout=60000")
    db.execute("PRAGMA synchronous=NORMAL")
    error: str | None = None
    try:
        while True:
            try:
                message = pipe.recv()
            except (EOFError, OSError):
                return 0  # the rebuild is gone: the open transaction, if any, is rolled back
            if message is None:
                return 0
            last, statements = message
            if error is None:
                try:
                    if not db.in_transaction:
                        db.execute("BEGIN IMMEDIATE")
                    _run(db, statements)
                    crash_point("flush.mid_write")
                    if last:
                        crash_point("flush.before_commit")
                        if os.getppid() != parent:  # the rebuild died (where there is no PDEATHSIG)
                            return 0
                        db.execute("COMMIT")
                except Exception as e:  # the rebuild raises it at the commit; this flush is undone
                    error = f"{type(e).__name__}: {e}"[:2000]
                    if db.in_transaction:
                        db.execute("ROLLBACK")
            if last:
                try:
                    pipe.send(error)
                except OSError:
                    return 0
                error = None
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
