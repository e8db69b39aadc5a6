"""The `/ws` quirks of issue 10 (item 8), against a live node: a message with a list
where a topic belongs, an `after` beyond what an offset can be, and a ping flood.
Each gets a documented answer (an `error` message, or close code 1013), never a
crashed handler or a subscription that silently sends nothing."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import orjson
import pytest

from tests.support.replication import start_cluster, stop_all

pytestmark = pytest.mark.timeout(120)


async def exchange(ws: aiohttp.ClientWebSocketResponse, message: Any, timeout: float = 10.0) -> dict[str, Any]:
    await ws.send_str(message if isinstance(message, str) else json.dumps(message))
    answer = await ws.receive(timeout=timeout)
    assert answer.type == aiohttp.WSMsgType.TEXT, (answer.type, answer.data, ws.close_code)
    return orjson.loads(answer.data)


async def test_ws_malformed_subscriptions_get_errors_and_the_socket_stays_open(tmp_path):
    nodes = await start_cluster(tmp_path, 1)
    node = nodes[0]
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{node.url}/ws") as ws:
            for message in ({"type": "event", "event": ["events"]}, {"type": "subscribe", "event": ["events"]},
                            {"type": "subscribe", "event": {"a": 1}}, {"type": ["subscribe"], "event": "events"},
                            {"type": "unsubscribe", "event": [1, 2]}, [1, 2, 3], "not json"):
                answer = await exchange(ws, message)
                assert answer["type"] == "error" and answer["details"]["error_code"], (message, answer)
            for after in (1 << 63, 1 << 64, -1, "5", 1.5, True):
                answer = await exchange(ws, {"type": "subscribe", "event": "events", "after": after})
                assert answer["type"] == "error", answer
                assert answer["details"]["error_code"] in ("INVALID_MESSAGE", "INVALID_JSON"), answer
            # the largest offset there can be: subscribed, and waits (nothing is that far yet)
            answer = await exchange(ws, {"type": "subscribe", "event": "events", "after": (1 << 63) - 1})
            assert answer["type"] == "subscribed"
            assert (await exchange(ws, {"type": "ping"}))["type"] == "pong"
            # and a sane follow from 0 still streams the log
            await exchange(ws, {"type": "unsubscribe", "event": "events"})
            answer = await exchange(ws, {"type": "subscribe", "event": "events", "after": 0})
            assert answer["type"] == "subscribed"
            first = orjson.loads((await ws.receive(timeout=10)).data)
            assert first["type"] == "event" and first["offset"] == 1
            assert not ws.closed
        assert node.server.running
    finally:
        await stop_all(nodes)


async def test_ws_ping_flood_is_closed_with_1013(tmp_path):
    nodes = await start_cluster(tmp_path, 1)
    node = nodes[0]
    node.server.hub.queue_size = 32  # a small outbox, so the flood overflows it quickly
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{node.url}/ws") as ws:
            frame = orjson.dumps({"type": "ping"}).decode()
            for _ in range(5000):
                if ws.closed:
                    break
                await ws.send_str(frame)
            while True:
                msg = await ws.receive(timeout=20)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    break
            assert ws.close_code == 1013, (msg.type, msg.data, ws.close_code)
        # the node still serves a well-behaved subscriber
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{node.url}/ws") as ws:
            assert (await exchange(ws, {"type": "ping"}))["type"] == "pong"
    finally:
        await stop_all(nodes)
