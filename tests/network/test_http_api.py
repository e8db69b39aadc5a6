"""The node's HTTP API on a real loopback server: read side, the feed and its follow,
pushes, and every kind of bad input answered with a 4xx JSON error that stores nothing."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from ledger_net.errors import NetworkError
from ledger_net.ledger.identity import Identity
from ledger_net.network.auth import load_or_create_token
from ledger_net.network.client import PeerClient, PeerRefused
from ledger_net.network.protocol import API
from tests.support.replication import Node, forge, memory_ledger, wire_hash
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def server_node(tmp_path):
    """A node server with its books (no ComputeNetwork around it) and 20 events of its own."""
    n = Node(tmp_path, "solo", client_max_size=64 << 10, max_events_per_request=50)
    n.ledger.create_network("http-test")
    await n.start()
    for i in range(20):
        await n.append("credit.minted", {"to": n.id, "amount": 10 + i, "reason": f"m{i}"})
    yield n
    await n.stop()
    n.close()


async def raw_request(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    async with aiohttp.ClientSession() as session, \
            session.request(method, url, data=body, headers=headers or {}) as resp:
        return resp.status, await resp.read()


async def error_of(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
    status, raw = await raw_request(method, url, body, headers)
    data = orjson.loads(raw)
    assert set(data) == {"error"}, data
    return status, data["error"]["code"], data["error"]["message"]


async def test_read_side(server_node):
    async with PeerClient(server_node.url) as client:
        info = await client.info()
        assert info["node_id"] == server_node.id and info["net"] == server_node.ledger.net
        assert info["events"] == 21 and info["last_offset"] == 21 and info["url"] == server_node.url
        heads = await client.heads()
        assert heads["heads"][server_node.id] == [21, server_node.ledger.head()[1]]
        assert heads["net"] == server_node.ledger.net
        genesis = await client.event(server_node.ledger.net)
        assert wire_hash(genesis) == server_node.ledger.net
        assert await client.event("0" * 64) is None
        chain = await client.chain(server_node.id, from_seq=5, limit=3)
        seqs = [orjson.loads(e["raw"])["seq"] for e in chain]
        assert seqs == [5, 6, 7]


async def test_feed_pages_resume_without_gaps(server_node):
    async with PeerClient(server_node.url) as client:
        seen, after = [], 0
        for _ in range(100):  # bounded
            page = await client.feed(after, 6)
            if not page["events"]:
                break
            seen.extend(item["offset"] for item in page["events"])
            after = page["next"]
        assert seen == list(range(1, 22))
        assert all(item["valid"] for item in (await client.feed(0, 50))["events"])


async def test_feed_stream_follows_and_resumes(server_node):
    async with PeerClient(server_node.url) as client:
        first = []
        async for item in client.stream(after=0, limit=10, timeout=10):
            first.append(item["offset"])
        assert first == list(range(1, 11))

        # reconnect from the cursor while new events are committed concurrently
        async def produce() -> None:
            for i in range(15):
                await server_node.append("credit.minted", {"to": server_node.id, "amount": 1, "reason": f"live{i}"})
                await asyncio.sleep(0.01)

        producer = asyncio.create_task(produce())
        rest = []
        async for item in client.stream(after=first[-1], limit=26, timeout=20):
            rest.append(item["offset"])
        await producer
        assert first + rest == list(range(1, 37))  # nothing skipped, nothing repeated


async def test_push_verified_like_ingest(server_node, tmp_path):
    other = Node(tmp_path, "other")
    other.ledger.ingest([server_node.ledger.event(server_node.ledger.net)])
    ev = other.ledger.append("node.joined", {"name": "other"})
    async with PeerClient(server_node.url) as client:
        report = await client.push([ev.to_json()])
        assert report["stored"] == 1
        again = await client.push([ev.to_json()])
        assert again["stored"] == 0 and again["duplicates"] == 1
    assert server_node.ledger.event(ev.hash) is not None
    other.close()


async def test_bad_input_is_refused_and_nothing_stored(server_node):
    url = f"{server_node.url}{API}/events"
    net = server_node.ledger.net
    before = server_node.ledger.store.count()
    mallory = Identity.generate()
    honest = forge(mallory, net=net, seq=1, prev=None, type="node.joined", body={"name": "m"})

    cases = []
    cases.append((b"{not json", 400, "malformed_json"))
    cases.append((b'{"events": 5}', 400, "malformed_request"))
    cases.append((b'{"events": []}', 400, "empty_batch"))
    cases.append((orjson.dumps({"events": [{"raw": 1}]}), 400, "malformed_event"))
    cases.append((orjson.dumps({"events": [honest] * 51}), 413, "too_many_events"))
    cases.append((b'{"events": ["' + b"x" * (70 << 10) + b'"]}', 413, "body_too_large"))
    unknown = forge(mallory, net=net, seq=1, prev=None, type="credit.printed", body={"amount": 5})
    cases.append((orjson.dumps({"events": [honest, unknown]}), 400, "unknown_type"))
    tampered = dict(honest, raw=honest["raw"].replace('"m"', '"n"'))
    cases.append((orjson.dumps({"events": [tampered]}), 400, "bad_signature"))
    forged = dict(forge(mallory, net=net, seq=1, prev=None, type="node.joined", body={"name": "x"}))
    forged_raw = orjson.loads(forged["raw"])
    forged_raw["author"] = server_node.id  # claims to be the node itself, signed by mallory
    forged["raw"] = orjson.dumps(forged_raw, option=orjson.OPT_SORT_KEYS).decode()
    cases.append((orjson.dumps({"events": [forged]}), 400, "bad_signature"))
    cases.append((orjson.dumps({"events": [dict(honest, hash="ab" * 32)]}), 400, "bad_hash"))
    cases.append((orjson.dumps({"events": [dict(honest, sig="zz")]}), 400, "bad_signature"))
    alien = memory_ledger(mallory)
    alien.create_network("other-net")
    alien_ev = alien.append("node.joined", {"name": "alien"})
    cases.append((orjson.dumps({"events": [alien_ev.to_json()]}), 400, "wrong_network"))
    cases.append((orjson.dumps({"events": [alien.event(alien.net).to_json()]}), 400, "wrong_network"))
    second = forge(mallory, net=net, seq=2, prev=wire_hash(honest), type="node.updated", body={"name": "m2"})
    third = forge(mallory, net=net, seq=3, prev=wire_hash(honest), type="node.updated", body={"name": "m3"})
    cases.append((orjson.dumps({"events": [honest, second, third]}), 400, "chain_error"))  # out of order link
    skip = forge(mallory, net=net, seq=3, prev=None, type="node.updated", body={})
    cases.append((orjson.dumps({"events": [skip]}), 400, "chain_error"))  # seq 3 without prev
    noncanonical = dict(honest, raw=honest["raw"].replace(",", ", ", 1))
    cases.append((orjson.dumps({"events": [noncanonical]}), 400, "malformed_event"))
    float_body = forge(mallory, net=net, seq=1, prev=None, type="node.joined", body={"name": "m"})
    float_body["raw"] = float_body["raw"].replace('"ts":', '"ts":1.5,"x":', 1)
    cases.append((orjson.dumps({"events": [float_body]}), 400, "malformed_event"))

    for body, status, code in cases:
        got_status, got_code, message = await error_of("POST", url, body, {"Content-Type": "application/json"})
        assert (got_status, got_code) == (status, code), (code, message)
        assert message
    assert server_node.ledger.store.count() == before
    assert len(server_node.ledger.pending) == 0

    # read-side errors
    assert (await error_of("GET", f"{server_node.url}{API}/events/xyz"))[:2] == (400, "bad_hash")
    assert (await error_of("GET", f"{server_node.url}{API}/events/{'0' * 64}"))[:2] == (404, "unknown_event")
    assert (await error_of("GET", f"{server_node.url}{API}/chains/bob"))[:2] == (400, "bad_author")
    assert (await error_of("GET", f"{server_node.url}{API}/feed?after=-1"))[:2] == (400, "bad_parameter")
    assert (await error_of("GET", f"{server_node.url}{API}/feed?limit=abc"))[:2] == (400, "bad_parameter")
    assert (await error_of("GET", f"{server_node.url}{API}/nowhere"))[:2] == (404, "not_found")
    assert (await error_of("DELETE", f"{server_node.url}{API}/feed"))[:2] == (405, "method_not_allowed")

    # still serving, and an honest push after all that is accepted
    async with PeerClient(server_node.url) as client:
        assert (await client.push([honest]))["stored"] == 1
    assert server_node.ledger.store.count() == before + 1
    alien.close()


async def test_pending_events_wait_and_are_bounded(server_node):
    """An event whose prev never arrives waits in the bounded pending buffer, not in the log."""
    mallory = Identity.generate()
    orphan = forge(mallory, net=server_node.ledger.net, seq=2, prev="ab" * 32, type="node.updated", body={})
    async with PeerClient(server_node.url) as client:
        report = await client.push([orphan])
    assert report["pending"] == 1 and report["stored"] == 0
    assert server_node.ledger.event(wire_hash(orphan)) is None


async def test_control_needs_token_when_loopback_is_not_trusted(tmp_path):
    n = Node(tmp_path, "ctl", trust_loopback=False)
    n.ledger.create_network("ctl")
    await n.start()
    token = load_or_create_token(tmp_path / "ctl")
    assert token == n.server.token and (tmp_path / "ctl" / "api.token").stat().st_mode & 0o077 == 0
    url = f"{n.url}{API}/peers"
    body = orjson.dumps({"url": "http://127.0.0.1:9"})
    try:
        assert (await error_of("POST", url, body))[:2] == (401, "unauthorized")
        assert (await error_of("POST", url, body, {"X-API-Token": "wrong"}))[:2] == (403, "forbidden")
        status, code, message = await error_of("POST", url, body, {"Authorization": f"Bearer {token}"})
        assert (status, code) == (415, "unsupported_media_type")  # the body is not declared as JSON
        status, code, message = await error_of("POST", url, body, {"Authorization": f"Bearer {token}",
                                                                   "Content-Type": "application/json"})
        assert (status, code) == (502, "peer_unavailable") and "unreachable" in message
        status, raw = await raw_request("GET", url)  # reading the peer table is public
        assert status == 200 and orjson.loads(raw)["peers"] == []
    finally:
        await n.stop()
        n.close()


async def test_state_changing_control_needs_the_token_on_loopback_too(server_node, tmp_path):
    other = Node(tmp_path, "peer2", seeds=[server_node.url])
    await other.start()
    try:
        body, json_type = orjson.dumps({"url": other.url}), {"Content-Type": "application/json"}
        assert (await error_of("POST", f"{server_node.url}{API}/peers", body, json_type))[:2] == (401, "unauthorized")
        status, raw = await raw_request("POST", f"{server_node.url}{API}/peers", body,
                                        {**json_type, "X-API-Token": server_node.server.token})
        assert status == 200, raw
        assert orjson.loads(raw)["connected"] is True
        await wait_until(lambda: other.ledger.store.count() == server_node.ledger.store.count(), 10,
                         what="the connected peer to replicate")
        with pytest.raises(NetworkError, match="unknown node"):
            await server_node.server.connect_to_node("f" * 64)
        with pytest.raises(NetworkError, match="unreachable"):
            await server_node.server.connect_to_node("http://127.0.0.1:9")
        assert await server_node.server.disconnect_from_node(other.id)
        assert server_node.server.discovery.by_node(other.id)[0].status == "disconnected"
        with pytest.raises(NetworkError, match="unknown node"):
            await server_node.server.disconnect_from_node("e" * 64)
    finally:
        await other.stop()
        other.close()


async def test_client_errors_are_network_errors(server_node):
    async with PeerClient(server_node.url) as client:
        with pytest.raises(PeerRefused) as info:
            await client.push([{"raw": "{}", "sig": "00"}])
        assert info.value.status == 400 and info.value.code == "bad_signature"
    async with PeerClient("http://127.0.0.1:9", timeout=2) as dead:
        with pytest.raises(NetworkError, match="unreachable"):
            await dead.info()
