"""A writer process for the flushes of a long rebuild on a SQLite file.

`sqlite3` holds the GIL between a statement's steps, so a writing thread does not overlap
the fold (measured: no faster than writing in turn). A process does: a plain Python running
flush_writer_child.py by path (standard library only, ~0.06 s of CPU to start; a fork could
inherit a SQLite lock another thread held at that instant). The rebuild
records a flush's statements (the driver SQL the runner would run: history rows, key
deletes, tuple inserts, the checkpoint and memory rows) and sends them down a pipe: the
history rows after every batch it folds, the rest with the checkpoint. The child runs them
in ONE transaction per flush, opened at the flush's first rows and committed with its
checkpoint, while this process folds on; the rebuild sends a commit only once the one
before it is acknowledged. Every committed transaction holds the rows with their
checkpoint, so a kill of either process at any instant leaves the last committed flush (the
open transaction is rolled back), from which the next open resumes. While a flush's
transaction is open, other writers of the file wait for it (SQLite has one writer).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Insert, Table

from ..errors import LedgerError
from ..ledger.store.bulk import ROWS_PER_STATEMENT, multi_row_sql, plain_insert_sql

# (kind, SQL, parameters): "one" a statement, "many" executemany, "tuples" the INSERT of
# ROWS_PER_STATEMENT rows and (that number, the one-row INSERT, the rows): flush_writer_child.py
Statement = tuple[str, str, Any]


class Recorder:
    """Stands in for a SQLite `Connection` in `bulk_insert` and the key deletes: keeps the
    driver statements they would run, for the writer process."""

    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect
        self.statements: list[Statement] = []

    def exec_driver_sql(self, sql: str, params: Any = ()) -> None:
        self.statements.append(("many" if isinstance(params, list) else "one", sql, params))

    def insert_tuples(self, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Tuple rows for the one-row INSERT `sql`: the child binds them many to a statement."""
        self.statements.append(("tuples", multi_row_sql(sql), (ROWS_PER_STATEMENT, sql, rows)))

    def execute(self, statement: Any, rows: Any = None) -> None:
        """Only bulk_insert's path for dict rows of differing keys comes here: each key set
        gets its driver INSERT (every projection table's columns are plain, see `usable`)."""
        if not isinstance(statement, Insert) or not isinstance(rows, list):
            raise TypeError(f"a rebuild's writer process runs driver SQL only, not {statement!r}")
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            groups[tuple(row)].append(row)
        for keys, group in groups.items():
            sql = plain_insert_sql(self.dialect, cast(Table, statement.table), keys)
            if sql is None:
                raise TypeError(f"{statement.table} needs SQLAlchemy's type processing")
            self.exec_driver_sql(sql, group)


def usable(dialect: Any, tables: Sequence[Any]) -> bool:
    """Whether every column of these tables binds as it is (no SQLAlchemy type processing)."""
    return all(plain_insert_sql(dialect, t, tuple(c.name for c in t.columns)) is not None for t in tables)


class FlushWriter:
    """The child that commits whole flushes on its own connection to `path`. Messages are
    pickled here and written by a thread of this process (the write lets go of the GIL), so
    a fold never waits for the child to read the last batch's rows."""

    def __init__(self, path: str) -> None:
        self._pipe, child = multiprocessing.Pipe()
        script = Path(__file__).with_name("flush_writer_child.py")
        self._proc = subprocess.Popen([sys.executable, "-I", "-S", str(script), path, str(child.fileno()),
                                       str(os.getpid())],
                                      pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        child.close()
        self._pending = False
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._broken: OSError | None = None
        self._pump = threading.Thread(target=self._write, name="flush-writer-pipe", daemon=True)
        self._pump.start()

    def _write(self) -> None:
        """The pipe's writer thread: each queued message in order, until None or a broken pipe."""
        while (message := self._outbox.get()) is not None:
            if self._broken is None:
                try:
                    self._pipe.send_bytes(message)
                except OSError as e:
                    self._broken = e

    def send(self, statements: list[Statement]) -> None:
        """Rows of the flush under way (the child opens its transaction at the first)."""
        if statements:
            self._send((False, statements))

    def commit(self, statements: list[Statement]) -> None:
        """The rest of a flush: the child runs them, then commits the flush's transaction.
        Waits first for the last commit's answer."""
        self.wait()
        self._send((True, statements))
        self._pending = True

    def _send(self, message: Any) -> None:
        if self._broken is not None:
            raise self._died() from self._broken
        self._outbox.put(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))

    def _died(self) -> LedgerError:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)
        return LedgerError(f"the rebuild's writer process died (exit code {self._proc.returncode})")

    def wait(self) -> None:
        """Block until the commit in flight is done; LedgerError if it failed or the writer died."""
        if not self._pending:
            return
        self._pending = False
        try:
            error = self._pipe.recv()
        except (EOFError, OSError) as e:
            raise self._died() from e
        if error is not None:
            raise LedgerError(f"the rebuild's writer process failed a flush: {error}")

    def close(self) -> None:
        """Wait for the last commit, then stop the child. Raises as `wait` does."""
        try:
            self.wait()
        finally:
            self._outbox.put(pickle.dumps(None))
            self.abort()

    def abort(self) -> None:
        """Stop without waiting for an answer (the rebuild failed): what is queued is written,
        then the child finds the pipe closed, rolls back an open transaction and exits."""
        self._outbox.put(None)
        self._pump.join()
        self._pipe.close()
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
