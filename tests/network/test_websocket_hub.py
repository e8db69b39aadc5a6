"""The seed's WebSocket API on a real node: task, node and network updates (also for
events that arrive by replication), the raw event stream, and error messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest

from tests.support.replication import start_cluster, stop_all
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


class WsClient:
    """Collects every message of one /ws connection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(orjson.loads(msg.data))

    async def send(self, data: Any) -> None:
        await self.ws.send_str(data if isinstance(data, str) else orjson.dumps(data).decode())

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0,
                       count: int = 1) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.messages if predicate(m)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; got {self.messages[-10:]}")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self.reader, return_exceptions=True)


async def test_ws_task_node_network_updates_and_errors(tmp_path):
    nodes = await start_cluster(tmp_path, 2)
    a, b = nodes
    session = aiohttp.ClientSession()
    try:
        client = WsClient(await session.ws_connect(f"{a.url}/ws"))
        for topic in ("task_updates", "node_update", "network_update", "events"):
            await client.send({"type": "subscribe", "event": topic})
        await client.wait_for(lambda m: m["type"] == "subscribed", count=4)

        # network updates: one on subscribing, then periodically (interval 0.2 s in tests)
        updates = await client.wait_for(lambda m: m["type"] == "network_update", count=3)
        metrics = updates[-1]["metrics"]
        assert metrics["total_nodes"] == 2 and metrics["active_tasks"] == 0
        assert 0.0 <= metrics["cpu_usage"] <= 100.0 and 0.0 < metrics["ram_usage"] <= 100.0
        assert isinstance(updates[-1]["timestamp"], float)

        # errors for bad messages; the connection stays usable
        await client.send("{nope")
        await client.send({"type": "subscribe", "event": "gossip"})
        await client.send({"type": "dance"})
        await client.send([1, 2])
        errors = await client.wait_for(lambda m: m["type"] == "error", count=4)
        codes = [e["details"]["error_code"] for e in errors]
        assert codes == ["INVALID_JSON", "UNKNOWN_EVENT", "UNKNOWN_MESSAGE_TYPE", "INVALID_MESSAGE"]
        assert all(e["details"]["error_message"] and e["error"] for e in errors)

        # a task's life, authored on node b: updates reach a's subscribers through replication
        worker = a.id
        await a.append("credit.minted", {"to": b.id, "amount": 10_000, "reason": "budget"})
        await wait_until(lambda: b.ledger.state.open_credits_to(b.id), 10, what="the credit to open at B")
        await b.receive_all()
        submitted = await b.append("task.submitted", {"task_id": "task_001", "task_type": "range_reduce",
                                                      "escrow": 1000, "max_price": 500, "chunks": 2, "spec": {}})
        await b.append("task.assigned", {"task_id": "task_001", "chunk": 0, "worker": worker, "price": 400},
                       [submitted.hash])
        await b.append("task.chunk_accepted", {"task_id": "task_001", "chunk": 0, "worker": worker, "payment": 400})
        await b.append("task.completed", {"task_id": "task_001", "refund": 600})
        task_updates = await client.wait_for(lambda m: m["type"] == "task_update", count=4)
        assert all(u["task_id"] == "task_001" and isinstance(u["timestamp"], float) for u in task_updates)
        statuses = [u["status"] for u in task_updates]
        assert statuses[-1] == "completed" and task_updates[-1]["progress"] == 1.0
        assert [u["event"] for u in task_updates] == ["task.submitted", "task.assigned", "task.chunk_accepted",
                                                      "task.completed"]
        assert statuses == ["pending", "running", "running", "completed"]
        assert task_updates[0]["progress"] in (0.0, 0.5)

        # node updates
        await b.append("node.updated", {"status": "busy", "capabilities": {"cpu_score": 8,
                                                                           "ram_gb": 16}})
        node_updates = await client.wait_for(lambda m: m["type"] == "node_update" and m["node_id"] == b.id
                                             and m["event"] == "node.updated")
        assert node_updates[-1]["status"] == "busy" and node_updates[-1]["capabilities"] == {"cpu_score": 8,
                                                                                               "ram_gb": 16}

        # the raw stream: every event committed after subscribing, in offset order, once
        raw = [m for m in client.messages if m["type"] == "event"]
        offsets = [m["offset"] for m in raw]
        assert offsets == sorted(set(offsets)) and len(offsets) >= 6
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
        assert {"raw", "sig"} == set(raw[0]["event"])

        # another network_update after the task: active_tasks back to 0, b is still a node
        n = len([m for m in client.messages if m["type"] == "network_update"])
        await client.wait_for(lambda m: m["type"] == "network_update", count=n + 1)

        # unsubscribe stops a topic
        await client.send({"type": "unsubscribe", "event": "network_update"})
        await client.wait_for(lambda m: m["type"] == "unsubscribed")
        await asyncio.sleep(0.3)  # let an in-flight update land
        n = len([m for m in client.messages if m["type"] == "network_update"])
        await asyncio.sleep(0.6)  # three intervals: none must arrive
        assert len([m for m in client.messages if m["type"] == "network_update"]) == n
        await client.close()
    finally:
        await session.close()
        await stop_all(nodes)


async def test_ws_events_from_an_offset_and_hub_publish(tmp_path):
    nodes = await start_cluster(tmp_path, 1)
    a = nodes[0]
    session = aiohttp.ClientSession()
    try:
        for i in range(30):
            await a.append("credit.minted", {"to": a.id, "amount": 1, "reason": str(i)})
        client = WsClient(await session.ws_connect(f"{a.url}/ws"))
        await client.send({"type": "subscribe", "event": "events", "after": 5})
        events = await client.wait_for(lambda m: m["type"] == "event", count=a.ledger.store.count() - 5)
        assert [m["offset"] for m in events] == list(range(6, a.ledger.store.count() + 1))
        # other components publish through the hub
        await client.send({"type": "subscribe", "event": "task_updates"})
        await client.wait_for(lambda m: m.get("event") == "task_updates")
        sent = a.server.hub.publish("task_updates", {"type": "task_update", "task_id": "t", "status": "running",
                                                     "progress": 0.5, "timestamp": time.time()})
        assert sent == 1
        await client.wait_for(lambda m: m["type"] == "task_update" and m["task_id"] == "t")
        await client.close()
    finally:
        await session.close()
        await stop_all(nodes)
