"""Judge snapshots kept by the store: at most one, the validity fold as of an offset (see
ledger/snapshot.py for what it holds and when it is trusted). The write path can also
replace it inside an event batch's transaction (`write(..., snapshot=...)`)."""

from __future__ import annotations

from sqlalchemy import func, select

from ..tables import events, judge_snapshots
from .base import StoreBase, now_ms
from .records import JudgeSnapshot


class SnapshotStorage(StoreBase):
    """The store's judge-snapshot methods (mixed into `Store`)."""

    def put_snapshot(self, offset: int, snapshot: tuple[str, str, bytes]) -> bool:
        """Replace the stored judge snapshot with one at `offset` (rules, digest, data), in
        its own transaction: for a state judged from events already committed. Refused
        (False) unless `offset` is still the log's last offset, so it never claims less or
        more than the events it covers."""
        with self._write_lock, self.engine.begin() as conn:
            last = conn.execute(select(func.coalesce(func.max(events.c.offset), 0))).scalar_one()
            if last != offset:
                return False
            conn.execute(judge_snapshots.delete())
            conn.execute(judge_snapshots.insert().values(offset=offset, rules=snapshot[0], digest=snapshot[1],
                                                         data=snapshot[2], created_at=now_ms()))
            return True

    def latest_snapshot(self) -> JudgeSnapshot | None:
        """The judge snapshot of highest offset, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(select(judge_snapshots.c.offset, judge_snapshots.c.rules, judge_snapshots.c.digest,
                                      judge_snapshots.c.data).order_by(judge_snapshots.c.offset.desc()).limit(1)).first()
        return JudgeSnapshot(row[0], row[1], row[2], bytes(row[3])) if row else None
