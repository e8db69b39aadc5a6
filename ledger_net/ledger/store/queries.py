"""Event queries for the explorer and the inspection commands: an account's page of its own
chain, and the events that name a task. Kept here so no SQL lives in `web/`."""

from __future__ import annotations

import orjson
from sqlalchemy import func, select

from ..tables import events
from .base import StoreBase
from .records import EVENT_COLUMNS, StoredEvent, stored


class EventQueries(StoreBase):
    """The store's browsing queries (mixed into `Store`)."""

    def events_by_author(self, author: str, *, before: int = 0, limit: int = 50) -> list[StoredEvent]:
        """`author`'s stored events newest first (those with offset < `before` when given): a page
        of an account's own chain, in this node's storage order, with its verdicts."""
        stmt = select(*EVENT_COLUMNS).where(events.c.author == author)
        if before:
            stmt = stmt.where(events.c.offset < before)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(events.c.offset.desc()).limit(limit)).all()
        return [stored(r) for r in rows]

    def events_about_task(self, task_id: str, *, start: int = 0, limit: int = 500,
                          scan: int = 20_000) -> list[StoredEvent]:
        """Stored events from offset `start` on whose body names `task_id`, oldest first: at most
        `limit` of them, among the first `scan` events whose bytes hold the id (a bound on the work).

        Canonical JSON writes the id exactly so, which SQL matches byte-wise (SQLite's instr() on
        BLOBs, PostgreSQL's bytea LIKE, where `_`/`%` only widen the match); the body check keeps
        the events that name the task itself, not a field that merely contains the text."""
        needle = b"\"task_id\":" + orjson.dumps(task_id)
        if self.dialect == "sqlite":
            match = func.instr(events.c.raw, needle) > 0
        else:
            match = events.c.raw.like(b"%" + needle + b"%")
        stmt = select(*EVENT_COLUMNS).where(events.c.offset >= start, match).order_by(events.c.offset).limit(scan)
        out: list[StoredEvent] = []
        with self.engine.connect() as conn:
            for row in conn.execute(stmt):
                body = orjson.loads(row.raw).get("body")
                if isinstance(body, dict) and body.get("task_id") == task_id:
                    out.append(stored(row))
                    if len(out) >= limit:
                        break
        return out
