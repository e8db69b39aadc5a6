"""The worker's I/O: fetch an assignment's inputs, run it in the sandbox, write its result.

The worker policy decides what to run and what to report; this module only does it. Every
failure becomes a report the owner hears about (``ok: false`` with the reason).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..errors import NodeError, TaskError
from ..ledger.events import Event
from ..projections.rows import TaskRow
from .answers import payload_blobs, result_body, unpack_spec
from .blobs import BlobStore
from .executor import ChunkExecutor, ChunkOutcome
from .framing import decode_frame
from .partial_blobs import RowFetches, row_ranges
from .worker_policy import report_body

log = logging.getLogger(__name__)


class ChunkRunner:
    """Runs assignments to this node, at most ``slots`` at once."""

    def __init__(self, executor: ChunkExecutor, blobs: BlobStore, node: Any, slots: int,
                 rows: RowFetches | None = None) -> None:
        self.executor, self.blobs, self.node, self.rows = executor, blobs, node, rows
        self.slots = asyncio.Semaphore(max(1, slots))

    async def inputs(self, b: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, str]]:
        """The payload of an assignment ``b`` and the blobs it names: small ones in memory, big
        ones as paths to their checked files (the worker maps them: no copy through a pipe)."""
        if "payload_hash" in b:
            header, blobs = decode_frame(bytes(await self.blobs.get(b["payload_hash"])))
            payload = header["payload"]
        else:
            payload, blobs = b["payload"], {}
        files: dict[str, str] = {}
        refs = [ref for ref in payload_blobs(payload) if ref not in blobs]
        # A blob the payload reads only rows of comes by range when it is not here: only the
        # pieces holding those rows, each checked (``partial_blobs``); the rest come whole.
        spans = row_ranges(payload) if self.rows is not None else {}

        async def one(ref: str) -> tuple[Any, str | None]:
            if ref in spans and self.rows is not None:
                path = await self.rows.rows(ref, spans[ref])
                if path is not None:
                    return None, path
            data = await self.blobs.get(ref)
            stored = self.blobs.path(ref)
            return data, str(stored) if stored is not None else None

        # From a peer when not here yet: the blobs needed whole at once (shared with the other
        # chunks asking), then the rows. So a node's second chunk's rows do not compete with the
        # first chunk's B: its first chunk starts after B and its own rows arrive (41 of 50 MiB
        # for a 2048² product in 4 chunks; 187-265 ms against 209-324 ms in an alternated
        # loopback measurement with the serving core busy, docs/performance.md).
        wholes = [ref for ref in refs if ref not in spans]
        parts = [ref for ref in refs if ref in spans]
        fetched = dict(zip(wholes, await asyncio.gather(*(one(ref) for ref in wholes)), strict=True))
        fetched.update(zip(parts, await asyncio.gather(*(one(ref) for ref in parts)), strict=True))
        for ref, (data, path) in fetched.items():
            if path is not None:
                files[ref] = path
            else:
                blobs[ref] = data
        return payload, blobs, files

    async def run(self, assignment: Event, submitted: TaskRow | None) -> dict[str, Any]:
        """Run one assignment (``submitted``: its task's row, if known here); the report's body."""
        b = assignment.body
        # Where the chunk's time went, in whole ms, for the report's usage (the owner's and the
        # bench's timeline): fetching its inputs, waiting for a slot, running (wall_ms), storing.
        started = time.perf_counter()
        stages: dict[str, int] = {}
        try:
            if submitted is None:
                raise TaskError(f"task {b['task_id']} is not known here")
            requirements = unpack_spec(submitted["spec"]).get("requirements", {})
            payload, blobs, files = await self.inputs(b)
            stages["fetch_ms"] = _ms_since(started)
            async with self.slots:
                stages["wait_ms"] = _ms_since(started) - stages["fetch_ms"]
                counted = False
                if self.node is not None and hasattr(self.node, "task_started"):
                    try:
                        self.node.task_started()
                        counted = True
                    except NodeError:
                        pass  # the node's own counter is full; the semaphore already bounds us
                try:
                    outcome = await self.executor.run(submitted["task_type"], payload, blobs, requirements, files)
                finally:
                    if counted:
                        self.node.task_finished()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever happens, the owner hears about it
            log.exception("chunk %s of %s could not run", b.get("chunk"), b.get("task_id"))
            outcome = ChunkOutcome(False, error=f"{type(exc).__name__}: {exc}"[:4000])
        outcome.usage.update(stages)
        if not outcome.ok:
            return report_body(assignment, False, outcome.usage, None, outcome.error)
        stored = time.perf_counter()
        try:
            # Checked here, not trusted: the sandboxed worker names its blobs, the node hashes them;
            # big ones in a thread so the loop meanwhile starts the slot's next chunk (hashlib drops
            # the GIL). A tiny result has no blobs, and a thread hop would cost it more than it saves.
            if outcome.blobs:
                answer = await asyncio.to_thread(result_body, self.blobs, outcome.result, outcome.blobs, trusted=False)
            else:
                answer = result_body(self.blobs, outcome.result, outcome.blobs, trusted=False)
        except TaskError as exc:
            return report_body(assignment, False, outcome.usage, None, f"the worker's result is malformed: {exc}")
        outcome.usage["store_ms"] = _ms_since(stored)
        return report_body(assignment, True, outcome.usage, answer, None)


def _ms_since(start: float) -> int:
    return int((time.perf_counter() - start) * 1000)
