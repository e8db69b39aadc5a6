"""Tasks and their chunks: status, progress, payments and results, from lifecycle events.

Task ids are chosen by owners (`task-<uuid4>` by default) and must be unique in
the owner's chain; a task's events count only when authored by its owner (or, for
chunk results, by the worker the owner assigned — the rules check that).
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson
from sqlalchemy import Connection, select

from ..ledger import encoding
from ..ledger.events import Event
from .base import Context, Projection
from .tables import chunks, tasks

TERMINAL = frozenset({"completed", "failed", "cancelled"})
_TASK_COLS = ("owner", "task_type", "status", "priority", "escrow", "max_price", "paid", "refund", "chunks_total",
              "chunks_done", "chunks_failed", "submitted_hash", "spec", "result", "result_hash", "reason",
              "submitted_ts", "finished_ts")
_CHUNK_COLS = ("status", "worker", "price", "attempts", "result_hash", "payment", "error", "usage")


def _json(value: Any) -> str:
    return encoding.canonical_bytes(value).decode("utf-8")


class TasksProjection(Projection):
    name = "tasks"
    tables = (tasks, chunks)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.chunks: dict[tuple[str, int], dict[str, Any]] = {}
        self._dirty_tasks: set[str] = set()
        self._dirty_chunks: set[tuple[str, int]] = set()

    def _task(self, event: Event) -> dict[str, Any] | None:
        task = self.tasks.get(event.body["task_id"])
        if task is None or task["owner"] != event.author:
            return None
        self._dirty_tasks.add(event.body["task_id"])
        return task

    def _chunk(self, task_id: str, index: int) -> dict[str, Any] | None:
        chunk = self.chunks.get((task_id, index))
        if chunk is not None:
            self._dirty_chunks.add((task_id, index))
        return chunk

    def apply(self, offset: int, event: Event, reason: str | None, ctx: Context) -> None:
        if reason is not None or not event.type.startswith("task."):
            return
        b, t = event.body, event.type
        if t == "task.submitted":
            if b["task_id"] in self.tasks:
                return
            self.tasks[b["task_id"]] = {
                "owner": event.author, "task_type": b["task_type"], "status": "pending",
                "priority": b.get("priority", 1), "escrow": b["escrow"], "max_price": b["max_price"], "paid": 0,
                "refund": 0, "chunks_total": b["chunks"], "chunks_done": 0, "chunks_failed": 0,
                "submitted_hash": event.hash, "spec": _json(b["spec"]), "result": None, "result_hash": None,
                "reason": None, "submitted_ts": event.ts, "finished_ts": None}
            self._dirty_tasks.add(b["task_id"])
            for i in range(b["chunks"]):
                self.chunks[(b["task_id"], i)] = {"status": "open", "worker": None, "price": None, "attempts": 0,
                                                   "result_hash": None, "payment": 0, "error": None, "usage": None}
                self._dirty_chunks.add((b["task_id"], i))
            return
        if t == "task.quote":
            task = self.tasks.get(b["task_id"])
            if task is not None and task["status"] == "pending":
                task["status"] = "quoted"
                self._dirty_tasks.add(b["task_id"])
            return
        if t == "task.chunk_result":
            chunk = self._chunk(b["task_id"], b["chunk"])
            # Results of one worker follow its own chain order, so the last one wins alike everywhere.
            if chunk is not None and chunk["worker"] == event.author and chunk["status"] != "accepted":
                chunk["status"] = "reported" if b["ok"] else "errored"
                chunk["result_hash"] = b.get("result_hash")
                chunk["error"] = b.get("error")
                chunk["usage"] = _json(b["usage"]) if "usage" in b else None
            return
        task = self._task(event)
        if task is None:
            return
        if t == "task.assigned":
            chunk = self._chunk(b["task_id"], b["chunk"])
            if chunk is not None:
                # A re-assignment to the worker that already reported must not undo its report:
                # whether that report arrives before or after it depends on the peer.
                same = chunk["worker"] == b["worker"] and chunk["status"] in ("reported", "errored", "accepted")
                if not same:
                    chunk.update(status="assigned", worker=b["worker"], error=None)
                chunk["price"] = b["price"]
                chunk["attempts"] += 1
            if task["status"] not in TERMINAL:
                task["status"] = "running"
        elif t == "task.chunk_accepted":
            chunk = self._chunk(b["task_id"], b["chunk"])
            if chunk is not None and chunk["status"] != "accepted":
                chunk.update(status="accepted", payment=chunk["payment"] + b["payment"])
                if b.get("result_hash"):
                    chunk["result_hash"] = b["result_hash"]
                task["chunks_done"] += 1
            task["paid"] += b["payment"]
        elif t == "task.chunk_rejected":
            chunk = self._chunk(b["task_id"], b["chunk"])
            if chunk is not None:
                chunk.update(status="rejected", error=b["reason"])
            task["chunks_failed"] += 1
        elif t in ("task.completed", "task.failed", "task.cancelled"):
            task["status"] = t.split(".")[1]
            task["refund"] = b["refund"]
            task["finished_ts"] = event.ts
            if t == "task.completed":
                task["result"] = _json(b["result"]) if "result" in b else None
                task["result_hash"] = b.get("result_hash")
            else:
                task["reason"] = b["reason"]

    def rows(self) -> dict[Any, list[dict[str, Any]]]:
        return {tasks: [dict(task_id=k, **v) for k, v in self.tasks.items()],
                chunks: [dict(task_id=k[0], chunk=k[1], **v) for k, v in self.chunks.items()]}

    def dirty_rows(self) -> dict[Any, tuple[list[Any], list[dict[str, Any]]]]:
        tkeys, ckeys = sorted(self._dirty_tasks), sorted(self._dirty_chunks)
        out = {tasks: (tkeys, [dict(task_id=k, **self.tasks[k]) for k in tkeys]),
               chunks: (ckeys, [dict(task_id=k[0], chunk=k[1], **self.chunks[k]) for k in ckeys])}
        self._dirty_tasks, self._dirty_chunks = set(), set()
        return out

    def load(self, conn: Connection) -> None:
        self.reset()
        for row in conn.execute(select(tasks)).mappings():
            self.tasks[row["task_id"]] = {c: row[c] for c in _TASK_COLS}
        for row in conn.execute(select(chunks)).mappings():
            self.chunks[(row["task_id"], row["chunk"])] = {c: row[c] for c in _CHUNK_COLS}

    def digest_items(self) -> Iterable[Any]:
        for key in sorted(self.tasks):
            yield [key, [self.tasks[key][c] for c in _TASK_COLS]]
        for key in sorted(self.chunks):
            yield [list(key), [self.chunks[key][c] for c in _CHUNK_COLS]]

    # --------------------------------------------------------------- queries
    def progress(self, task_id: str) -> float:
        task = self.tasks[task_id]
        if task["status"] == "completed":
            return 1.0
        return task["chunks_done"] / task["chunks_total"] if task["chunks_total"] else 0.0

    def result(self, task_id: str) -> Any:
        raw = self.tasks[task_id]["result"]
        return orjson.loads(raw) if raw is not None else None
