"""A hostile peer against honest nodes: tampered, forged, wrong-network, out-of-order and
equivocating events are refused with 4xx and store nothing; the equivocation becomes a
fork proof that reaches every honest node, each freezes the forker, and the honest
nodes stay identical. A hostile *server* serving bad events is backed off."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web

from ledger_net.ledger.identity import Identity
from ledger_net.network.client import PeerClient, PeerRefused
from ledger_net.network.protocol import API
from tests.support.replication import (
    converged,
    forge,
    memory_ledger,
    start_cluster,
    stop_all,
    wire_hash,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(180)


async def push_refused(url: str, events: list[dict], code: str) -> str:
    async with PeerClient(url) as client:
        with pytest.raises(PeerRefused) as info:
            await client.push(events)
    assert 400 <= info.value.status < 500 and info.value.code == code, info.value
    return info.value.message


async def test_hostile_pushes_are_refused_and_the_fork_is_gossiped(tmp_path):
    nodes = await start_cluster(tmp_path, 4)
    target = nodes[1]
    net = nodes[0].ledger.net
    mallory = Identity.generate()
    try:
        first = forge(mallory, net=net, seq=1, prev=None, type="node.joined", body={"name": "mallory"})
        async with PeerClient(target.url) as client:
            assert (await client.push([first]))["stored"] == 1
        await wait_until(lambda: converged(nodes), 20, what="mallory's join to spread")
        counts = [n.ledger.store.count() for n in nodes]

        # tampered: bytes changed after signing
        honest2 = forge(mallory, net=net, seq=2, prev=wire_hash(first), type="node.updated", body={"name": "m2"})
        tampered = dict(honest2, raw=honest2["raw"].replace('"m2"', '"m3"'))
        assert "bad signature" in await push_refused(target.url, [tampered], "bad_signature")
        # forged: an event in an honest node's name, signed by mallory
        victim = nodes[2]
        vseq, vhead = victim.ledger.head()
        forged = forge(mallory, net=net, seq=vseq + 1, prev=vhead, type="credit.transfer",
                       body={"to": mallory.node_id, "amount": 5})
        envelope = orjson.loads(forged["raw"])
        envelope["author"] = victim.id
        forged["raw"] = orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS).decode()
        await push_refused(target.url, [forged], "bad_signature")
        # another network's events
        alien = memory_ledger(mallory)
        alien.create_network("elsewhere")
        alien_event = alien.append("node.joined", {"name": "m"})
        await push_refused(target.url, [alien_event.to_json()], "wrong_network")
        await push_refused(target.url, [alien.event(alien.net).to_json()], "wrong_network")
        alien.close()
        # out of order: seq 3 linking straight to seq 1
        bad_link = forge(mallory, net=net, seq=3, prev=wire_hash(first), type="node.updated", body={})
        await push_refused(target.url, [honest2, bad_link], "chain_error")
        # unknown type, malformed body
        await push_refused(target.url, [forge(mallory, net=net, seq=2, prev=wire_hash(first), type="credit.conjured",
                                              body={"amount": 10 ** 6})], "unknown_type")
        await push_refused(target.url, [forge(mallory, net=net, seq=2, prev=wire_hash(first), type="credit.transfer",
                                              body={"to": nodes[0].id, "amount": -5})], "schema_error")
        assert [n.ledger.store.count() for n in nodes] == counts  # nothing stored anywhere

        # equivocation: branch A spreads to every honest node, then branch B is shown to one node
        branch_a = forge(mallory, net=net, seq=2, prev=wire_hash(first), type="node.updated", body={"name": "A"})
        branch_b = forge(mallory, net=net, seq=2, prev=wire_hash(first), type="node.updated", body={"name": "B"})
        async with PeerClient(target.url) as client:
            assert (await client.push([branch_a]))["stored"] == 1
        await wait_until(lambda: all(n.ledger.event(wire_hash(branch_a)) for n in nodes), 20,
                         what="branch A to spread")
        async with PeerClient(target.url) as client:
            report = await client.push([branch_b])
        assert report["forks"] == [{"author": mallory.node_id, "seq": 2}] and report["stored"] == 0
        # the proof reaches every honest node and every one freezes mallory from seq 2
        await wait_until(lambda: all(n.ledger.state.frozen.get(mallory.node_id) == 2 for n in nodes), 20,
                         what="the fork proof to reach every node")
        proofs = [e for e in target.ledger.stored() if e.type == "fork.proof"]
        assert [e.author for e in proofs].count(target.id) == 1  # the node shown the fork proved it
        await wait_until(lambda: converged(nodes), 20, what="honest nodes to agree after the fork")
        for node in nodes:
            assert node.server.get_node_details(mallory.node_id)["forked_at"] == 2
            row = node.ledger.store.get_event(wire_hash(branch_a))
            assert row is not None and not row.valid  # branch A is void from the fork on
        # beyond the fork nothing of mallory's counts any more, on any node
        after = forge(mallory, net=net, seq=3, prev=wire_hash(branch_a), type="node.updated", body={"name": "C"})
        async with PeerClient(nodes[3].url) as client:
            report = await client.push([after])
        assert report["stored"] == 0 and wire_hash(after) in report["refused"]
        assert nodes[3].ledger.store.get_event(wire_hash(after)) is None
        await wait_until(lambda: converged(nodes), 20, what="honest nodes to stay identical")
    finally:
        await stop_all(nodes)


async def test_hostile_server_serving_forgeries_is_backed_off(tmp_path):
    """A 'peer' whose heads promise events and whose chain pages are forged: the honest
    node refuses the pages, stores nothing and backs the peer off."""
    nodes = await start_cluster(tmp_path, 1)
    honest = nodes[0]
    mallory = Identity.generate()
    net = honest.ledger.net
    first = forge(mallory, net=net, seq=1, prev=None, type="node.joined", body={"name": "m"})
    tampered = dict(first, raw=first["raw"].replace('"m"', '"x"'))
    hits = {"chains": 0}

    async def heads(request: web.Request) -> web.Response:
        return web.json_response({"net": net, "node_id": mallory.node_id, "last_offset": 1,
                                  "heads": {mallory.node_id: [1, wire_hash(first)]}, "frozen": {}})

    async def chains(request: web.Request) -> web.Response:
        hits["chains"] += 1
        return web.json_response({"events": [tampered]})

    async def push(request: web.Request) -> web.Response:
        return web.json_response({"stored": 0})

    app = web.Application()
    app.add_routes([web.get(f"{API}/info", heads), web.get(f"{API}/heads", heads),
                    web.get(f"{API}/chains/{{a}}", chains),
                    web.post(f"{API}/events", push)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        before = honest.ledger.store.count()
        await honest.server.connect_to_node(url)
        peer = honest.server.discovery.by_url(url)
        await wait_until(lambda: peer.failures > 0, 10, what="the hostile peer to be marked")
        assert "bad_signature" in peer.last_error
        assert peer.next_attempt > 0
        first_hits = hits["chains"]
        assert honest.ledger.store.count() == before
        assert honest.ledger.event(wire_hash(first)) is None
        # backed off: over 2 s a 0.1 s sync interval would retry ~20 times; backoff (max 0.5 s) allows ~5
        await asyncio.sleep(2.0)  # measuring a retry rate needs wall time
        assert hits["chains"] - first_hits <= 6
        assert peer.failures >= 2 * 4
    finally:
        await runner.cleanup()
        await stop_all(nodes)
