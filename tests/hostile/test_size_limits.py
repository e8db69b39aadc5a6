"""Size is bounded in bytes everywhere (issue 10, items 2 and 8).

An event over `MAX_EVENT_BYTES` is refused on append and on push; feed pages, chain
segments and follows are cut by bytes and continue where they stopped; an attacker
pushing big events from throwaway keys does not stop an honest transfer; huge cursors,
deeply nested `raw` and a flipped signature on known bytes get a 4xx JSON answer.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest

from ledger_net.errors import EncodingError
from ledger_net.ledger.events import MAX_EVENT_BYTES, EventTooLarge
from ledger_net.ledger.identity import Identity
from ledger_net.network.client import PeerClient, PeerRefused
from ledger_net.network.protocol import API
from tests.support.replication import converged, forge, start_cluster, stop_all, wire_hash
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

LIVENESS_BOUND = 20.0  # seconds for an honest transfer to reach the other node (well under 1 s unattacked)
PAD = 50 << 10  # bytes of padding in a big-but-legal event


async def fetch(url: str, method: str = "GET", **kwargs) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as resp:
        body = await resp.read()
        assert resp.content_type == "application/json", (resp.status, body[:200])
        return resp.status, orjson.loads(body)


async def test_an_event_over_the_limit_is_refused_on_append_and_on_push(tmp_path):
    nodes = await start_cluster(tmp_path, 1)
    node = nodes[0]
    net = node.ledger.net
    mallory = Identity.generate()
    try:
        before = node.ledger.store.count()
        with pytest.raises(EventTooLarge, match="exceeds the limit"):
            await node.append("node.updated", {"capabilities": {"pad": "x" * (MAX_EVENT_BYTES + 1)}})
        assert issubclass(EventTooLarge, EncodingError)
        # just under the limit is fine
        await node.append("node.updated", {"capabilities": {"pad": "x" * (MAX_EVENT_BYTES - 1024)}})
        assert node.ledger.store.count() == before + 1
        for size in (MAX_EVENT_BYTES + 1, 1 << 20):
            big = forge(mallory, net=net, seq=1, prev=None, type="node.joined",
                        body={"name": "m", "capabilities": {"pad": "y" * size}})
            status, body = await fetch(f"{node.url}{API}/events", "POST", json={"events": [big]})
            assert status == 413 and body["error"]["code"] == "event_too_large", body
            assert str(MAX_EVENT_BYTES) in body["error"]["message"]
        assert node.ledger.store.count() == before + 1
    finally:
        await stop_all(nodes)


async def test_pages_are_cut_by_bytes_and_followed_to_the_end(tmp_path):
    nodes = await start_cluster(tmp_path, 2)
    source, other = nodes
    page_bytes = 256 << 10
    for node in nodes:
        node.server.api.page_bytes = page_bytes
    try:
        await wait_until(lambda: converged(nodes), 20, what="the cluster to settle")
        for i in range(30):  # ~1.5 MB of events, six pages' worth
            await source.append("node.updated", {"capabilities": {"pad": chr(97 + i % 26) * PAD}})
        total = source.ledger.store.count()
        # the feed: pages stop near page_bytes, say `more`, and reach the end when followed
        seen, after, pages = [], 0, 0
        while True:
            status, page = await fetch(f"{source.url}{API}/feed?after={after}&limit=5000")
            assert status == 200
            events = page["events"]
            assert events, "a page always holds at least one event"
            size = sum(len(e["raw"]) for e in events)
            assert size <= page_bytes + MAX_EVENT_BYTES
            seen += [e["offset"] for e in events]
            after, pages = page["next"], pages + 1
            if not page["more"]:
                break
        assert len(seen) == total == len(set(seen)) and pages >= 5
        # a chain segment too
        status, chain = await fetch(f"{source.url}{API}/chains/{source.id}?from_seq=1&limit=5000")
        assert status == 200 and chain["more"] and 1 <= len(chain["events"]) < source.ledger.head()[0]
        assert chain["next_seq"] == len(chain["events"]) + 1
        # the NDJSON follow delivers everything in byte-bounded pages
        async with PeerClient(source.url) as client:
            lines = [line async for line in client.stream(after=0, limit=total, timeout=20)]
        assert [line["offset"] for line in lines] == sorted(seen)
        # and the other node, whose sync must follow the continuation, gets it all
        await wait_until(lambda: converged(nodes), 30, what="the other node to pull every page")
    finally:
        await stop_all(nodes)


async def test_big_events_from_throwaway_keys_do_not_stop_an_honest_transfer(tmp_path):
    nodes = await start_cluster(tmp_path, 2)
    honest, other = nodes
    net = honest.ledger.net
    await honest.append("credit.minted", {"to": honest.id, "amount": 10 ** 9, "reason": "seed"})
    statuses: dict[int, int] = {}
    stop = asyncio.Event()

    async def attacker() -> None:
        async with aiohttp.ClientSession() as session:
            for _ in range(150):  # bounded: 150 pushes of 8 events of ~60 KiB (70 MiB offered)
                if stop.is_set():
                    return
                keys = [Identity.generate() for _ in range(8)]
                batch = [forge(k, net=net, seq=1, prev=None, type="node.joined",
                               body={"name": "m", "capabilities": {"pad": "z" * (60 << 10)}}) for k in keys]
                async with session.post(f"{honest.url}{API}/events", json={"events": batch}) as resp:
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    await resp.read()

    try:
        await wait_until(lambda: converged(nodes), 20, what="the cluster to settle")
        task = asyncio.create_task(attacker())
        await wait_until(lambda: sum(statuses.values()) >= 10, 30, what="the attack to get going")
        started = time.monotonic()
        transfer = await honest.append("credit.transfer", {"to": other.id, "amount": 5})
        await wait_until(lambda: other.ledger.event(transfer.hash) is not None, LIVENESS_BOUND,
                         what="the honest transfer to reach the other node under attack")
        latency = time.monotonic() - started
        stop.set()
        await task
        assert not [s for s in statuses if s >= 500], statuses
        assert statuses.get(429, 0) > 0, statuses  # strangers' bytes are throttled, not buffered
        assert latency < LIVENESS_BOUND
    finally:
        stop.set()
        await stop_all(nodes)


async def test_client_mistakes_on_replication_routes_get_4xx_json(tmp_path):
    nodes = await start_cluster(tmp_path, 1)
    node = nodes[0]
    base = f"{node.url}{API}"
    try:
        for query in ("feed?after=9223372036854775808", "feed?after=18446744073709551616",
                      "feed/stream?after=9223372036854775808", f"chains/{node.id}?from_seq=9223372036854775808",
                      "feed?after=" + "9" * 5000):
            status, body = await fetch(f"{base}/{query}")
            assert status == 400 and body["error"]["code"] == "bad_parameter", (query, body)
        status, _ = await fetch(f"{base}/feed?after=9223372036854775807")  # the largest cursor is fine
        assert status == 200
        # raw holding deeply nested JSON
        for depth in (100, 1000, 5000):
            item = {"raw": "[" * depth + "]" * depth, "sig": "00" * 64}
            status, body = await fetch(f"{base}/events", "POST", json={"events": [item]})
            assert 400 <= status < 500 and body["error"]["code"] == "malformed_event", (depth, body)
        # a known event with a flipped signature is a forged copy, not a duplicate
        known = node.ledger.event(node.ledger.head()[1])
        wire = known.to_json()
        sig = bytearray(bytes.fromhex(wire["sig"]))
        sig[10] ^= 0x01
        before = node.ledger.store.count()
        status, body = await fetch(f"{base}/events", "POST", json={"events": [dict(wire, sig=sig.hex())]})
        assert status == 400 and body["error"]["code"] == "bad_signature", body
        status, body = await fetch(f"{base}/events", "POST", json={"events": [wire]})
        assert status == 200 and body["duplicates"] == 1  # the genuine copy still counts as a duplicate
        assert node.ledger.store.count() == before
        assert wire_hash(wire) == known.hash
    finally:
        await stop_all(nodes)


async def test_a_peer_refusing_oversized_pushes_is_a_4xx_not_a_stall(tmp_path):
    """A push batch is bounded in bytes, so a node whose request limit is far below the
    old event-count bound still receives a big backlog from its peer."""
    nodes = await start_cluster(tmp_path, 2, client_max_size=1 << 20, push_bytes=512 << 10)
    source, other = nodes
    try:
        await wait_until(lambda: converged(nodes), 20, what="the cluster to settle")
        for i in range(40):  # 2 MB: more than one request may carry
            await source.append("node.updated", {"capabilities": {"pad": chr(97 + i % 26) * PAD}})
        await wait_until(lambda: converged(nodes), 30, what="the backlog to replicate in bounded pushes")
        async with PeerClient(other.url) as client:
            with pytest.raises(PeerRefused) as info:
                await client.push([source.ledger.event(source.ledger.head()[1]).to_json()] * 30)
        assert info.value.status == 413
    finally:
        await stop_all(nodes)


async def test_a_task_config_too_big_for_one_event_travels_as_a_blob(tmp_path):
    """A legitimate `task.submitted` whose inline config would exceed the event limit names
    the config by blob hash instead, and the task still runs to its result."""
    from ledger_net.core.task import Task
    from ledger_net.main import ComputeNetwork

    network = ComputeNetwork(host="127.0.0.1", port=0, data_dir=tmp_path / "solo", initial_credits=1000.0)
    data = [i if i % 2 else i + 0.5 for i in range(4000)]  # mixed ints and floats: no array blob
    try:
        await network.start()
        task = Task.create_map(owner_id=network.node.node_id, data=data, operation="square",
                               requirements={"timeout_seconds": 30}, config={"max_price": 1.0})
        task_id = await network.submit_task(task.to_dict())
        ledger = network.ledger
        submitted = [e for e in ledger.stored() if e.type == "task.submitted"]
        assert len(submitted) == 1 and len(submitted[0].raw) <= MAX_EVENT_BYTES
        assert "config_blob" in orjson.loads(submitted[0].raw)["body"]["spec"]

        async def done() -> bool:
            return (await network.get_task_status(task_id))["status"] in ("completed", "failed")

        await wait_until(done, 60, what="the task to finish")
        assert (await network.get_task_status(task_id))["status"] == "completed"
        assert await network.get_task_result(task_id) == [x * x for x in data]
    finally:
        await network.stop()
