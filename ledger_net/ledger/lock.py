"""One live process per node: the guard that keeps an operator's slip from forking a node.

Two processes signing with one key is exactly how an honest node would equivocate, so a
node holds, for its whole life:

* an exclusive `fcntl.flock` on `DATA_DIR/node.lock`. The kernel drops it when the process
  dies, however it dies, so a `kill -9` leaves nothing stale behind. The file holds the
  holder (pid, host, URL, start time) so that a refused start can name it.
* a claim on its database, for a node whose books live elsewhere than its data dir (the
  same `--db-url`, and so the same key's books, under two data dirs). One database holds
  one node's books. PostgreSQL: `pg_try_advisory_lock` on a connection the node keeps
  open; the server drops it when that connection dies (kill -9 included), so no heartbeat
  is needed. A SQLite file outside the data dir: a flock on `FILE.lock` beside it. The
  holder is also written to `node_holders`, only to be named: liveness is the lock's.

Readers (`verify`, `audit`, `export`, `replay`, `inspect`) take no lock and run beside a node.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from ..errors import NodeError, NodeLockedError
from .datadir import LOCK_FILE, DataDir
from .store import Store
from .tables import node_holders


@dataclass(frozen=True, slots=True)
class Holder:
    """The process running a node, as recorded for whoever is refused beside it."""

    pid: int
    host: str
    url: str | None
    started_at: int  # unix seconds

    @classmethod
    def me(cls, url: str | None = None) -> Holder:
        return cls(pid=os.getpid(), host=socket.gethostname(), url=url, started_at=int(time.time()))

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at))
        return f"pid {self.pid} on {self.host}, url {self.url or '(still starting)'}, since {since}"


def _unknown() -> str:
    return "a process that has not recorded itself yet"


class _FileLock:
    """An exclusive, non-blocking flock on one file, which also records the holder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def write(self, holder: Holder) -> None:
        if self._fd is None:
            return
        data = json.dumps(asdict(holder)).encode() + b"\n"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def holder(self) -> Holder | None:
        """Who holds the lock, as the holder wrote it (None if unreadable: it is just starting)."""
        for _ in range(10):  # the holder writes right after it locks: give it a moment
            try:
                raw = json.loads(self.path.read_text() or "null")
                if isinstance(raw, dict):
                    return Holder(pid=int(raw["pid"]), host=str(raw["host"]), url=raw.get("url"),
                                  started_at=int(raw["started_at"]))
            except (OSError, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.02)
        return None

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)  # a reader never names a holder that has gone
            finally:
                os.close(fd)  # closing the only descriptor drops the flock


# PostgreSQL advisory locks are per database: one fixed key claims the database itself.
ADVISORY_KEY = int.from_bytes(hashlib.sha256(b"ledger_net node").digest()[:8], "big", signed=True)


def _recorded(conn: Connection) -> str:
    """The latest holder recorded in the database (the table may not exist yet)."""
    try:
        row = conn.execute(select(node_holders).order_by(node_holders.c.started_at.desc()).limit(1)).first()
    except SQLAlchemyError:
        row = None
    if row is None:
        return _unknown()
    return Holder(pid=row.pid, host=row.host, url=row.url, started_at=row.started_at).describe()


class NodeLock:
    """Held by a running node from before it opens its books until after it closes them.

    `acquire` (the data dir) and `claim` (the database) come before the books are opened,
    `record` once the node serves; `release`, after the books are closed, undoes it all.
    Each refusal is a `NodeLockedError` whose message is one line naming the holder."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.holder = Holder.me()
        self._dir_lock = _FileLock(DataDir(self.data_dir).lock)
        self._db_file_lock: _FileLock | None = None
        self._pg_engine: Any = None
        self._pg_conn: Connection | None = None
        self._store: Store | None = None
        self._node_id: str | None = None

    # ------------------------------------------------------------ data dir
    def acquire(self) -> NodeLock:
        """Lock the data dir, or raise NodeLockedError naming the process that has it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self._dir_lock.try_acquire():
            other = self._dir_lock.holder()
            raise NodeLockedError(f"data dir {self.data_dir} is in use by a running node: "
                                  f"{other.describe() if other else _unknown()}; stop it first or use another "
                                  "--data-dir")
        self._dir_lock.write(self.holder)
        return self

    # ------------------------------------------------------------ database
    def claim(self, database_url: str | None) -> None:
        """Claim the node's database before its books are opened, or raise NodeLockedError
        naming the process that runs a node on it. One database holds one node's books, so
        the claim is on the database (and so on the key whose books it holds).
        `None` means the SQLite file in the data dir, which the data dir's lock covers."""
        if database_url is None:
            return
        url = make_url(database_url)
        shown = url.render_as_string(hide_password=True)
        if url.get_backend_name() == "postgresql":
            engine = create_engine(url, poolclass=NullPool)
            try:
                conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            except SQLAlchemyError as exc:
                engine.dispose()
                detail = " ".join(str(getattr(exc, "orig", None) or exc).split("\n")[0].split())  # DBAPIError has .orig
                raise NodeError(f"cannot open the database {shown}: {detail}") from None
            if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar():
                holder = _recorded(conn)
                conn.close()
                engine.dispose()
                raise NodeLockedError(f"database {shown} is in use by a running node: {holder}; stop it first")
            self._pg_engine, self._pg_conn = engine, conn
        elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            db_file = Path(url.database).resolve()
            if db_file.parent != self.data_dir.resolve():  # in the data dir, its lock covers it
                lock = _FileLock(db_file.with_name(db_file.name + ".lock"))
                if not lock.try_acquire():
                    other = lock.holder()
                    raise NodeLockedError(f"database {shown} is in use by a running node: "
                                          f"{other.describe() if other else _unknown()}; stop it first")
                lock.write(self.holder)
                self._db_file_lock = lock

    def record(self, store: Store, node_id: str, url: str | None) -> None:
        """Name this process, now serving `url`, in the lock file and in `node_holders`
        (once the books are open and migrated), for the line that refuses a second start."""
        self.holder = Holder(pid=self.holder.pid, host=self.holder.host, url=url, started_at=self.holder.started_at)
        self._dir_lock.write(self.holder)
        if self._db_file_lock is not None:
            self._db_file_lock.write(self.holder)
        self._store, self._node_id = store, node_id
        self._record()

    def _record(self) -> None:
        if self._store is None or self._node_id is None:
            return
        values = {"pid": self.holder.pid, "host": self.holder.host[:255], "url": self.holder.url,
                  "started_at": self.holder.started_at}
        with self._store.writer(), self._store.engine.begin() as conn:
            done = conn.execute(update(node_holders).where(node_holders.c.node_id == self._node_id).values(**values))
            if done.rowcount == 0:
                conn.execute(insert(node_holders).values(node_id=self._node_id, **values))

    # ------------------------------------------------------------ life
    def release(self) -> None:
        """Drop every lock (after the books are closed). The holder row stays, unlocked."""
        if self._pg_conn is not None:
            conn, self._pg_conn = self._pg_conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock_all()"))
                conn.close()
            except SQLAlchemyError:
                pass  # a dead connection has released its locks already
            self._pg_engine.dispose()
            self._pg_engine = None
        if self._db_file_lock is not None:
            self._db_file_lock.release()
            self._db_file_lock = None
        self._store = None
        self._dir_lock.release()


__all__ = ["Holder", "LOCK_FILE", "NodeLock"]
