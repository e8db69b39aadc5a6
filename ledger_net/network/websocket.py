"""The seed's WebSocket API at `/ws`.

A client sends `{"type": "subscribe", "event": <topic>}` (and may `unsubscribe`):
- `task_updates`  -> `{"type": "task_update", "task_id", "status", "progress", "timestamp"}` for
  every committed `task.*` event (status and progress from the tasks projection);
- `node_update`   -> `{"type": "node_update", "node_id", "status", "capabilities", "timestamp"}`
  for every committed `node.*` event;
- `network_update`-> `{"type": "network_update", "metrics": {total_nodes, active_tasks, cpu_usage,
  ram_usage}, "timestamp"}` once on subscribing and then every `metrics_interval` seconds;
- `events`        -> `{"type": "event", "offset", "event": {raw, sig}, "valid", "reason"}`, the raw
  log from `after` (default: now) in offset order, never skipping or repeating.
A message the hub cannot act on gets `{"type": "error", "error", "details": {"error_code",
"error_message"}, "timestamp"}`; the connection stays open.

Other components publish their own messages with `WebSocketHub.publish(topic, message)`.
Each client has a bounded queue; a client that cannot keep up (a slow reader, or a
flood of pings whose pongs it does not read) is closed with 1013 ("try again later")
rather than letting memory grow. `after` is an offset the log can hold (at most
2**63 - 1); a follow that fails tells the client with an `error` message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import psutil
from aiohttp import WSMsgType, web

from ..core.node import Capabilities
from ..errors import NodeError
from ..ledger.chain import Applied, Ledger
from ..ledger.wire import stored_to_wire
from ..projections.runner import ProjectionRunner
from ..projections.status import TERMINAL, TaskStatus
from .protocol import MAX_PAGE
from .watcher import CommitWatcher

log = logging.getLogger(__name__)

TASK_UPDATES = "task_updates"
NETWORK_UPDATE = "network_update"
NODE_UPDATE = "node_update"
EVENTS = "events"
TOPICS = frozenset({TASK_UPDATES, NETWORK_UPDATE, NODE_UPDATE, EVENTS})
MAX_MESSAGE = 64 << 10
MAX_OFFSET = (1 << 63) - 1  # offsets are signed 64-bit in the store
TOO_SLOW = 1013


class _Client:
    """One WebSocket connection: its topics, its bounded outbox, its events cursor."""

    def __init__(self, ws: web.WebSocketResponse, queue_size: int) -> None:
        self.ws = ws
        self.topics: set[str] = set()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=queue_size)
        self.events_task: asyncio.Task[None] | None = None
        self.overflowed = False

    def offer(self, data: bytes) -> None:
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            self.overflowed = True


def error_message(code: str, message: str, error: str = "Invalid message", **details: Any) -> dict[str, Any]:
    return {"type": "error", "error": error, "details": {"error_code": code, "error_message": message, **details},
            "timestamp": time.time()}


def seed_capabilities(capabilities: dict[str, Any]) -> dict[str, Any]:
    """The seed's capability keys (cpu_score, ram_gb, … as floats, read by Capabilities itself)
    beside the ledger's exact integers; a peer's malformed capabilities pass through as they are."""
    if not {"cpu_milli", "ram_mb", "disk_mb", "gpu_milli"} & set(capabilities):
        return dict(capabilities)  # already in the seed's form
    try:
        seed = Capabilities.from_ledger(capabilities).to_dict()
    except NodeError:
        return dict(capabilities)
    return {**capabilities, **{k: seed[k] for k in ("cpu_score", "ram_gb", "disk_gb", "gpu_score")}}


class WebSocketHub:
    """Fans committed ledger events and periodic metrics out to `/ws` subscribers."""

    def __init__(self, ledger: Ledger, runner: ProjectionRunner | None = None, *,
                 loop: asyncio.AbstractEventLoop | None = None, watcher: CommitWatcher | None = None,
                 metrics_interval: float = 5.0, queue_size: int = 1000,
                 read: Callable[..., Any] | None = None, peers_count: Callable[[], int] | None = None) -> None:
        self.ledger = ledger
        self.runner = runner
        self.loop = loop or asyncio.get_running_loop()
        self.watcher = watcher or CommitWatcher(self.loop, ledger.store.last_offset())
        if watcher is None:
            ledger.subscribe(self.watcher.on_applied)
        self.metrics_interval = metrics_interval
        self.queue_size = queue_size
        self._read = read
        self.peers_count = peers_count
        self.clients: set[_Client] = set()
        self._metrics_task: asyncio.Task[None] | None = None
        self._closed = False
        ledger.subscribe(self._on_applied_any_thread)
        psutil.cpu_percent(None)  # prime: the first call has no interval to measure

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._metrics_task is None:
            self._metrics_task = asyncio.create_task(self._metrics_loop(), name="ws-metrics")

    async def close(self) -> None:
        self._closed = True
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            await asyncio.gather(self._metrics_task, return_exceptions=True)
            self._metrics_task = None
        for client in list(self.clients):
            await self._drop(client, code=1001, reason=b"server shutting down")

    # ------------------------------------------------------------- publishing
    def publish(self, topic: str, message: dict[str, Any]) -> int:
        """Send `message` to every subscriber of `topic` (call on the event loop); returns how many."""
        data = orjson.dumps(message)
        count = 0
        for client in list(self.clients):
            if topic in client.topics:
                client.offer(data)
                count += 1
        return count

    def publish_threadsafe(self, topic: str, message: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.publish, topic, message)

    def _on_applied_any_thread(self, applied: list[Applied]) -> None:
        if self._closed or not self.clients:
            return
        wanted = [a for a in applied if a.event.type.startswith(("task.", "node."))]
        if wanted:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._on_applied, wanted)

    def _on_applied(self, applied: list[Applied]) -> None:
        for item in applied:
            if item.event.type.startswith("task."):
                message = self.task_update(item)
                if message is not None:
                    self.publish(TASK_UPDATES, message)
                    if message["status"] == "failed":
                        # The seed tells task_updates subscribers of a failure with an error too.
                        reason = str(item.event.body.get("reason") or "the task failed")
                        self.publish(TASK_UPDATES, error_message(
                            "EXECUTION_FAILED", reason, "Task execution failed", task_id=message["task_id"]))
            else:
                message = self.node_update(item)
                if message is not None:
                    self.publish(NODE_UPDATE, message)

    def task_update(self, item: Applied) -> dict[str, Any] | None:
        """A `task_update` for a committed `task.*` event (None for events without effect)."""
        event = item.event
        task_id = event.body.get("task_id")
        if item.reason is not None or not isinstance(task_id, str):
            return None
        # The status is the event's own (the projection may already be further on when a
        # replicated batch is announced); progress comes from the tasks projection.
        status, progress = _status_of(event.type), None
        if self.runner is not None and status != TaskStatus.COMPLETED:
            task = self.runner.tasks.tasks.get(task_id)
            if task is not None:
                total = task["chunks_total"]
                progress = task["chunks_done"] / total if total else 0.0
        if progress is None:
            progress = 1.0 if status == TaskStatus.COMPLETED else 0.0
        return {"type": "task_update", "task_id": task_id, "status": status, "progress": progress,
                "event": event.type, "event_hash": event.hash, "timestamp": event.ts / 1000}

    def node_update(self, item: Applied) -> dict[str, Any] | None:
        event = item.event
        if item.reason is not None:
            return None
        body = event.body
        status = {"node.joined": "online", "node.left": "offline"}.get(event.type, body.get("status", "online"))
        capabilities = body.get("capabilities")
        if capabilities is None and self.runner is not None:
            row = self.runner.nodes.nodes.get(event.author)
            if row is not None:
                capabilities = orjson.loads(row["capabilities"])
        message = {"type": "node_update", "node_id": event.author, "status": status,
                   "capabilities": seed_capabilities(capabilities or {}), "event": event.type,
                   "timestamp": event.ts / 1000}
        for key in ("name", "url"):  # only what this event set: no nulls for fields it left alone
            if body.get(key) is not None:
                message[key] = body[key]
        return message

    def network_metrics(self) -> dict[str, Any]:
        total_nodes = active_tasks = 0
        if self.runner is not None:
            nodes = list(self.runner.nodes.nodes.values())
            total_nodes = sum(1 for n in nodes if n["status"] != "offline" and n["status"] != "unknown")
            tasks = list(self.runner.tasks.tasks.values())
            active_tasks = sum(1 for t in tasks if t["status"] not in TERMINAL)
        metrics = {"total_nodes": total_nodes, "active_tasks": active_tasks,
                   "cpu_usage": psutil.cpu_percent(None), "ram_usage": psutil.virtual_memory().percent}
        if self.peers_count is not None:
            metrics["connected_peers"] = self.peers_count()
        return metrics

    def network_update(self) -> dict[str, Any]:
        return {"type": "network_update", "metrics": self.network_metrics(), "timestamp": time.time()}

    async def _metrics_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.metrics_interval)
            if any(NETWORK_UPDATE in c.topics for c in self.clients):
                try:
                    self.publish(NETWORK_UPDATE, self.network_update())
                except Exception:
                    log.exception("network metrics failed")

    # ------------------------------------------------------------- connection
    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        client = _Client(ws, self.queue_size)
        self.clients.add(client)
        sender = asyncio.create_task(self._sender(client))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_message(client, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    client.offer(orjson.dumps(error_message("INVALID_MESSAGE", "binary frames are not understood; "
                                                                              "send JSON text")))
                elif msg.type == WSMsgType.ERROR:
                    break
                if client.overflowed:
                    break
        finally:
            if client.overflowed:
                await self._drop(client, code=TOO_SLOW, reason=b"subscriber too slow; messages were dropped")
            else:
                await self._drop(client)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return ws

    async def _sender(self, client: _Client) -> None:
        while True:
            data = await client.queue.get()
            if data is None or client.ws.closed:
                return
            await client.ws.send_str(data.decode("utf-8"))
            if client.overflowed:
                await client.ws.close(code=TOO_SLOW, message=b"subscriber too slow; messages were dropped")
                return

    async def _drop(self, client: _Client, code: int = 1000, reason: bytes = b"") -> None:
        self.clients.discard(client)
        if client.events_task is not None:
            client.events_task.cancel()
            await asyncio.gather(client.events_task, return_exceptions=True)
            client.events_task = None
        if not client.ws.closed:
            with contextlib.suppress(Exception):
                await client.ws.close(code=code, message=reason)

    async def _on_message(self, client: _Client, text: str) -> None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            client.offer(orjson.dumps(error_message("INVALID_JSON", f"message is not JSON: {exc}")))
            return
        if not isinstance(message, dict):
            client.offer(orjson.dumps(error_message("INVALID_MESSAGE", "a message is a JSON object with a 'type'")))
            return
        kind = message.get("type")
        if kind == "ping":
            client.offer(orjson.dumps({"type": "pong", "timestamp": time.time()}))
            return
        if kind not in ("subscribe", "unsubscribe"):
            client.offer(orjson.dumps(error_message("UNKNOWN_MESSAGE_TYPE", f"unknown message type "
                                                    f"{str(kind)[:80]!r}; use subscribe, unsubscribe or ping")))
            return
        topic = message.get("event")
        if not isinstance(topic, str) or topic not in TOPICS:
            client.offer(orjson.dumps(error_message("UNKNOWN_EVENT", f"unknown subscription {str(topic)[:80]!r}; "
                                                    f"one of {sorted(TOPICS)}")))
            return
        if kind == "unsubscribe":
            client.topics.discard(topic)
            if topic == EVENTS and client.events_task is not None:
                client.events_task.cancel()
                client.events_task = None
            client.offer(orjson.dumps({"type": "unsubscribed", "event": topic, "timestamp": time.time()}))
            return
        after = message.get("after")
        if topic == EVENTS and after is not None and (type(after) is not int or not 0 <= after <= MAX_OFFSET):
            client.offer(orjson.dumps(error_message("INVALID_MESSAGE", "'after' is an event offset between 0 and "
                                                    f"{MAX_OFFSET}")))
            return
        client.topics.add(topic)
        client.offer(orjson.dumps({"type": "subscribed", "event": topic, "timestamp": time.time()}))
        if topic == NETWORK_UPDATE:
            client.offer(orjson.dumps(self.network_update()))
        elif topic == EVENTS and client.events_task is None:
            cursor = self.watcher.last if after is None else after
            client.events_task = asyncio.create_task(self._events_follow(client, cursor))

    async def _events_follow(self, client: _Client, cursor: int) -> None:
        """Raw log to one client by offset cursor; a failure is reported, not swallowed."""
        try:
            await self._follow(client, cursor)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("events follow failed")
            client.topics.discard(EVENTS)
            client.events_task = None
            client.offer(orjson.dumps(error_message("FOLLOW_FAILED", f"the events follow stopped: "
                                                    f"{type(exc).__name__}", error="Subscription ended")))

    async def _follow(self, client: _Client, cursor: int) -> None:
        """Raw log to one client by offset cursor (reads the store, so nothing is skipped)."""
        store = self.ledger.store
        page = min(200, MAX_PAGE)

        def read(after: int) -> list[Any]:
            return list(store.select_events(after=after, limit=page, batch=page))

        while not self._closed and not client.ws.closed:
            if client.queue.qsize() > self.queue_size // 2:
                await asyncio.sleep(0.01)  # let the sender drain before reading more
                continue
            if self._read is not None:
                rows = await self._read(read, cursor)
            else:
                rows = await self.loop.run_in_executor(None, read, cursor)
            if rows:
                for row in rows:
                    item = stored_to_wire(row)
                    client.offer(orjson.dumps({"type": "event", "offset": item["offset"],
                                               "event": {"raw": item["raw"], "sig": item["sig"]},
                                               "valid": item["valid"], "reason": item["reason"]}))
                cursor = rows[-1].offset
                continue
            await self.watcher.wait_beyond(cursor, 5.0)


def _status_of(event_type: str) -> str:
    """The status a task has right after an event of `event_type` about it."""
    return _STATUS_AFTER.get(event_type, TaskStatus.RUNNING).value


_STATUS_AFTER = {"task.submitted": TaskStatus.PENDING, "task.quote": TaskStatus.QUOTED,
                 "task.completed": TaskStatus.COMPLETED, "task.failed": TaskStatus.FAILED,
                 "task.cancelled": TaskStatus.CANCELLED}  # any other task event: running
