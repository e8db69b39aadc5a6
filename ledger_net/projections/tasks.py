"""Tasks and their chunks: status, progress, payments and results, from lifecycle events.

Task ids are chosen by owners (`task-<uuid4>` by default) and are unique only within
the owner's chain: two owners may pick the same id. So every effective submission is
a *candidate* keyed by (task_id, owner), with its own chunks, and every later event
belongs to the candidate it references:

* the owner's own events (`task.assigned`, `task.chunk_accepted`, `task.chunk_rejected`,
  `task.completed/failed/cancelled`): the candidate (task_id, author) — the rules only
  let an owner act on its own open task;
* `task.chunk_result`: the candidate of the owner whose assignment (to the result's
  author, of that chunk) the result names in `deps` — the rules require one;
* `task.quote`: the candidate whose submission the quote names in `deps`.

Readers that know only a task id (`tasks[task_id]`, `chunks[(task_id, chunk)]`) see the
*winning* candidate: the one with the smallest `task.submitted` hash. That is a function
of the set of events, not of their arrival order, so every peer shows the same task.
`task_of(task_id, owner)` reaches any candidate.

A chunk's status, result and error are *derived*, never last-writer-wins: each effective
assignment keeps its worker's latest report (a worker's results follow its own chain order)
and the owner's verdict on it (the owner's events follow its chain order), and the chunk's
fields are a function of those two orders only, not of how a peer interleaved them. A
verdict that does not name the result it judges may reach a peer before or after that
result, and every peer still shows the same chunk
(`tests/projections/test_projections.py::test_rejection_concurrent_with_the_result_converges`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, cast

import orjson
from sqlalchemy import Connection, Table, select

from ..ledger import encoding
from ..ledger.events import Event
from .base import Context, Projection, RowBatch
from .rows import AssignmentRow, ChunkRow, TaskRow
from .status import ROW_STATUSES, TERMINAL, ChunkStatus, TaskStatus
from .tables import chunks, task_assignments, tasks

_TASK_COLS = ("owner", "task_type", "status", "priority", "escrow", "max_price", "paid", "refund", "chunks_total",
              "chunks_done", "chunks_failed", "submitted_hash", "spec", "result", "result_hash", "reason",
              "submitted_ts", "finished_ts")
_CHUNK_COLS = ("status", "worker", "price", "attempts", "result_hash", "payment", "error", "usage")
_ASSIGNMENT_COLS = ("task_id", "owner", "chunk", "worker", "position", "verdict", "reason", "verdict_hash", "ok",
                    "result_hash", "error", "usage")

TaskKey = tuple[str, str]  # (task_id, owner)
ChunkKey = tuple[str, str, int]  # (task_id, owner, chunk)


def _json(value: Any) -> str:
    return encoding.canonical_bytes(value).decode("utf-8")


def _values(row: Mapping[str, Any], columns: tuple[str, ...]) -> list[Any]:
    return [row[c] for c in columns]


class TasksProjection(Projection):
    name = "tasks"
    tables = (tasks, chunks, task_assignments)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # Every candidate: task_id -> owner -> row, and its chunks by (task_id, owner, chunk).
        self.candidates: dict[str, dict[str, TaskRow]] = {}
        self.owner_chunks: dict[ChunkKey, ChunkRow] = {}
        # Effective assignments: event hash -> row (_ASSIGNMENT_COLS): who was asked, in which
        # position of the chunk's assignments, the owner's verdict and the worker's latest report.
        self.assignments: dict[str, AssignmentRow] = {}
        self._by_chunk: dict[ChunkKey, list[str]] = {}  # assignment hashes of a chunk, in the owner's order
        # The winners' views (the same row objects): what readers by task id see.
        self.tasks: dict[str, TaskRow] = {}
        self.chunks: dict[tuple[str, int], ChunkRow] = {}
        self._submissions: dict[str, TaskKey] = {}  # task.submitted hash -> candidate
        self._dirty_tasks: set[TaskKey] = set()
        self._dirty_chunks: set[ChunkKey] = set()
        self._dirty_assignments: set[str] = set()

    # ------------------------------------------------------------ candidates
    def _crown(self, task_id: str) -> None:
        """Point the by-id views at the candidate with the smallest submission hash."""
        cands = self.candidates[task_id]
        owner = min(cands, key=lambda o: cands[o]["submitted_hash"])
        row = cands[owner]
        old = self.tasks.get(task_id)
        if old is row:
            return
        if old is not None:
            for i in range(old["chunks_total"]):
                self.chunks.pop((task_id, i), None)
        self.tasks[task_id] = row
        for i in range(row["chunks_total"]):
            chunk = self.owner_chunks.get((task_id, owner, i))
            if chunk is not None:
                self.chunks[(task_id, i)] = chunk

    def _task(self, task_id: str, owner: str) -> TaskRow | None:
        task = self.candidates.get(task_id, {}).get(owner)
        if task is not None:
            self._dirty_tasks.add((task_id, owner))
        return task

    def _chunk(self, task_id: str, owner: str, index: int) -> ChunkRow | None:
        chunk = self.owner_chunks.get((task_id, owner, index))
        if chunk is not None:
            self._dirty_chunks.add((task_id, owner, index))
        return chunk

    # ---------------------------------------------------------------- folding
    def apply(self, offset: int, event: Event, reason: str | None, ctx: Context) -> None:
        """Fold one task event; one that broke a rule (``reason``) changes nothing. Events about
        a task of one owner go to the handler for their type (``_BY_OWNER``)."""
        if reason is not None or not event.type.startswith("task."):
            return
        t = event.type
        if t == "task.submitted":
            self._submit(event)
        elif t == "task.quote":
            self._quoted(event)
        elif t == "task.chunk_result":
            self._reported(event)
        else:
            task = self._task(event.body["task_id"], event.author)
            handler = self._BY_OWNER.get(t)
            if task is not None and handler is not None:
                handler(self, task, event)

    def fold_rows(self, batch: RowBatch, ctx: Context) -> None:
        """`apply` over a batch: only task events, one by one, in order."""
        if any(t.startswith("task.") for t in batch.types):
            self.apply_rows(batch, [i for i, r in enumerate(batch.rows) if r[4].startswith("task.")], ctx)

    def _quoted(self, event: Event) -> None:
        # A quote is an offer on one owner's task: the submission it names in deps.
        task_id = event.body["task_id"]
        for dep in event.deps:
            key = self._submissions.get(dep)
            if key is not None and key[0] == task_id:
                task = self._task(*key)
                if task is not None and task["status"] == TaskStatus.PENDING:
                    task["status"] = TaskStatus.QUOTED.value

    def _reported(self, event: Event) -> None:
        # A result answers the assignments (to its author, of that chunk) it names in deps; the
        # worker's later report on one assignment replaces its earlier one (its own chain order).
        b, task_id = event.body, event.body["task_id"]
        for dep in sorted(set(event.deps)):
            a = self.assignments.get(dep)
            if a is None or a["task_id"] != task_id or a["chunk"] != b["chunk"] or a["worker"] != event.author:
                continue
            a.update({"ok": bool(b["ok"]), "result_hash": b.get("result_hash"), "error": b.get("error"),
                      "usage": _json(b["usage"]) if "usage" in b else None})
            self._dirty_assignments.add(dep)
            self._derive(task_id, a["owner"], b["chunk"])

    def _assigned(self, task: TaskRow, event: Event) -> None:
        b, task_id = event.body, event.body["task_id"]
        key = (task_id, event.author, b["chunk"])
        order = self._by_chunk.setdefault(key, [])
        assignment: AssignmentRow = {
            "task_id": task_id, "owner": event.author, "chunk": b["chunk"], "worker": b["worker"],
            "position": len(order), "verdict": None, "reason": None, "verdict_hash": None, "ok": None,
            "result_hash": None, "error": None, "usage": None}
        self.assignments[event.hash] = assignment
        order.append(event.hash)
        self._dirty_assignments.add(event.hash)
        chunk = self._chunk(*key)
        if chunk is not None:
            chunk.update({"worker": b["worker"], "price": b["price"], "attempts": chunk["attempts"] + 1})
            self._derive(*key)
        if task["status"] not in TERMINAL:
            task["status"] = TaskStatus.RUNNING.value

    def _judged(self, event: Event, verdict: str, reason: str | None) -> None:
        """Note the owner's verdict on its latest assignment of the chunk to the worker named
        (the rules require one, in the owner's own chain, so it precedes the verdict)."""
        b = event.body
        for h in reversed(self._by_chunk.get((b["task_id"], event.author, b["chunk"]), [])):
            a = self.assignments[h]
            if a["worker"] == b["worker"]:
                if a["verdict"] != "accepted":  # a payment, once made, is the assignment's last word
                    a.update({"verdict": verdict, "reason": reason,
                              "verdict_hash": b.get("result_hash") if verdict == "accepted" else None})
                    self._dirty_assignments.add(h)
                return

    def _derive(self, task_id: str, owner: str, index: int) -> None:
        """A chunk's status, result and error from its assignments' verdicts and reports:
        accepted once any assignment is (sticky; the result the owner named, else the report it
        paid for); otherwise as the latest assignment stands: rejected, or its worker's report
        (on this assignment, else on an earlier one of the same worker's, still unjudged), or
        assigned. Which order a peer saw the owner's and the workers' events in plays no part."""
        chunk = self._chunk(task_id, owner, index)
        if chunk is None:
            return
        rows = [self.assignments[h] for h in self._by_chunk.get((task_id, owner, index), [])]
        won = [a for a in rows if a["verdict"] == "accepted"]
        status, result_hash, error, usage = ChunkStatus.OPEN.value, None, None, None
        if won:  # float replicas agree within a bound with other bytes: keep the smallest hash, as the owner does
            a = min(won, key=lambda r: (r["verdict_hash"] or r["result_hash"] or "", r["worker"]))
            status, result_hash, usage = ChunkStatus.ACCEPTED.value, a["verdict_hash"] or a["result_hash"], a["usage"]
        elif rows:
            last = rows[-1]
            if last["verdict"] == "rejected":
                status, result_hash, error, usage = (ChunkStatus.REJECTED.value, last["result_hash"], last["reason"],
                                                     last["usage"])
            else:
                report = next((a for a in reversed(rows) if a["worker"] == last["worker"] and a["ok"] is not None
                               and (a is last or a["verdict"] is None)), None)
                if report is None:
                    status = ChunkStatus.ASSIGNED.value
                else:
                    status = ChunkStatus.REPORTED.value if report["ok"] else ChunkStatus.ERRORED.value
                    result_hash, error, usage = report["result_hash"], report["error"], report["usage"]
        chunk.update({"status": status, "result_hash": result_hash, "error": error, "usage": usage})

    def _accepted(self, task: TaskRow, event: Event) -> None:
        b = event.body
        chunk = self._chunk(b["task_id"], event.author, b["chunk"])
        if chunk is not None and chunk["status"] != ChunkStatus.ACCEPTED:
            chunk["payment"] += b["payment"]
            task["chunks_done"] += 1
        task["paid"] += b["payment"]
        self._judged(event, "accepted", None)
        self._derive(b["task_id"], event.author, b["chunk"])

    def _rejected(self, task: TaskRow, event: Event) -> None:
        b = event.body
        self._judged(event, "rejected", b["reason"])
        self._derive(b["task_id"], event.author, b["chunk"])
        task["chunks_failed"] += 1

    def _finished(self, task: TaskRow, event: Event) -> None:
        b, t = event.body, event.type
        task["status"] = t.split(".")[1]
        task["refund"] = b["refund"]
        task["finished_ts"] = event.ts
        if t == "task.completed":
            task["result"] = _json(b["result"]) if "result" in b else None
            task["result_hash"] = b.get("result_hash")
        else:
            task["reason"] = b["reason"]

    # The owner's events about its own task, by type (other task.* types only mark the task dirty).
    _BY_OWNER: ClassVar[dict[str, Callable[[TasksProjection, TaskRow, Event], None]]] = {
        "task.assigned": _assigned, "task.chunk_accepted": _accepted, "task.chunk_rejected": _rejected,
        "task.completed": _finished, "task.failed": _finished, "task.cancelled": _finished}

    def _submit(self, event: Event) -> None:
        b, owner = event.body, event.author
        task_id = b["task_id"]
        cands = self.candidates.setdefault(task_id, {})
        if owner in cands:  # the rules refuse a second submission of an id by one owner
            return
        task: TaskRow = {
            "owner": owner, "task_type": b["task_type"], "status": TaskStatus.PENDING.value,
            "priority": b.get("priority", 1), "escrow": b["escrow"], "max_price": b["max_price"], "paid": 0,
            "refund": 0, "chunks_total": b["chunks"], "chunks_done": 0, "chunks_failed": 0,
            "submitted_hash": event.hash, "spec": _json(b["spec"]), "result": None, "result_hash": None,
            "reason": None, "submitted_ts": event.ts, "finished_ts": None}
        cands[owner] = task
        self._submissions[event.hash] = (task_id, owner)
        self._dirty_tasks.add((task_id, owner))
        for i in range(b["chunks"]):
            chunk: ChunkRow = {"status": ChunkStatus.OPEN.value, "worker": None, "price": None, "attempts": 0,
                               "result_hash": None, "payment": 0, "error": None, "usage": None}
            self.owner_chunks[(task_id, owner, i)] = chunk
            self._dirty_chunks.add((task_id, owner, i))
        self._crown(task_id)

    # ---------------------------------------------------------------- storing
    def rows(self) -> dict[Table, list[dict[str, Any]]]:
        return {tasks: [dict(task_id=tid, **row) for tid, cands in self.candidates.items() for row in cands.values()],
                chunks: [dict(task_id=k[0], owner=k[1], chunk=k[2], **v) for k, v in self.owner_chunks.items()],
                task_assignments: [dict(hash=h, **a) for h, a in self.assignments.items()]}

    def dirty_rows(self) -> dict[Table, tuple[list[Any], list[dict[str, Any]]]]:
        tkeys, ckeys = sorted(self._dirty_tasks), sorted(self._dirty_chunks)
        akeys = sorted(self._dirty_assignments)
        out: dict[Table, tuple[list[Any], list[dict[str, Any]]]] = {
            tasks: (tkeys, [dict(task_id=k[0], **self.candidates[k[0]][k[1]]) for k in tkeys]),
            chunks: (ckeys, [dict(task_id=k[0], owner=k[1], chunk=k[2], **self.owner_chunks[k]) for k in ckeys]),
            task_assignments: (akeys, [dict(hash=h, **self.assignments[h]) for h in akeys])}
        self._dirty_tasks, self._dirty_chunks, self._dirty_assignments = set(), set(), set()
        return out

    def load(self, conn: Connection, offset: int) -> None:
        self.reset()
        for row in conn.execute(select(tasks)).mappings():
            task = cast(TaskRow, {c: row[c] for c in _TASK_COLS})
            self.candidates.setdefault(row["task_id"], {})[row["owner"]] = task
            self._submissions[row["submitted_hash"]] = (row["task_id"], row["owner"])
        for row in conn.execute(select(chunks)).mappings():
            chunk = cast(ChunkRow, {c: row[c] for c in _CHUNK_COLS})
            self.owner_chunks[(row["task_id"], row["owner"], row["chunk"])] = chunk
        for row in conn.execute(select(task_assignments).order_by(task_assignments.c.position)).mappings():
            self.assignments[row["hash"]] = cast(AssignmentRow, {c: row[c] for c in _ASSIGNMENT_COLS})
            self._by_chunk.setdefault((row["task_id"], row["owner"], row["chunk"]), []).append(row["hash"])
        for task_id in self.candidates:
            self._crown(task_id)

    def digest_items(self) -> Iterable[Any]:
        for task_id in sorted(self.candidates):
            cands = self.candidates[task_id]
            for owner in sorted(cands):
                yield [[task_id, owner], _values(cands[owner], _TASK_COLS)]
        for key in sorted(self.owner_chunks):
            yield [list(key), _values(self.owner_chunks[key], _CHUNK_COLS)]
        for h in sorted(self.assignments):
            yield [h, _values(self.assignments[h], _ASSIGNMENT_COLS)]

    # --------------------------------------------------------------- queries
    def task_of(self, task_id: str, owner: str | None = None) -> TaskRow | None:
        """The row of `owner`'s task `task_id` (the winning candidate when `owner` is None).

        An owner (or a worker answering an assignment) should name the owner: the id alone
        may belong to someone else's task."""
        if owner is None:
            return self.tasks.get(task_id)
        return self.candidates.get(task_id, {}).get(owner)

    def owners_of(self, task_id: str) -> list[str]:
        """Every owner that submitted a task under `task_id`, winner first."""
        cands = self.candidates.get(task_id, {})
        return sorted(cands, key=lambda o: cands[o]["submitted_hash"])

    def chunks_of(self, task_id: str, owner: str | None = None) -> dict[int, ChunkRow]:
        """Chunk index -> chunk row of one candidate (the winner when `owner` is None)."""
        task = self.task_of(task_id, owner)
        if task is None:
            return {}
        owner = task["owner"]
        return {i: self.owner_chunks[(task_id, owner, i)] for i in range(task["chunks_total"])
                if (task_id, owner, i) in self.owner_chunks}

    def workers_of(self, task_id: str, owner: str | None = None) -> list[str]:
        """Every worker assigned any chunk of one candidate (the winner when `owner` is None),
        sorted: with replicas a chunk has several, and its row names only the latest."""
        task = self.task_of(task_id, owner)
        if task is None:
            return []
        return sorted({a["worker"] for i in range(task["chunks_total"])
                       for a in map(self.assignments.__getitem__, self._by_chunk.get((task_id, task["owner"], i), []))})

    def count_by_status(self) -> dict[str, int]:
        """How many tasks (by id: the winning candidates) have each status, every row status
        listed (0 when none has it), in lifecycle order."""
        counts = dict.fromkeys(ROW_STATUSES, 0)
        for row in self.tasks.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts

    def progress(self, task_id: str, owner: str | None = None) -> float:
        task = self.task_of(task_id, owner)
        if task is None:
            raise KeyError(task_id)
        if task["status"] == TaskStatus.COMPLETED:
            return 1.0
        return task["chunks_done"] / task["chunks_total"] if task["chunks_total"] else 0.0

    def result(self, task_id: str, owner: str | None = None) -> Any:
        task = self.task_of(task_id, owner)
        if task is None:
            raise KeyError(task_id)
        raw = task["result"]
        return orjson.loads(raw) if raw is not None else None
