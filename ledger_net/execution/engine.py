"""The task engine: the task lifecycle as a consumer of ledger events.

One engine per node plays both roles. As a *worker* it quotes on tasks it can run
(`task.quote`, priced by the PricingEngine from projections), runs chunks
assigned to it in a sandbox and reports signed results (`task.chunk_result`). As
an *owner* it escrows credits (`task.submitted`), routes chunks to bidders
(`task.assigned`), validates results (by quorum when replicated), pays from
escrow (`task.chunk_accepted`) with feedback, reassigns failures and timeouts, and
closes the task (`task.completed` with the aggregated result, or `failed` /
`cancelled`, refunding what is left). A node alone is a whole network: it bids
on and runs its own tasks.

Everything the engine decides becomes an event; its memory is rebuilt on start
by replaying the log, so a restarted node picks its tasks up where they were.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import orjson

from ..compute import Packer, aggregate, aggregate_by_reference, blob_refs, pack, plan_chunks, unpack, validate_config
from ..compute.plan import payload_work_units
from ..core.money import to_units
from ..core.node import Capabilities, unmet_requirements
from ..core.task import Task
from ..errors import CreditError, LedgerError, NodeError, TaskError
from ..ledger.chain import Applied, Ledger, RuleViolation
from ..ledger.events import Event
from ..market.routing import Bid as RouterBid
from ..projections.runner import ProjectionRunner
from .blobs import BlobStore
from .executor import ChunkExecutor, ChunkOutcome
from .framing import decode_frame, encode_frame
from .outbox import Outbox
from .owner import Attempt, Bid, ChunkWork, OwnedTask, result_hash

log = logging.getLogger(__name__)

PPM = 1_000_000
INLINE_LIMIT = 16 * 1024  # payloads and results up to this size travel inside events
SPEC_INLINE_LIMIT = 48 * 1024  # a task.submitted body above this names its config by blob hash
DEFAULT_BUDGET = 1.0  # credits, when a task names no max_price
TICK = 0.05
# The owner waits this long beyond a chunk's timeout before it gives up on the worker: the
# worker's sandbox enforces the timeout itself and its report (with the precise reason, e.g.
# "cpu time limit exceeded") still has to travel; giving up at the same instant races it.
REPORT_GRACE = 2.0


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
        self.owned: dict[str, OwnedTask] = {}
        self._running: dict[str, asyncio.Task[None]] = {}  # assignment hash -> execution
        self._done_assignments: set[str] = set()  # assignments to me already reported
        self._quoted: set[str] = set()  # task.submitted hashes this node has quoted on
        self._to_quote: list[Event] = []
        self._to_receive: list[str] = []
        self._replayed_runs: list[Event] = []  # my unreported chunks found by the replay, to rerun
        self._background: set[asyncio.Future[None]] = set()  # result fetches
        self._dirty: set[str] = set()  # owned tasks an event touched since the last step
        self._blocked: set[str] = set()  # owned tasks that found every usable worker full
        self._capacity_freed = False
        self._next_scan = 0.0
        # Per step: open load per worker, routing questions that found every worker full, and
        # one market snapshot for a batch of quotes.
        self._tick_load: dict[str, int] | None = None
        self._tick_full: set[tuple[Any, ...]] = set()
        self._market: Any = None
        self._queue: asyncio.Queue[list[Applied]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.max_concurrent = 4

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(max(1, self.max_concurrent))
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
        self._to_quote.clear()  # stale offers are not worth making again
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
        errors = task.validate()
        if errors:
            raise TaskError("invalid task: " + "; ".join(errors))
        task_type = str(task.task_type.value if hasattr(task.task_type, "value") else task.task_type)
        config = dict(task.config)
        requirements = dict(task.requirements or {})
        refusal = None
        if task_type in ("ml_inference", "ml_train_step"):
            config, refusal = self._attach_model(config)
            problems = validate_config(task_type, config)
            if problems:
                raise TaskError("invalid task: " + "; ".join(problems))
        # A task whose model cannot be run is still recorded, then failed with the reason,
        # so its owner sees the outcome the same way as any other failure.
        payloads = [{}] if refusal else plan_chunks(task_type, config, config.get("chunk_size"), checked=True)
        replicas = int(config.get("replicas", 1))
        if not 1 <= replicas <= 16:
            raise TaskError("replicas must be between 1 and 16")
        quorum = int(config.get("quorum", replicas // 2 + 1))
        if not 1 <= quorum <= replicas:
            raise TaskError("quorum must be between 1 and replicas")
        budget_value = config.get("max_price", requirements.get("max_price", DEFAULT_BUDGET))
        try:
            budget = to_units(budget_value, self.ledger.state.decimals, what="max_price")
        except CreditError as exc:
            raise TaskError(str(exc)) from None
        if budget < 0:
            raise TaskError("max_price must not be negative")
        per_chunk = budget // (len(payloads) * replicas)
        if task.task_id in self.ledger.state.account(self.me).tasks:
            raise TaskError(f"task {task.task_id} was already submitted")
        if budget > self.ledger.state.spendable(self.me):
            raise CreditError(f"insufficient credits to escrow the task's max_price {budget_value}: balance is "
                              f"{self.ledger.state.spendable(self.me) / 10 ** self.ledger.state.decimals}")
        # One packer per task: chunks name row runs of the config's arrays, not copies; big
        # arrays are hashed while written to the blob store, side by side.
        packer = Packer(store=self.blobs.store.put_new_blob)
        wire_config, config_blobs = packer.pack(config)
        self.blobs.put_many(config_blobs, trusted=True)
        wire_requirements, _ = pack(requirements, min_blob_items=10**9)
        chunks = [self._chunk_work(index, payload, packer) for index, payload in enumerate(payloads)]
        timeout = float(requirements.get("timeout_seconds") or 30.0)
        owned = OwnedTask(task.task_id, task_type, wire_config, requirements, int(task.priority or 2), replicas,
                          quorum, per_chunk, timeout, chunks)
        work_units = max((payload_work_units(task_type, p) for p in payloads), default=1) if not refusal else 1
        owned.work_units = int(work_units)
        body = {"task_id": task.task_id, "task_type": task_type, "escrow": budget, "max_price": per_chunk,
                "chunks": len(payloads), "spec": {"config": wire_config, "requirements": wire_requirements,
                                                  "work_units": int(work_units)},
                "priority": min(max(int(task.priority or 2), 0), 10), "replicas": replicas, "quorum": quorum,
                "timeout_ms": max(1, int(timeout * 1000))}
        if config_blobs:
            body["blobs"] = sorted(config_blobs)
        if len(orjson.dumps(body)) > SPEC_INLINE_LIMIT:
            # Too big for one event (events.MAX_EVENT_BYTES): the config travels as a frame
            # blob named by hash. Only the owner reads it back; workers get chunk payloads.
            frame_hash, _ = self.blobs.put_value(wire_config, {}, trusted=True)
            body["spec"] = {"config_blob": frame_hash, "requirements": wire_requirements,
                            "work_units": int(work_units)}
            body["blobs"] = [frame_hash]
        self.owned[task.task_id] = owned
        try:
            event = self.ledger.append("task.submitted", body)
        except RuleViolation as exc:
            del self.owned[task.task_id]
            raise CreditError(str(exc)) from None
        except LedgerError as exc:
            del self.owned[task.task_id]
            raise TaskError(f"the ledger refused the task: {exc}") from None
        owned.submitted = event.hash
        owned.quote_deadline = time.monotonic() + self.quote_window
        if refusal:
            self._close(task.task_id, "task.failed", {"reason": refusal})
            self.outbox.flush()
            owned.state = "closed"
        return task.task_id

    def _chunk_work(self, index: int, payload: Any, packer: Packer) -> ChunkWork:
        """A chunk's payload in wire form, naming its big operands by blob hash: inline in
        the assignment when small, else as one small frame blob of its own."""
        wire, blobs = packer.pack(payload)
        self.blobs.put_many(blobs, trusted=True)
        frame = encode_frame({"payload": wire})
        if len(frame) <= INLINE_LIMIT:
            return ChunkWork(index, wire, None)
        return ChunkWork(index, None, self.blobs.put(frame))

    def _attach_model(self, config: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """Ship the model file with the task (workers elsewhere cannot read the owner's disk);
        or say why it cannot run."""
        path = config.get("model_path")
        if not path or config.get("model_blob") or config.get("weights"):
            return config, None
        file = Path(path)
        if file.suffix.lower() != ".npz":
            return config, (f"unsupported model format {file.suffix or '(none)'!r} for {path}: "
                            "ledger_net runs numpy .npz models (linear or MLP)")
        if not file.is_file():
            return config, f"model file {path} not found"
        return dict(config, model_blob=self.blobs.put(file.read_bytes())), None

    def cancel(self, task_id: str) -> bool:
        task = self.owned.get(task_id)
        row = self.runner["tasks"].task_of(task_id, self.me) or self.runner["tasks"].tasks.get(task_id)
        if row is None:
            raise TaskError(f"task {task_id} not found")
        if row["owner"] != self.me:
            raise TaskError(f"task {task_id} belongs to another node; only its owner may cancel it")
        if task_id not in self.ledger.state.account(self.me).escrow:
            return False
        self._close(task_id, "task.cancelled", {"reason": "cancelled by its owner"})
        self.outbox.flush()
        if task is not None:
            task.state = "closed"
        return True

    # ------------------------------------------------------------ observing
    def _observe(self, event: Event, replay: bool = False) -> None:
        """Take in one committed event: touch its task, then hand it to the observer for its
        type (``_OBSERVERS``, a dispatch table like ``ledger/rules.py``'s). ``replay`` is set
        while the engine rebuilds its memory from the log on start."""
        t, b = event.type, event.body
        if t.startswith("task.") and "task_id" in b:
            self._touch(b["task_id"], frees_capacity=t in ("task.chunk_result", "task.completed", "task.failed",
                                                          "task.cancelled"))
        observer = self._OBSERVERS.get(t)
        if observer is not None:
            observer(self, event, replay)

    def _seen_submitted(self, event: Event, replay: bool) -> None:
        if event.author == self.me and event.body["task_id"] not in self.owned and replay:
            self._restore_owned(event)
        if event.hash not in self._quoted:
            self._to_quote.append(event)

    def _seen_quote(self, event: Event, replay: bool) -> None:
        b = event.body
        task = self.owned.get(b["task_id"])
        # A bid is for the submission it names: another owner may use the same task id.
        if task is not None and task.state == "quoting" and task.submitted in event.deps:
            if self.pricing.verify_quote(b):  # the price must follow from the inputs it names
                task.bids[event.author] = Bid(event.author, b["price"], event.hash, b["inputs"])
            else:
                log.warning("task %s: ignoring %s's quote: its price does not follow from its inputs",
                            b["task_id"], event.author[:16])
        if event.author == self.me:
            self._quoted.update(event.deps)

    def _seen_assigned(self, event: Event, replay: bool) -> None:
        b = event.body
        task = self.owned.get(b["task_id"]) if event.author == self.me else None
        if task is not None and replay and b["chunk"] < len(task.chunks):
            chunk = task.chunks[b["chunk"]]
            if task.attempt_by_assignment(event.hash) is None:
                chunk.attempts.append(Attempt(b["worker"], event.hash, b["price"], 0.0))
            task.state = "running"
        if b["worker"] == self.me and event.hash not in self._done_assignments:
            if not replay:
                self._start_chunk(event)
            else:
                self._replayed_runs.append(event)

    def _seen_result(self, event: Event, replay: bool) -> None:
        b = event.body
        if event.author == self.me:
            for dep in event.deps:
                self._done_assignments.add(dep)
        task = self.owned.get(b["task_id"])
        if task is not None:
            if b["ok"] and b.get("result") is None and b.get("result_hash") \
                    and not self.blobs.local_wire(b["result_hash"])[0]:
                # Judge a result only once it is here: the worker's node serves it by hash.
                self._spawn(self._fetch_then_record(task, event))
            else:
                self._record_result(task, event)

    def _seen_accepted(self, event: Event, replay: bool) -> None:
        b = event.body
        task = self.owned.get(b["task_id"]) if event.author == self.me else None
        if task is not None and b["chunk"] < len(task.chunks):
            chunk = task.chunks[b["chunk"]]
            for attempt in chunk.attempts:
                if attempt.worker == b["worker"] and attempt.ok and attempt not in chunk.accepted:
                    chunk.accepted.append(attempt)
                    break
            if len(chunk.accepted) >= task.quorum:
                chunk.settled = True
        if b["worker"] == self.me and event.author != self.me and b["payment"]:
            self._to_receive.append(event.hash)

    def _seen_rejected(self, event: Event, replay: bool) -> None:
        b = event.body
        task = self.owned.get(b["task_id"]) if event.author == self.me else None
        if task is not None and b["chunk"] < len(task.chunks):
            task.chunks[b["chunk"]].rejected_workers.add(b["worker"])

    def _seen_closed(self, event: Event, replay: bool) -> None:
        b = event.body
        task = self.owned.get(b["task_id"]) if event.author == self.me else None
        if task is not None:
            task.state = "closed"
        self._notify(b["task_id"], event.type.split(".")[1])

    def _seen_credit(self, event: Event, replay: bool) -> None:
        """Credits sent to this node by another: collect them (``credit.received``)."""
        if event.body.get("to") == self.me and event.author != self.me:
            self._to_receive.append(event.hash)

    _OBSERVERS: ClassVar[dict[str, Callable[[TaskEngine, Event, bool], None]]] = {
        "task.submitted": _seen_submitted, "task.quote": _seen_quote, "task.assigned": _seen_assigned,
        "task.chunk_result": _seen_result, "task.chunk_accepted": _seen_accepted,
        "task.chunk_rejected": _seen_rejected, "task.completed": _seen_closed, "task.failed": _seen_closed,
        "task.cancelled": _seen_closed, "credit.transfer": _seen_credit, "credit.minted": _seen_credit,
        "credit.voucher_settled": _seen_credit}

    def _record_result(self, task: OwnedTask, event: Event, body: dict[str, Any] | None = None) -> None:
        """Note a worker's report on the attempt it answers (``body`` overrides the event's)."""
        b = body if body is not None else event.body
        for dep in event.deps:
            found = task.attempt_by_assignment(dep)
            if found and found[1].worker == event.author and found[1].ok is None:
                attempt = found[1]
                attempt.ok, attempt.error = b["ok"], b.get("error")
                attempt.result_hash, attempt.result, attempt.event = b.get("result_hash"), b.get("result"), event.hash

    async def _fetch_then_record(self, task: OwnedTask, event: Event) -> None:
        body = None
        try:
            await self.blobs.fetch_value(event.body["result_hash"])
        except (TaskError, LedgerError) as exc:
            body = dict(event.body, ok=False, error=f"result could not be fetched from its worker: {exc}"[:4000])
        self._record_result(task, event, body)
        self._touch(task.task_id, frees_capacity=True)
        self._queue_wake()

    def _spawn(self, coro: Any) -> None:
        job = asyncio.ensure_future(coro)
        self._background.add(job)
        job.add_done_callback(self._background.discard)

    def _queue_wake(self) -> None:
        if self._queue is not None:
            self._queue.put_nowait([])

    def _restore_owned(self, event: Event) -> None:
        b = event.body
        spec = b["spec"]
        try:
            if "config_blob" in spec:  # a config too big for the event travels as a frame blob
                found, wire, blobs = self.blobs.local_wire(spec["config_blob"])
                if not found:
                    raise TaskError(f"config blob {str(spec['config_blob'])[:16]}… is not available here")
                spec = dict(spec, config=wire)
                config = unpack(wire, blobs, verify=False)
            else:
                config = unpack(spec["config"], self._local_blobs(spec["config"]), verify=False)
            payloads = plan_chunks(b["task_type"], config, config.get("chunk_size"))
        except (TaskError, LedgerError) as exc:
            log.warning("cannot resume task %s: %s", b["task_id"], exc)
            return
        packer = Packer()
        packer.pack(config)  # learn the operands' arrays again, so chunks name their rows
        chunks = [self._chunk_work(index, payload, packer) for index, payload in enumerate(payloads)]
        requirements = unpack(spec.get("requirements") or {})
        task = OwnedTask(b["task_id"], b["task_type"], spec["config"], requirements, b.get("priority", 2),
                         b.get("replicas", 1), b.get("quorum", 1), b["max_price"],
                         b.get("timeout_ms", 30000) / 1000.0, chunks, submitted=event.hash)
        if type(spec.get("work_units")) is int:
            task.work_units = spec["work_units"]
        self.owned[b["task_id"]] = task

    def _local_blobs(self, wire: Any) -> dict[str, Any]:
        out = {}
        for h in blob_refs(wire):
            data = self.blobs.local(h)
            if data is not None:
                out[h] = data
        return out

    def _notify(self, task_id: str, status: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(task_id, {"status": status})
            except Exception:
                log.exception("task listener failed")

    # ------------------------------------------------------------ acting
    def _act(self) -> None:
        replays, self._replayed_runs = self._replayed_runs, []
        if replays:
            for event in replays:
                self._start_chunk(event)
        self._quote_all()
        now = time.monotonic()
        # Per tick: the open load per worker once (not once per assignment: that made every
        # tick quadratic in the number of tasks), and which routing questions found no free worker.
        self._tick_load = self._open_load()
        self._tick_full = set()
        for task in self._tasks_to_look_at(now):
            if task.state == "closed" or task.task_id not in self.ledger.state.account(self.me).escrow:
                task.state = "closed"
                del self.owned[task.task_id]  # nothing left to do for it; the ledger keeps its story
                continue
            if task.waiting in self._tick_full:
                self._blocked.add(task.task_id)
                continue  # nothing out, and the workers it may use are full: nothing can change for it
            try:
                if task.state == "quoting":
                    self._maybe_route(task, now)
                if task.state == "running":
                    self._advance(task, now)
            except RuleViolation as exc:
                log.warning("task %s: %s", task.task_id, exc)
        self._receive()
        self.outbox.flush()

    def _tasks_to_look_at(self, now: float) -> list[OwnedTask]:
        """Tasks an event touched since the last step; those waiting for a worker when one
        may have freed up; every task once per TICK (deadlines). Without this every step
        walked every open task, and a node with hundreds in flight spent its time there."""
        if now >= self._next_scan:
            self._next_scan = now + TICK
            chosen = None
        else:
            chosen = self._dirty
            if self._capacity_freed:
                chosen |= self._blocked
                self._blocked = set()
        self._dirty, self._capacity_freed = set(), False
        if chosen is None:
            return list(self.owned.values())
        return [task for task_id, task in self.owned.items() if task_id in chosen]

    def _touch(self, task_id: str, frees_capacity: bool = False) -> None:
        if task_id in self.owned:
            self._dirty.add(task_id)
        if frees_capacity:
            self._capacity_freed = True

    def _quote_all(self) -> None:
        if not self._to_quote:
            return
        events, self._to_quote = self._to_quote, []
        items = []
        self._market = None  # one market snapshot for the batch: projections do not move within it
        for event in events:
            b = event.body
            if event.hash in self._quoted or b["task_id"] not in self.ledger.state.account(event.author).escrow:
                continue
            self._quoted.add(event.hash)
            requirements = unpack((b["spec"] or {}).get("requirements") or {})
            if not self._can_run(b["task_type"], requirements):
                continue
            quote = self._price(b)
            if quote is None:
                continue
            price, inputs = quote
            items.append(("task.quote", {"task_id": b["task_id"], "price": price, "inputs": inputs}, (event.hash,)))
        self.outbox.extend(items)

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

    def _maybe_route(self, task: OwnedTask, now: float) -> None:
        if not task.seen:
            # The quoting window runs from when the engine first sees the task: a busy
            # submitter must not starve its own bidders of their chance.
            task.seen = True
            task.quote_deadline = max(task.quote_deadline, now + self.quote_window)
        expected = self._expected_bidders()
        if now < task.quote_deadline and not expected <= set(task.bids):
            return
        bids = [b for b in task.bids.values() if b.price <= task.per_chunk_cap
                and b.worker not in self.ledger.state.frozen]
        if not bids:
            if now < task.quote_deadline + max(2.0, 4 * self.quote_window):
                return  # give slow peers a little longer
            reason = (f"no node will run it at max_price: {len(task.bids)} bid(s), none at or below "
                      f"{task.per_chunk_cap} base units per chunk") if task.bids else \
                "no node able to run this task made an offer" + (self._sandbox_hint(task.requirements)
                                                                 or self._budget_hint(task))
            self._close(task.task_id, "task.failed", {"reason": reason})
            task.state = "closed"
            return
        task.state = "running"
        self._assign(task, [c.index for c in task.chunks], bids, task.replicas)

    def _budget_hint(self, task: OwnedTask) -> str:
        """Why nobody bid, when the cause is the budget: nodes do not quote above a task's max_price,
        so the owner prices one chunk itself (the same pure formula every node uses) and says by how much."""
        market = self.pricing.snapshot(self.runner, self.me, load_ppm=0)
        quote = self.pricing.quote(work_units=max(0, task.work_units), priority=min(max(task.priority, 1), 4),
                                   market=market)
        if quote is None or quote.price <= task.per_chunk_cap:
            return ""
        scale = 10 ** self.ledger.state.decimals
        needed = quote.price * len(task.chunks) * max(1, task.replicas)
        return (f": its budget is short: it allows {task.per_chunk_cap / scale:g} credits per chunk, and this "
                f"node's own quote for one is {quote.price / scale:g}; a max_price of at least "
                f"{needed / scale:g} credits would cover {len(task.chunks)} chunk(s)")

    def _sandbox_hint(self, requirements: dict[str, Any]) -> str:
        """Why nobody bid, when the cause is the sandbox asked for: each node publishes the
        sandbox types it offers (none below its floor) in its capabilities."""
        wanted = requirements.get("sandbox_type")
        if not wanted:
            return ""
        nodes = self.runner["nodes"].nodes
        offered = sorted({t for row in nodes.values()
                          for t in (orjson.loads(row["capabilities"]).get("sandbox_types") or [])})
        if wanted in offered:
            return ""
        return (f": no known node offers sandbox {wanted!r} (offered: {', '.join(offered) or 'none'}; "
                "a node offers no type weaker than its sandbox floor)")

    def _expected_bidders(self) -> set[str]:
        nodes = self.runner["nodes"].nodes
        return {n for n, row in nodes.items() if row["status"] == "online" and n not in self.ledger.state.frozen} \
            | {self.me}

    def _assign(self, task: OwnedTask, indexes: list[int], bids: list[Bid], replicas: int,
                exclude: dict[int, set[str]] | None = None) -> None:
        load = self._tick_load if self._tick_load is not None else self._open_load()
        excluded = set().union(*(exclude or {}).values())
        question = (frozenset(b.worker for b in bids), frozenset(excluded), task.per_chunk_cap,
                    orjson.dumps(eligibility(task.requirements), option=orjson.OPT_SORT_KEYS))
        if question in self._tick_full:
            self._mark_waiting(task, question)
            self._blocked.add(task.task_id)
            return  # the same workers were already full this tick; loads only grow within it
        router_bids = self._router_bids(bids)
        plan = self.router.assign(indexes, router_bids, eligibility(task.requirements),
                                  replicas=replicas, exclude=excluded,
                                  current_load=load, max_price=task.per_chunk_cap)
        slots = {b.worker: _slots_of(b.capabilities) for b in router_bids}
        submitted = task.submitted
        assert submitted is not None, "a task is routed only after its submission is committed"
        now = time.monotonic()
        assigned = 0
        for index in indexes:
            chunk = task.chunks[index]
            for worker in plan.get(index, []):
                bid = task.bids[worker]
                body: dict[str, Any] = {"task_id": task.task_id, "chunk": index, "worker": worker, "price": bid.price,
                                        "attempt": len(chunk.attempts)}
                if chunk.payload_hash:
                    body["payload_hash"] = chunk.payload_hash
                else:
                    body["payload"] = chunk.payload
                # The attempt counts at once (load, quorum); its assignment hash arrives with the commit.
                # A chunk queued behind others at its worker may wait their turns before its own timeout.
                turns = 1 + load.get(worker, 0) // slots.get(worker, 1)
                attempt = Attempt(worker, "", bid.price, now + task.timeout * turns + REPORT_GRACE)
                chunk.attempts.append(attempt)
                self.outbox.add("task.assigned", body, (submitted, bid.quote_hash),
                                on_event=_bind_assignment(chunk, attempt))
                load[worker] = load.get(worker, 0) + 1
                assigned += 1
        if not assigned:
            self._tick_full.add(question)
            self._mark_waiting(task, question)
            self._blocked.add(task.task_id)
            return
        task.waiting = None

    @staticmethod
    def _mark_waiting(task: OwnedTask, question: tuple[Any, ...]) -> None:
        """A task with nothing out that found its workers full waits, unlooked at, while they stay full."""
        if not any(chunk.open_attempts() for chunk in task.chunks):
            task.waiting = question

    def _router_bids(self, bids: list[Bid]) -> list[RouterBid]:
        """Bids weighed by this node's own view: reputation and capabilities from its projections."""
        nodes, reputation = self.runner["nodes"].nodes, self.runner["reputation"]
        out = []
        for bid in bids:
            row = nodes.get(bid.worker)
            if row is None or row["forked_at"] is not None:
                continue
            load = bid.inputs.get("load_ppm", 0)
            out.append(RouterBid(worker=bid.worker, price=bid.price, reputation_ppm=int(reputation.score(bid.worker)),
                                 load_ppm=load if type(load) is int and 0 <= load <= PPM else PPM,
                                 capabilities=orjson.loads(row["capabilities"]), quote_hash=bid.quote_hash))
        return out

    def _open_load(self) -> dict[str, int]:
        """Chunks this node has assigned and not yet seen reported, per worker."""
        load: dict[str, int] = {}
        for task in self.owned.values():
            if task.state != "running":
                continue
            for chunk in task.chunks:
                for attempt in chunk.open_attempts():
                    load[attempt.worker] = load.get(attempt.worker, 0) + 1
        return load

    def _advance(self, task: OwnedTask, now: float) -> None:
        frozen = self.ledger.state.frozen
        items: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []
        retry: dict[int, int] = {}
        for chunk in task.unsettled():
            for attempt in chunk.open_attempts():
                if now > attempt.deadline or attempt.worker in frozen:
                    attempt.ok, attempt.error = False, ("worker is a proven forker" if attempt.worker in frozen
                                                        else "timed out")
            verdict, winners, losers = task.verdict(chunk)
            for loser in losers:
                if loser.worker not in chunk.rejected_workers:
                    chunk.rejected_workers.add(loser.worker)
                    items.append(("task.chunk_rejected", {"task_id": task.task_id, "chunk": chunk.index,
                                                          "worker": loser.worker,
                                                          "reason": (loser.error or "result lost the quorum")[:4000]},
                                  ()))
                    complained = {b["subject"] for t, b, _ in items if t == "reputation.feedback"}
                    if loser.worker != self.me and loser.worker not in complained and \
                            (task.task_id, loser.worker) not in self.ledger.state.account(self.me).rated:
                        items.append(self._feedback(task, loser.worker, False))  # once per task and subject
            if verdict == "accept":
                for winner in winners:
                    if winner.worker in frozen:
                        continue
                    items.append(("task.chunk_accepted", {"task_id": task.task_id, "chunk": chunk.index,
                                                          "worker": winner.worker, "payment": winner.price,
                                                          "result_hash": winner.result_hash},
                                  tuple(x for x in (winner.event,) if x)))
                    chunk.accepted.append(winner)
                chunk.settled = True
            elif verdict == "retry" or task.missing_attempts(chunk):
                if len([a for a in chunk.attempts if a.ok is False]) >= task.max_attempts * task.replicas:
                    last = next((a.error for a in reversed(chunk.attempts) if a.error), "no valid result")
                    self._flush(items)
                    self._close(task.task_id, "task.failed",
                                {"reason": f"chunk {chunk.index} failed after {len(chunk.attempts)} attempts: "
                                           f"{last}"[:4000]})
                    task.state = "closed"
                    return
                retry[chunk.index] = max(1, task.missing_attempts(chunk))
        # Praise is for paid work (the rules refuse it after a zero payment).
        paid_workers = {a.worker for c in task.chunks for a in c.accepted if a.price > 0}
        self._flush(items)
        if retry:
            self._reassign(task, retry)
        if task.state == "running" and not task.unsettled():
            praise = [self._feedback(task, w, True) for w in sorted(paid_workers)
                      if w != self.me and w not in frozen and (task.task_id, w) not in
                      self.ledger.state.account(self.me).rated]
            self._flush(praise)
            self._complete(task)

    def _reassign(self, task: OwnedTask, retry: dict[int, int]) -> None:
        bids = [b for b in task.bids.values() if b.price <= task.per_chunk_cap
                and b.worker not in self.ledger.state.frozen]
        for index, count in retry.items():
            chunk = task.chunks[index]
            exclude = chunk.tried_workers()
            candidates = [b for b in bids if b.worker not in exclude]
            if not candidates and chunk.attempts:
                last = next((a.error for a in reversed(chunk.attempts) if a.error), "no valid result")
                self._close(task.task_id, "task.failed",
                            {"reason": f"chunk {index} failed and no other node can take it: {last}"[:4000]})
                task.state = "closed"
                return
            self._assign(task, [index], candidates, count)

    def _feedback(self, task: OwnedTask, worker: str, positive: bool) -> tuple[str, dict[str, Any], tuple[str, ...]]:
        return ("reputation.feedback", {"subject": worker, "task_id": task.task_id, "positive": positive,
                                        "quality_ppm": PPM if positive else 0, "weight_ppm": PPM}, ())

    def _flush(self, items: list[tuple[str, dict[str, Any], tuple[str, ...]]]) -> None:
        """Queue decisions for this step's commit."""
        self.outbox.extend(items)
        items.clear()

    def _complete(self, task: OwnedTask) -> None:
        try:
            wires = [self._result_wire(task, chunk) for chunk in task.chunks]
            by_reference = aggregate_by_reference(task.task_type, task.config, [w for w, _ in wires])
            if by_reference is not None:
                body = self._result_body(by_reference, {}, trusted=True)
            else:
                results = [unpack(wire, blobs, verify=False) for wire, blobs in wires]
                config = unpack(task.config, self._local_blobs(task.config), verify=False)
                answer = aggregate(task.task_type, config, results)
                body = self._result_body(*pack(answer), trusted=True)
        except (TaskError, LedgerError, KeyError, ValueError, TypeError) as exc:
            self._close(task.task_id, "task.failed", {"reason": f"results could not be aggregated: {exc}"[:4000]})
            task.state = "closed"
            return
        self._close(task.task_id, "task.completed", body)
        task.state = "closed"

    def _result_wire(self, task: OwnedTask, chunk: ChunkWork) -> tuple[Any, dict[str, Any]]:
        """The accepted result of a chunk in wire form, with the blobs it names."""
        attempt = chunk.accepted[0]
        if attempt.result is not None:
            return attempt.result, {}
        found, wire, blobs = self.blobs.local_wire(attempt.result_hash or "")
        if not found:
            raise TaskError(f"result of chunk {chunk.index} is not available here")
        return wire, blobs

    def _result_body(self, wire: Any, blobs: dict[str, Any], trusted: bool) -> dict[str, Any]:
        """How a result goes into an event: inline when small (its frame hash names it, nothing
        stored), else as a stored frame naming its blobs."""
        if not blobs and not blob_refs(wire) and len(encode_frame({"result": wire})) <= INLINE_LIMIT:
            return {"result_hash": result_hash(wire), "result": wire}
        frame_hash, _ = self.blobs.put_value(wire, blobs, trusted=trusted)
        return {"result_hash": frame_hash}

    def _close(self, task_id: str, kind: str, body: dict[str, Any]) -> None:
        """End a task, refunding what its escrow keeps after the payments already decided."""
        escrow = self.ledger.state.account(self.me).escrow.get(task_id)
        if escrow is None:
            return
        self.outbox.add(kind, {"task_id": task_id, "refund": escrow - self.outbox.payments(task_id), **body})
        outcome = {"task.completed": "completed", "task.failed": "failed", "task.cancelled": "cancelled"}
        log.info("task %s %s%s", task_id, outcome.get(kind, kind),
                 f": {str(body['reason'])[:200]}" if body.get("reason") else "")

    def _receive(self) -> None:
        if not self._to_receive:
            return
        wanted, self._to_receive = self._to_receive, []
        open_to_me = {h for h, _ in self.ledger.state.open_credits_to(self.me)}
        items = [("credit.received", {"source": h}, (h,)) for h in dict.fromkeys(wanted) if h in open_to_me]
        self.outbox.extend(items)

    # ------------------------------------------------------------ working
    def _start_chunk(self, assignment: Event) -> None:
        if assignment.hash in self._running or assignment.hash in self._done_assignments:
            return
        self._running[assignment.hash] = asyncio.create_task(self._execute(assignment))

    async def _chunk_inputs(self, b: dict[str, Any]) -> tuple[Any, dict[str, Any], dict[str, str]]:
        """The payload of an assignment ``b`` and the blobs it names: small ones in memory, big
        ones as paths to their checked files (the worker maps them: no copy through a pipe)."""
        if "payload_hash" in b:
            header, blobs = decode_frame(bytes(await self.blobs.get(b["payload_hash"])))
            payload = header["payload"]
        else:
            payload, blobs = b["payload"], {}
        files: dict[str, str] = {}
        for ref in _payload_blobs(payload):
            if ref in blobs:
                continue
            data = await self.blobs.get(ref)  # from a peer when not here yet
            path = self.blobs.path(ref)
            if path is not None:
                files[ref] = str(path)
            else:
                blobs[ref] = data
        return payload, blobs, files

    async def _execute(self, assignment: Event) -> None:
        b = assignment.body
        try:
            submitted = self.runner["tasks"].task_of(b["task_id"], assignment.author)
            task_type = submitted["task_type"] if submitted else None
            requirements: dict[str, Any] = {}
            if submitted:
                spec = unpack_spec(submitted["spec"])
                requirements = spec.get("requirements", {})
            if task_type is None:
                raise TaskError(f"task {b['task_id']} is not known here")
            payload, blobs, files = await self._chunk_inputs(b)
            async with self._slots:
                counted = False
                if self.node is not None and hasattr(self.node, "task_started"):
                    try:
                        self.node.task_started()
                        counted = True
                    except NodeError:
                        pass  # the node's own counter is full; the semaphore already bounds us
                try:
                    outcome = await self.executor.run(task_type, payload, blobs, requirements, files)
                finally:
                    if counted:
                        self.node.task_finished()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever happens, the owner hears about it
            log.exception("chunk %s of %s could not run", b.get("chunk"), b.get("task_id"))
            outcome = ChunkOutcome(False, error=f"{type(exc).__name__}: {exc}"[:4000])
        body: dict[str, Any] = {"task_id": b["task_id"], "chunk": b["chunk"], "ok": outcome.ok,
                                "usage": outcome.usage, "attempt": b.get("attempt", 0)}
        if outcome.ok:
            try:
                # Checked here, not trusted: the sandboxed worker names its blobs, the node hashes them.
                body.update(self._result_body(outcome.result, outcome.blobs, trusted=False))
            except TaskError as exc:
                body.update(ok=False, result_hash=None, error=f"the worker's result is malformed: {exc}"[:4000])
        else:
            body["result_hash"] = None
            body["error"] = (outcome.error or "failed")[:4000]
        self._running.pop(assignment.hash, None)
        self._done_assignments.add(assignment.hash)

        def reported(event: Event | None) -> None:
            if event is None:
                log.error("could not report chunk %s of %s", b["chunk"], b["task_id"])
                self._done_assignments.discard(assignment.hash)

        self.outbox.add("task.chunk_result", body, (assignment.hash,), on_event=reported)
        self._queue_wake()  # reported with the engine's next step


def _slots_of(caps: Capabilities | Mapping[str, Any]) -> int:
    """How many chunks a worker runs at once, as it signed it into the ledger (at least 1)."""
    value = caps.max_concurrent_tasks if isinstance(caps, Capabilities) else caps.get("max_concurrent_tasks", 1)
    return max(1, int(value or 1))


def eligibility(requirements: dict[str, Any]) -> dict[str, Any]:
    """The requirements that decide who may run a chunk. ledger_net's ML runtimes are numpy
    on the CPU, so `gpu_percent` is a preference (GPU nodes rank first by price and
    capability), not a hard filter; `max_price` is the owner's budget, not a capability."""
    return {k: v for k, v in requirements.items() if k in ("cpu_percent", "ram_gb", "disk_gb", "timeout_seconds",
                                                           "sandbox_type", "task_type")}


def _bind_assignment(chunk: ChunkWork, attempt: Attempt) -> Callable[[Event | None], None]:
    def bind(event: Event | None) -> None:
        if event is None:
            chunk.attempts.remove(attempt)  # refused: the chunk is open again
        else:
            attempt.assignment = event.hash
    return bind


def _payload_blobs(payload: Any) -> list[str]:
    """Blobs a chunk needs: those its payload names, and its model file's."""
    refs = blob_refs(payload)
    model = payload.get("model") if isinstance(payload, dict) else None
    if isinstance(model, dict) and isinstance(model.get("model_blob"), str):
        refs.append(model["model_blob"])
    return refs


def unpack_spec(spec_json: str) -> dict[str, Any]:
    spec = orjson.loads(spec_json)
    return {"config": spec.get("config"), "requirements": unpack(spec.get("requirements") or {})}


__all__ = ["TaskEngine", "result_hash", "payload_work_units"]
