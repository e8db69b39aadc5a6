"""The recorder: SQLAlchemy storage of events, fork proofs and blobs.

One store contract for SQLite (the embedded default, WAL) and PostgreSQL. `Store` is the
public entry, one object composed of a mixin per concern, each in its own module:

- `writes`: the event write path (offsets, void events, verdicts, fork proofs);
- `events`: reading the log, heads, void events, fork proofs, Merkle roots and proofs;
- `queries`: the explorer's browsing queries;
- `snapshots`: the judge snapshot;
- `blobs`: content-addressed blobs, big ones as files;
- `bulk`: projection flushes;
- `migrations`: the schema, created and upgraded only by Alembic (`Store.open` runs `upgrade head`).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.pool import StaticPool

from ..merkle_log import MerkleLog
from ..tables import meta
from . import migrations
from .blobs import BIG_BLOB, BlobStorage
from .bulk import BulkInserts
from .events import EventReads
from .migrations import migrations_dir
from .queries import EventQueries
from .records import ForkProof, JudgeSnapshot, StoredEvent
from .snapshots import SnapshotStorage
from .wal import BACKSTOP_PAGES, WalCheckpointer
from .writes import EventWrites

__all__ = ["BIG_BLOB", "ForkProof", "JudgeSnapshot", "Store", "StoredEvent", "migrations_dir", "sqlite_url"]


def sqlite_url(path: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(path)}"


class Store(EventWrites, EventReads, EventQueries, SnapshotStorage, BlobStorage, BulkInserts):
    """Events, forks and blobs in one database; thread-safe for one process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._write_lock = threading.Lock()
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._mark = mark
        self._init_writes(mark)
        self._init_reads(mark)
        self.merkle = MerkleLog(mark)  # per-author Merkle nodes, written with the events
        # Where blobs of BIG_BLOB bytes or more live as files (set by the node that owns a
        # data directory); see blobs.py.
        self.blob_dir: Path | None = None

    @classmethod
    def open(cls, url: str = "sqlite://", *, upgrade: bool = True) -> Store:
        """Open (and migrate) the database at `url`; `sqlite://` is a private in-memory ledger."""
        if url.startswith("sqlite"):
            in_memory = url in ("sqlite://", "sqlite:///:memory:")
            kwargs = {"poolclass": StaticPool} if in_memory else {}
            engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        store = cls(engine)
        path = engine.url.database
        if engine.dialect.name == "sqlite" and path and path != ":memory:":
            store.wal = WalCheckpointer(path)  # checkpoints off the commit path
        if upgrade:
            store.upgrade()
        return store

    def upgrade(self) -> None:
        migrations.upgrade(self.engine)

    def close(self) -> None:
        if self.wal is not None:
            self.wal.close()
        self._close_writer()
        self.engine.dispose()

    def writer(self) -> threading.Lock:
        """The lock every writer of this store holds (projection flushes included)."""
        return self._write_lock

    def set_meta(self, key: str, value: str) -> None:
        with self._write_lock, self.engine.begin() as conn:
            conn.execute(meta.delete().where(meta.c.key == key))
            conn.execute(meta.insert().values(key=key, value=value))

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")  # see wal.py
    cursor.close()
