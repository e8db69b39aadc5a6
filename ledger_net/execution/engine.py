"""The task engine: a thin async loop around the task lifecycle's pure policies.

One engine per node plays both roles. As a *worker* it quotes on tasks it can run
(`task.quote`, priced by the PricingEngine from projections), runs chunks assigned to it in
a sandbox and reports signed results (`task.chunk_result`). As an *owner* it escrows credits
(`task.submitted`), routes chunks to bidders (`task.assigned`), validates results (by quorum
when replicated), pays from escrow (`task.chunk_accepted`) with feedback, reassigns failures
and timeouts, and closes the task (`task.completed` with the aggregated result, or `failed` /
`cancelled`, refunding what is left). A node alone is a whole network: it bids on and runs
its own tasks.

Who decides what, in the style of eventsourcing's process applications:

* submission.py: a `Task` checked and planned into its `task.submitted`;
* owner_policy.py: bids, routing, reassignment, closing (``(state, event) → decisions`` by a
  dispatch table on the event type, and a look at the clock per step);
* results.py: chunk verdicts, payments and complaints;
* worker_policy.py: quotes, runs, reports, collecting credits;
* running.py, answers.py: the worker's sandboxed run, results in events (I/O);
* this loop: feeds committed events to the policies (`_observe`), asks them for a step's
  decisions (`_act`) and carries those out (`_commit`): events through the outbox, whose
  ``on_commit`` is the only way a decision changes memory (decisions.py).

Everything the engine decides becomes an event; its memory is rebuilt on start by replaying
the log, so a restarted node picks its tasks up where they were.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..compute import unpack
from ..core import credits
from ..core.node import unmet_requirements
from ..core.task import Task
from ..errors import LedgerError, NodeError, TaskError
from ..ledger.chain import Applied, Ledger, RuleViolation
from ..ledger.events import Event
from ..projections.runner import ProjectionRunner
from . import owner_policy, submission, worker_policy
from .blobs import BlobStore
from .decisions import Decision, Decisions, Emit, Fetch, Notify, Run
from .executor import ChunkExecutor
from .outbox import Outbox
from .owner import OwnedTask, result_hash
from .owner_policy import REPORT_GRACE, TICK, eligibility
from .partial_blobs import RowFetches
from .running import ChunkRunner
from .view import LedgerView

log = logging.getLogger(__name__)

PPM = 1_000_000


class TaskEngine:
    """Drives tasks owned by this node and chunks assigned to it."""

    def __init__(self, ledger: Ledger, runner: ProjectionRunner, executor: ChunkExecutor, blobs: BlobStore, *,
                 pricing: Any, router: Any, node: Any = None, quote_window: float = 0.25,
                 load_ppm: Callable[[], int] | None = None) -> None:
        self.ledger, self.runner, self.executor, self.blobs = ledger, runner, executor, blobs
        self.pricing, self.router, self.node = pricing, router, node
        self.quote_window = quote_window
        self.load_ppm = load_ppm or (lambda: 0)
        self.me = ledger.node_id
        self.outbox = Outbox(ledger)  # a step's decisions, committed together
        self.owner = owner_policy.OwnerState(self.me)
        self.worker = worker_policy.WorkerState(self.me)
        self.view = LedgerView(self)
        self._running: dict[str, asyncio.Task[None]] = {}  # assignment hash -> execution (until reported)
        self._background: set[asyncio.Future[None]] = set()  # result fetches
        self._market: Any = None  # one market snapshot for a batch of quotes
        self._queue: asyncio.Queue[list[Applied]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.max_concurrent = 4
        self.rows: RowFetches | None = None  # range fetches of operands' rows (set by the node)
        # (task id, chunk, ms when the owner saw a remote result, ms when it held it): the
        # result's trip back, for the benches' chunk timelines; the newest few only.
        self.result_trips: collections.deque[tuple[str, Any, int, int]] = collections.deque(maxlen=256)

    @property
    def owned(self) -> dict[str, OwnedTask]:
        """The tasks this node owns and still drives."""
        return self.owner.owned

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._chunks = ChunkRunner(self.executor, self.blobs, self.node, self.max_concurrent, rows=self.rows)
        self._stopping = False
        self._replay()
        self.ledger.subscribe(self._on_applied)
        self._task = asyncio.create_task(self._run(), name="task-engine")

    async def stop(self) -> None:
        if self._task is not None:
            # A flag, not just cancel(): on Python 3.11 a cancel that races a queue item
            # can be swallowed by wait_for, and the loop would run on forever.
            self._stopping = True
            if self._queue is not None:
                self._queue.put_nowait([])
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=5.0)
            except (TimeoutError, asyncio.CancelledError, Exception):
                self._task.cancel()
            self._task = None
        for job in [*self._running.values(), *self._background]:
            job.cancel()
        await asyncio.gather(*self._running.values(), *self._background, return_exceptions=True)
        self._background.clear()
        self._running.clear()
        if self.rows is not None:
            self.rows.close()
        self.ledger.unsubscribe(self._on_applied)

    def _on_applied(self, applied: list[Applied]) -> None:
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            queue.put_nowait(applied)
        else:
            loop.call_soon_threadsafe(queue.put_nowait, applied)

    def _replay(self) -> None:
        """Rebuild the engine's memory from the log (after a restart)."""
        for row in self.ledger.store.select_events():
            if row.valid and row.type.startswith(("task.", "credit.")):
                self._observe(Event.from_wire(row.raw, row.sig), replay=True)
        self.worker.to_quote.clear()  # stale offers are not worth making again
        now = time.monotonic()
        for task in self.owned.values():
            task.quote_deadline = now
            for chunk in task.chunks:
                for attempt in chunk.open_attempts():
                    attempt.deadline = now + task.timeout + REPORT_GRACE

    async def _run(self) -> None:
        assert self._queue is not None
        while not self._stopping:
            try:
                async with asyncio.timeout(TICK):
                    batch = await self._queue.get()
                batches = [batch]
                while not self._queue.empty():
                    batches.append(self._queue.get_nowait())
                for applied in batches:
                    for item in applied:
                        if item.reason is None:
                            self._observe(item.event)
            except TimeoutError:
                pass
            try:
                self._act()
            except Exception:
                log.exception("task engine step failed")

    # ------------------------------------------------------------ submitting
    def submit(self, task: Task) -> str:
        """Escrow the task's budget and publish it; returns the task id."""
        state = self.ledger.state
        funds = submission.Funds(state.decimals, state.spendable(self.me), frozenset(state.account(self.me).tasks))
        planned = submission.prepare(task, funds, self.blobs)
        try:
            event = self.ledger.append("task.submitted", planned.body)
        except RuleViolation as exc:
            raise credits.refused(exc) from None
        except LedgerError as exc:
            raise TaskError(f"the ledger refused the task: {exc}") from None
        planned.on_commit(event, self.owned, self.quote_window)
        if planned.refusal:
            out = Decisions()
            owner_policy.close(self.view, task.task_id, "task.failed", {"reason": planned.refusal}, out, planned.owned)
            self._commit(out.items)
            self.outbox.flush()
        return task.task_id

    def cancel(self, task_id: str) -> bool:
        """Cancel a task of this node's, refunding its escrow; False when it is already closed."""
        tasks = self.runner.tasks
        row = tasks.task_of(task_id, self.me) or tasks.tasks.get(task_id)
        if row is None:
            raise TaskError(f"task {task_id} not found")
        if row["owner"] != self.me:
            raise TaskError(f"task {task_id} belongs to another node; only its owner may cancel it")
        if self.view.escrow(task_id) is None:
            return False
        out = Decisions()
        owner_policy.close(self.view, task_id, "task.cancelled", {"reason": "cancelled by its owner"}, out,
                           self.owned.get(task_id))
        self._commit(out.items)
        self.outbox.flush()
        return True

    # ------------------------------------------------------------ observing
    def _observe(self, event: Event, replay: bool = False) -> None:
        """Take in one committed event: each policy hands it to the handler for its type (the
        dispatch tables ``owner_policy.HANDLERS`` and ``worker_policy.HANDLERS``, like
        ``ledger/rules.py``'s); their decisions are carried out. ``replay`` is set while the
        engine rebuilds its memory from the log on start."""
        self._commit(owner_policy.observe(self.owner, self.view, event, replay)
                     + worker_policy.observe(self.worker, event, replay))

    # ------------------------------------------------------------ acting
    def _act(self) -> None:
        replays, self.worker.replayed_runs = self.worker.replayed_runs, []
        self._commit([Run(event) for event in replays])
        self._market = None  # one market snapshot for a batch of quotes: projections do not move within it
        self._commit(worker_policy.quotes(self.worker, is_open=self._open_submission, can_run=self._quotable,
                                          price=self._price))
        self._commit(owner_policy.look(self.owner, self.view, time.monotonic()))
        if self.worker.to_receive:
            open_to_me = {h for h, _ in self.ledger.state.open_credits_to(self.me)}
            self._commit(worker_policy.receipts(self.worker, open_to_me))
        self.outbox.flush()

    def _commit(self, decisions: Sequence[Decision]) -> None:
        """Carry decisions out: events into the outbox (memory changes in their on_commit, once
        signed), runs, fetches and notifications at once."""
        for d in decisions:
            if isinstance(d, Emit):
                self.outbox.add(d.type, d.body, d.deps, on_event=_on_signed(d))
            elif isinstance(d, Run):
                self._start_chunk(d.assignment)
            elif isinstance(d, Fetch):
                self._spawn(self._fetch_then_record(d))
            elif isinstance(d, Notify):
                self._notify(d.task_id, d.status)

    def _open_submission(self, event: Event) -> bool:
        return event.body["task_id"] in self.ledger.state.account(event.author).escrow

    def _quotable(self, event: Event) -> bool:
        requirements = unpack((event.body["spec"] or {}).get("requirements") or {})
        return self._can_run(event.body["task_type"], requirements)

    def _can_run(self, task_type: str, requirements: dict[str, Any]) -> bool:
        """Bid on what this node's (static) capabilities can run; live load only moves the price."""
        caps = getattr(self.node, "capabilities", None)
        if caps is None:
            return True
        try:
            return not unmet_requirements(caps, {**eligibility(requirements), "task_type": task_type})
        except (NodeError, TaskError):
            return False

    def _price(self, body: dict[str, Any]) -> tuple[int, dict[str, int]] | None:
        spec = body.get("spec") or {}
        work: int = spec["work_units"] if type(spec.get("work_units")) is int else 1
        market = self._market
        if market is None:
            market = self._market = self.pricing.snapshot(self.runner, self.me,
                                                          load_ppm=max(0, min(PPM, int(self.load_ppm()))))
        quote = self.pricing.quote(work_units=max(0, work), priority=min(max(body.get("priority", 2), 1), 4),
                                   market=market, max_price=body["max_price"])
        if quote is None:
            return None
        return quote.price, dict(quote.inputs)

    async def _fetch_then_record(self, fetch: Fetch) -> None:
        event, body = fetch.result, None
        seen = int(time.time() * 1000)  # the events' clock: a chunk's timeline lines up with them
        try:
            await self.blobs.fetch_value(event.body["result_hash"])
        except (TaskError, LedgerError) as exc:
            body = dict(event.body, ok=False, error=f"result could not be fetched from its worker: {exc}"[:4000])
        self.result_trips.append((fetch.task_id, event.body.get("chunk"), seen, int(time.time() * 1000)))
        task = self.owned.get(fetch.task_id)
        if task is not None:
            owner_policy.record_result(task, event, body)
        self.owner.touch(fetch.task_id, frees_capacity=True)
        self._queue_wake()

    def off_loop(self, work: Callable[[], Any], then: Callable[[Any], None], task_id: str) -> None:
        """Run ``work`` in a thread (an owner's check: Freivalds on a large chunk takes tens of ms,
        which would stall every other task and the replication on this loop), hand its value to
        ``then`` back on the loop, and look at ``task_id`` again."""
        async def run() -> None:
            try:
                then(await asyncio.to_thread(work))
            finally:
                self.owner.touch(task_id)
                self._queue_wake()
        self._spawn(run())

    def _spawn(self, coro: Any) -> None:
        job = asyncio.ensure_future(coro)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    def _queue_wake(self) -> None:
        if self._queue is not None:
            self._queue.put_nowait([])

    def _notify(self, task_id: str, status: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(task_id, {"status": status})
            except Exception:
                log.exception("task listener failed")

    # ------------------------------------------------------------ working
    def _start_chunk(self, assignment: Event) -> None:
        if assignment.hash in self._running or assignment.hash in self.worker.done:
            return
        self._running[assignment.hash] = asyncio.create_task(self._execute(assignment))

    async def _execute(self, assignment: Event) -> None:
        """Run an assignment and queue its report; it stays running until the report is signed."""
        submitted = self.runner.tasks.task_of(assignment.body["task_id"], assignment.author)
        body = await self._chunks.run(assignment, submitted)
        emit = worker_policy.report(self.worker, assignment, body)

        def reported(event: Event | None) -> None:
            self._running.pop(assignment.hash, None)
            if event is None:
                log.error("could not report chunk %s of %s", body["chunk"], body["task_id"])
            elif emit.on_commit is not None:
                emit.on_commit(event)

        self.outbox.add(emit.type, emit.body, emit.deps, on_event=reported)
        self._queue_wake()  # reported with the engine's next step


def _on_signed(decision: Emit) -> Callable[[Event | None], None]:
    def signed(event: Event | None) -> None:
        if event is not None and decision.on_commit is not None:
            decision.on_commit(event)  # memory changes only once the event is signed
    return signed


__all__ = ["TaskEngine", "result_hash"]
