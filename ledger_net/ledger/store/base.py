"""The state every part of the store shares (engine, write lock, Merkle log, blob dir), declared
once so each concern's mixin is type-checked against the same attributes; and small helpers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from ..merkle_log import MerkleLog, Query


class StoreBase:
    """Attributes set by `Store.__init__` and used by the mixins in this package."""

    engine: Engine
    dialect: str
    _write_lock: threading.Lock
    _mark: str  # the driver's parameter mark: "?" (SQLite) or "%s" (psycopg)
    merkle: MerkleLog
    blob_dir: Path | None


def now_ms() -> int:
    return int(time.time() * 1000)


def cursor_query(cursor: Any) -> Query:
    def query(sql: str, params: Sequence[Any]) -> list[Any]:
        cursor.execute(sql, tuple(params))
        return cursor.fetchall()
    return query


def conn_query(conn: Connection) -> Query:
    def query(sql: str, params: Sequence[Any]) -> list[Any]:
        return list(conn.exec_driver_sql(sql, tuple(params)).fetchall())
    return query
